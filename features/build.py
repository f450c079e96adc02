"""Features and labels at one cutoff or many: one row per (customer, cutoff) in the population."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

import ibis
import ibis.expr.operations as ops
import ibis.expr.types as ir
import pandas as pd
from ibis.util import gen_name

from features.basket import BASKET_SPECS, RunningBasket, basket_columns, basket_part, basket_part_at, line_facts
from features.btyd import BTYD_COLUMNS, BTYD_SPECS, btyd_part
from features.common import join_customers
from features.cutoffs import FeatureParams
from features.inputs import FeatureInputs
from features.labels import churn_labels, is_active
from features.order_arrays import FACT_COLUMNS as ORDER_FACT_COLUMNS
from features.order_arrays import OrdersInMemory
from features.orders import column_levels, order_facts, order_summary
from features.relationship import (
    MOST_COMMON,
    RELATIONSHIP_SPECS,
    most_common_columns,
    relationship_columns,
    relationship_parts,
)
from features.returns import RETURN_SPECS, returns_columns, returns_part, returns_with_customers
from features.rfm import RFM_SPECS, TREND_SPECS, rfm_and_trend_columns
from features.satisfaction import (
    SATISFACTION_SPECS,
    bad_events,
    reviews_with_customers,
    satisfaction_columns,
    satisfaction_parts,
)
from features.seasonal import SEASONAL_SPECS, seasonal_columns, seasonal_part
from features.spec import FeatureSpec

FEATURE_SPECS: tuple[FeatureSpec, ...] = (
    RFM_SPECS
    + SATISFACTION_SPECS
    + RETURN_SPECS
    + RELATIONSHIP_SPECS
    + TREND_SPECS
    + SEASONAL_SPECS
    + BTYD_SPECS
    + BASKET_SPECS
)
KEY_COLUMNS = ("customer_id", "cutoff")
# The name (after gen_name's "ibis_") of a cutoff's order summary computed in memory, while the backend holds it.
IN_MEMORY_SUMMARY = "order_summary_in_memory"
LABEL = "churned"


@dataclass(frozen=True)
class SharedTables:
    """The tables no cutoff changes that every cutoff's query reads."""

    orders: ibis.Table  # order_facts, with the bad experiences
    events: ibis.Table  # bad_events
    reviews: ibis.Table | None  # reviews_with_customers
    returns: ibis.Table | None = None  # returns_with_customers
    # line_facts; None without order lines, or without `line_flags` (then each cutoff groups the lines before it).
    lines: ibis.Table | None = None
    # The values of the order columns whose most common value is a feature, where they are few (`column_levels`):
    # `order_summary` counts orders per value, so no cutoff groups orders by customer and value.
    levels: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Whether the tables above are kept by the backend: then each cutoff's order summary is kept too, while its
    # features are computed, so that BG/NBD's history and the features read it without aggregating the orders twice.
    cached: bool = False
    # The basket part at cutoffs taken in time order, in memory (instead of `lines`).
    basket: RunningBasket | None = None
    # The order summary at any cutoff, in memory (instead of aggregating `orders` at each cutoff).
    orders_in_memory: OrdersInMemory | None = None


def shared_tables(
    inputs: FeatureInputs,
    params: FeatureParams,
    cache: bool = False,
    running_basket: bool = False,
    line_flags: bool = True,
    in_memory_orders: bool = False,
) -> SharedTables:
    """With `cache`, each table is computed now, once, and kept by the backend (DuckDB: a temporary table; Spark: a
    cached DataFrame) while an expression refers to it, so that many cutoffs' queries do not each recompute it.
    With `running_basket`, the order lines' facts are read into this process instead (`RunningBasket`), for
    cutoffs taken in time order on one machine; with `in_memory_orders`, so are the order facts, from which each
    cutoff's order summary is then computed in this process (`OrdersInMemory`, likewise). Without `line_flags`,
    the order lines' flags (`line_facts`, window functions over every line of the history) are not made: each
    cutoff's basket part groups the lines before it instead (`basket_part_at`, the same values), which costs less
    for one cutoff (scoring) and more for many. The levels of the most-common columns are read now in either case
    (one small query per column)."""

    def kept(table: ibis.Table) -> ibis.Table:
        return table.cache() if cache else table

    events = kept(bad_events(inputs, params))
    reviews = reviews_with_customers(inputs)
    returns = returns_with_customers(inputs)
    lines = line_facts(inputs) if line_flags else None
    basket = RunningBasket(lines.to_pyarrow()) if running_basket and lines is not None else None
    orders = kept(order_facts(inputs.orders, events))
    levels = column_levels(inputs.orders, [c for c in MOST_COMMON if c != "country" or inputs.has("orders.country")])
    return SharedTables(
        orders=orders,
        events=events,
        reviews=None if reviews is None else kept(reviews),
        returns=None if returns is None else kept(returns),
        lines=None if lines is None or basket is not None else kept(lines),
        levels=levels,
        cached=cache,
        basket=basket,
        orders_in_memory=_orders_in_memory(orders, levels) if in_memory_orders else None,
    )


