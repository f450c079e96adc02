"""A leakage check anyone can run on their own data: features at a cutoff must come out the same when everything
that happened at or after the cutoff is deleted first.

`known_before` rebuilds the contract tables as they stood just before the cutoff; build features on it with the
same code (features.build.features_at, passing the full data's `available` so the schema is the same) and compare
with `feature_differences`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.build import FEATURE_SPECS

# The column that says when a row itself came into being; rows at or after the cutoff are deleted.
ROW_TIME = {
    "customers": "signed_up_at",
    "orders": "ordered_at",
    "reviews": "reviewed_at",
    "tickets": "opened_at",
    "returns": "returned_at",
}
# Later events on a kept row; they are blanked when at or after the cutoff. (promised_delivery_at is a promise made
# at checkout, known from the order time.)
LATER_TIMES = {"orders": ("delivered_at",), "tickets": ("resolved_at",)}
RELATIVE_TOLERANCE = 1e-9


def known_before(tables: dict[str, pd.DataFrame], cutoff: pd.Timestamp) -> dict[str, pd.DataFrame]:
    """The tables as they stood just before `cutoff`: rows created at or after it are deleted, later timestamps of
    kept rows blanked, and an order's status set back to what it was then (delivered or returned later: shipped;
    returned later but delivered before: delivered). A cancellation keeps its status: the contract has no
    cancellation time, so the features count it from the order time."""
    known = {}
    for name, table in tables.items():
        if name not in ROW_TIME:
            raise ValueError(f"unknown table {name!r}; expected some of {sorted(ROW_TIME)}")
        time = ROW_TIME[name]
        kept = table.loc[~(table[time] >= cutoff).fillna(False).astype(bool)].copy() if time in table else table.copy()
        for column in LATER_TIMES.get(name, ()):
            if column in kept:
                kept.loc[(kept[column] >= cutoff).fillna(False).astype(bool), column] = pd.NaT
        known[name] = kept.reset_index(drop=True)
    if "orders" in known and "status" in known["orders"]:
        returned = known["returns"]["order_id"] if "returns" in known else pd.Series(dtype=object)
        known["orders"] = _status_at_cutoff(known["orders"], set(returned))
    return known


def _status_at_cutoff(orders: pd.DataFrame, returned_before: set[object]) -> pd.DataFrame:
    status = orders["status"].astype("string")
    delivered = orders["delivered_at"].notna() if "delivered_at" in orders else pd.Series(True, index=orders.index)
    after_delivery = status.isin(["delivered", "returned"]).fillna(False)
    status = status.mask(after_delivery & ~delivered, "shipped")
    not_yet_returned = (status == "returned").fillna(False) & ~orders["order_id"].isin(returned_before)
    status = status.mask(not_yet_returned, "delivered")
    return orders.assign(status=status.astype(orders["status"].dtype))


def feature_differences(expected: pd.DataFrame, actual: pd.DataFrame) -> pd.Series:
    """Per feature, the number of (customer_id, cutoff) rows whose values differ (missing equals missing; floats
    within a relative 1e-9), plus `rows_only_in_one` for keys present in just one table."""
    keys = ["customer_id", "cutoff"]
    merged = expected.merge(actual, on=keys, how="outer", suffixes=("_expected", "_actual"), indicator=True)
    both = merged[merged["_merge"] == "both"]
    counts = {"rows_only_in_one": int((merged["_merge"] != "both").sum())}
    for spec in FEATURE_SPECS:
        left, right = both[f"{spec.name}_expected"], both[f"{spec.name}_actual"]
        missing = left.isna() & right.isna()
        if spec.dtype in ("float64", "int64"):
            a, b = left.astype("Float64"), right.astype("Float64")
            a_values, b_values = a.to_numpy(float, na_value=np.nan), b.to_numpy(float, na_value=np.nan)
            close = pd.Series(np.isclose(a_values, b_values, rtol=RELATIVE_TOLERANCE), index=both.index)
            same = close | missing
        else:
            same = left.astype("string").fillna("<NA>") == right.astype("string").fillna("<NA>")
        counts[spec.name] = int((~same.astype(bool)).sum())
    return pd.Series(counts)
