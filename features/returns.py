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


def returns_features(inputs: FeatureInputs, cutoff: pd.Timestamp) -> ibis.Table | None:
    """One row per customer with an order before the cutoff; None when the source has no returns."""
    if inputs.returns is None:
        return None
    t = at(cutoff)
    known = inputs.returns.filter(inputs.returns.returned_at < t)
    known = known.join(inputs.orders.select("order_id", "customer_id"), "order_id")
    counts = known.aggregate(
        by="customer_id",
        **{f"returns_{days}d": count_if(known.returned_at >= days_before(cutoff, days)) for days in RETURN_WINDOWS},
        returns_total=known.count(),
        last_returned_at=known.returned_at.max(),
    )
    placed = orders_before(inputs.orders, cutoff)
    returned = known.select("order_id").distinct().mutate(returned=ibis.literal(True))
    per_order = placed.left_join(returned, "order_id").drop("order_id_right")
    shares = per_order.aggregate(
        by="customer_id",
        returned_order_share=count_if(per_order.returned.notnull()).cast("float64") / per_order.count(),
    )
    joined = join_customers(shares, counts)
    zero_filled = [f"returns_{days}d" for days in RETURN_WINDOWS] + ["returns_total"]
    return joined.select(
        "customer_id",
        *(joined[name].fill_null(0).name(name) for name in zero_filled),
        "returned_order_share",
        days_since_last_return=days_between(t, joined.last_returned_at),
    )