def _orders_in_memory(orders: ibis.Table, levels: Mapping[str, tuple[str, ...]]) -> OrdersInMemory:
    """The order facts `order_summary` reads, in this process, with the summary's schema."""
    columns = dict.fromkeys([*ORDER_FACT_COLUMNS, *levels])  # ordered, without repeats
    schema = order_summary(orders, pd.Timestamp("2000-01-01"), levels).schema().to_pyarrow()
    return OrdersInMemory(orders.select(*columns).to_pyarrow(), levels, schema)


def features_at(
    inputs: FeatureInputs, cutoff: pd.Timestamp, params: FeatureParams, shared: SharedTables | None = None
) -> ibis.Table:
    """customer_id, cutoff, every feature in FEATURE_SPECS and `churned` (null when the label window is not fully
    observed). Features see only what was known before the cutoff; the label only the window after it.

    Every per-customer metric of the orders placed before the cutoff comes from one aggregation (`order_summary`),
    which also gives the population; the other pieces are joined to it."""
    shared = shared_tables(inputs, params) if shared is None else shared
    summary = _order_summary(shared, cutoff)
    table = summary.filter(is_active(summary.last_placed_at, cutoff, params.active_window_days))
    table = table.mutate(**most_common_columns(table, shared.levels))
    parts = [
        *satisfaction_parts(inputs, shared.events, shared.reviews, cutoff, params),
        *relationship_parts(inputs, shared.orders, cutoff, counted=shared.levels),
        returns_part(inputs, cutoff, shared.returns),
        seasonal_part(shared.orders, cutoff, params.horizon_days),
        _basket_part(inputs, shared, cutoff),
        # Computed now: the engine summarises the orders, BG/NBD is fitted here (features.btyd).
        btyd_part(summary, cutoff, params.horizon_days, params.active_window_days),
    ]
    labels = churn_labels(inputs.orders, cutoff, params.horizon_days, inputs.as_of)
    for part in parts if labels is None else [*parts, labels]:
        table = join_customers(table, part)
    columns = {
        **rfm_and_trend_columns(table, cutoff),
        **satisfaction_columns(table, cutoff),
        **relationship_columns(inputs, table, cutoff),
        **returns_columns(table, cutoff),
        **seasonal_columns(table, inputs, cutoff),
        **{name: table[name] for name in BTYD_COLUMNS},
        **basket_columns(table),
    }
    label = ibis.null().cast("int8") if labels is None else table.churned.fill_null(1).cast("int8")
    return table.select(
        "customer_id",
        cutoff=ibis.literal(cutoff.to_pydatetime(), type="timestamp"),
        **{spec.name: _column(columns, spec, inputs, cutoff) for spec in FEATURE_SPECS},
        churned=label,
    )


def _order_summary(shared: SharedTables, cutoff: pd.Timestamp) -> ibis.Table:
    """`order_summary` at the cutoff: computed in memory, or by the engine (kept while the cutoff's features and
    BG/NBD read it, when the shared tables are kept)."""
    if shared.orders_in_memory is not None:
        # Handed to the backend as a temporary table, which `release_cutoff` drops: read as an in-memory table
        # (`ibis.memtable`) by the cutoff's query, DuckDB kept about 0.2 GiB per cutoff at 1M customers after it was
        # unregistered.
        rows = shared.orders_in_memory.summary_at(cutoff)
        return shared.orders.get_backend().create_table(gen_name(IN_MEMORY_SUMMARY), rows, temp=True)
    summary = order_summary(shared.orders, cutoff, shared.levels)
    return summary.cache() if shared.cached else summary


