"""Returns of any reason, each counted from when it was registered (`returned_at`).

A return the shop caused (wrong item, damaged, not as described) is also a bad experience in the satisfaction
group; these features count every return, which is all a source without return reasons can tell (UCI Online
Retail's credit notes say neither whether goods came back nor why).
"""

from __future__ import annotations

import ibis
import pandas as pd

from features.common import at, count_if, days_before, days_between, join_customers, orders_before
from features.inputs import FeatureInputs
from features.spec import FeatureSpec

RETURN_WINDOWS = (90, 365)

RETURN_SPECS: tuple[FeatureSpec, ...] = (
    *(
        FeatureSpec(f"returns_{days}d", "returns", "int64", "returns", f"{days} days",
                    f"Returns of any reason registered in the {days} days before the cutoff.", ("returns",))
        for days in RETURN_WINDOWS
    ),
    FeatureSpec("returns_total", "returns", "int64", "returns", "all history",
                "Returns of any reason registered before the cutoff.", ("returns",)),
    FeatureSpec("returned_order_share", "returns", "float64", "share", "all history",
                "Share of the orders placed before the cutoff with a return registered before it.", ("returns",)),
    FeatureSpec("days_since_last_return", "returns", "float64", "days", "last return",
                "Days from the last return registered before the cutoff to the cutoff (null: none).", ("returns",)),
)  # fmt: skip


def returns_with_customers(inputs: FeatureInputs) -> ibis.Table | None:
    """Every return (order_id, returned_at) with the customer of its order (cutoff-independent); None when the
    source has no returns."""
    if inputs.returns is None:
        return None
    returns = inputs.returns.join(inputs.orders.select("order_id", "customer_id"), "order_id")
    return returns.select("order_id", "customer_id", "returned_at")


def returns_part(inputs: FeatureInputs, cutoff: pd.Timestamp, returns: ibis.Table | None = None) -> ibis.Table | None:
    """Per customer with a return registered before the cutoff: the counts, the orders returned and the last
    return's time; None when the source has no returns. A return comes after its order, so every order counted here
    was placed before the cutoff. `returns` is `returns_with_customers`, when the caller has it already."""
    returns = returns_with_customers(inputs) if returns is None else returns
    if returns is None:
        return None
    known = returns.filter(returns.returned_at < at(cutoff))
    return known.aggregate(
        by="customer_id",
        **{f"returns_{days}d": count_if(known.returned_at >= days_before(cutoff, days)) for days in RETURN_WINDOWS},
        returns_total=known.count(),
        returned_orders=known.order_id.nunique(),
        last_returned_at=known.returned_at.max(),
    )


def returns_columns(table: ibis.Table, cutoff: pd.Timestamp) -> dict[str, ibis.Value]:
    """The return features of a per-customer table holding `orders_placed` (orders of any status placed before the
    cutoff) joined with returns_part; a customer without a return has none (0), not an unknown number."""
    if "returns_total" not in table.columns:
        return {}
    counts = [f"returns_{days}d" for days in RETURN_WINDOWS] + ["returns_total"]
    return {
        **{name: table[name].fill_null(0) for name in counts},
        "returned_order_share": table.returned_orders.fill_null(0).cast("float64") / table.orders_placed,
        "days_since_last_return": days_between(at(cutoff), table.last_returned_at),
    }


def returns_features(inputs: FeatureInputs, cutoff: pd.Timestamp) -> ibis.Table | None:
    """One row per customer with an order before the cutoff; None when the source has no returns. The stage builds
    the same columns from its shared order summary (features.build)."""
    part = returns_part(inputs, cutoff)
    if part is None:
        return None
    placed = orders_before(inputs.orders, cutoff)
    table = join_customers(placed.aggregate(by="customer_id", orders_placed=placed.count()), part)
    return table.select("customer_id", **returns_columns(table, cutoff))
