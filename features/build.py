"""Features and labels at one cutoff or many: one row per (customer, cutoff) in the population."""

from __future__ import annotations

from collections.abc import Collection

import ibis
import pandas as pd

from features.common import join_customers
from features.cutoffs import FeatureParams
from features.inputs import FeatureInputs
from features.labels import churn_labels, population
from features.relationship import RELATIONSHIP_SPECS, relationship_features
from features.returns import RETURN_SPECS, returns_features
from features.rfm import RFM_SPECS, TREND_SPECS, rfm_and_trend_features
from features.satisfaction import SATISFACTION_SPECS, bad_events, satisfaction_features
from features.spec import FeatureSpec

FEATURE_SPECS: tuple[FeatureSpec, ...] = (
    RFM_SPECS + SATISFACTION_SPECS + RETURN_SPECS + RELATIONSHIP_SPECS + TREND_SPECS
)
KEY_COLUMNS = ("customer_id", "cutoff")
LABEL = "churned"


def features_at(
    inputs: FeatureInputs, cutoff: pd.Timestamp, params: FeatureParams, events: ibis.Table | None = None
) -> ibis.Table:
    """customer_id, cutoff, every feature in FEATURE_SPECS and `churned` (null when the label window is not fully
    observed). Features see only what was known before the cutoff; the label only the window after it."""
    events = bad_events(inputs, params) if events is None else events
    table = population(inputs.orders, cutoff, params.active_window_days)
    for group in (
        rfm_and_trend_features(inputs.orders, cutoff),
        satisfaction_features(inputs, events, cutoff, params),
        returns_features(inputs, cutoff),
        relationship_features(inputs, cutoff),
    ):
        table = join_customers(table, group)
    labels = churn_labels(inputs.orders, cutoff, params.horizon_days, inputs.as_of)
    if labels is None:
        label = ibis.null().cast("int8")
    else:
        table = join_customers(table, labels)
        label = table.churned.fill_null(1).cast("int8")
    return table.select(
        "customer_id",
        cutoff=ibis.literal(cutoff.to_pydatetime(), type="timestamp"),
        **{spec.name: _column(table, spec, inputs) for spec in FEATURE_SPECS},
        churned=label,
    )


def feature_table(inputs: FeatureInputs, cutoffs: list[pd.Timestamp], params: FeatureParams) -> ibis.Table:
    """All cutoffs as one expression (a UNION ALL of the per-cutoff queries)."""
    if not cutoffs:
        raise ValueError("no cutoffs: check features.first_cutoff against the data's as-of time")
    events = bad_events(inputs, params)
    return ibis.union(*(features_at(inputs, cutoff, params, events) for cutoff in cutoffs), distinct=False)


def _column(table: ibis.Table, spec: FeatureSpec, inputs: FeatureInputs) -> ibis.Value:
    """The feature, or a typed null when its source is absent (missing, not zero)."""
    if not all(inputs.has(need) for need in spec.needs):
        return ibis.null().cast(spec.dtype)
    if spec.name not in table.columns:
        raise RuntimeError(f"feature {spec.name} is in the dictionary but no builder made it")
    return table[spec.name].cast(spec.dtype)


def feature_dictionary(inputs: FeatureInputs | None = None) -> pd.DataFrame:
    """One row per feature: name, group, unit, window, definition, what it needs and (given inputs) whether the
    source provides it."""
    rows = [
        {
            "name": spec.name,
            "group": spec.group,
            "dtype": spec.dtype,
            "unit": spec.unit,
            "window": spec.window,
            "definition": spec.definition,
            "needs": ", ".join(spec.needs),
            **({"available": all(inputs.has(need) for need in spec.needs)} if inputs is not None else {}),
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