def release_cutoff(rows: ibis.Table, shared: SharedTables) -> None:
    """Free what `features_at` kept on the backend for one cutoff once its rows are computed: its order summary
    (cached, or computed in memory and handed over, while the cutoff's features and BG/NBD read it). The shared
    tables stay for the next cutoff. Without this a cutoff's cache goes only when Python collects its expression;
    on Spark it holds storage memory that the next cutoff's joins and aggregations need (README "Scaling out")."""
    kept = (shared.orders, shared.events, shared.reviews, shared.returns, shared.lines)
    shared_ops = {table.op() for table in kept if table is not None}
    for table in rows.op().find(ops.DatabaseTable):
        if table in shared_ops:
            continue
        if table.name.startswith(f"ibis_{IN_MEMORY_SUMMARY}_"):
            table.source.drop_table(table.name, force=True)
        else:
            # A no-op for a table that is not a cache (an input table).
            ir.CachedTable(table).release()


def _basket_part(inputs: FeatureInputs, shared: SharedTables, cutoff: pd.Timestamp) -> ibis.Table | None:
    """The basket part at the cutoff: run along the cutoffs in memory, counted from the line flags, or grouped from
    the lines before the cutoff (scoring's one cutoff); the same values each way."""
    if shared.basket is not None:
        return shared.basket.part_at(cutoff)
    if shared.lines is not None:
        return basket_part(shared.lines, cutoff)
    return basket_part_at(inputs, cutoff, cache=shared.cached)


def feature_table(
    inputs: FeatureInputs, cutoffs: list[pd.Timestamp], params: FeatureParams, shared: SharedTables | None = None
) -> ibis.Table:
    """All cutoffs as one expression (a UNION ALL of the per-cutoff queries)."""
    if not cutoffs:
        raise ValueError("no cutoffs: check features.first_cutoff against the data's as-of time")
    shared = shared_tables(inputs, params) if shared is None else shared
    return ibis.union(*(features_at(inputs, cutoff, params, shared) for cutoff in cutoffs), distinct=False)


def _column(
    columns: dict[str, ibis.Value], spec: FeatureSpec, inputs: FeatureInputs, cutoff: pd.Timestamp
) -> ibis.Value:
    """The feature, or a typed null when its source is absent, or had recorded nothing yet before the cutoff
    (missing, not zero: a source that starts recording reviews in some year knew no review counts before)."""
    if not spec.available(lambda need: inputs.had_by(need, cutoff)):
        return ibis.null().cast(spec.dtype)
    if spec.name not in columns:
        raise RuntimeError(f"feature {spec.name} is in the dictionary but no builder made it")
    return columns[spec.name].cast(spec.dtype)


def feature_dictionary(inputs: FeatureInputs | None = None) -> pd.DataFrame:
    """One row per feature: name, group, unit, window, definition, what it needs and (given inputs) whether the
    source provides it and which export-time snapshots it reads there undated ('' for none: point in time)."""
    rows = [
        {
            "name": spec.name,
            "group": spec.group,
            "dtype": spec.dtype,
            "unit": spec.unit,
            "window": spec.window,
            "definition": spec.definition,
            "needs": spec.needs_text(),
            **(
                {"available": spec.available(inputs.has), "snapshot": ", ".join(spec.undated_snapshots(inputs.has))}
                if inputs is not None
                else {}
            ),
        }
        for spec in FEATURE_SPECS
    ]
    return pd.DataFrame(rows)


def feature_groups(available: Collection[str]) -> dict[str, dict[str, list[str]]]:
    """Per feature group, which of its features the source provides (`available`: feature names) and which not."""
    groups: dict[str, dict[str, list[str]]] = {}
    for spec in FEATURE_SPECS:
        group = groups.setdefault(spec.group, {"available": [], "missing": []})
        group["available" if spec.name in available else "missing"].append(spec.name)
    return groups
