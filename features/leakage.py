"""A leakage check anyone can run on their own data: features at a cutoff must come out the same when everything
that happened at or after the cutoff is deleted first.

`known_before` rebuilds the contract tables as they stood just before the cutoff; build features on it with the
same code (features.build.features_at, passing the full data's `available` so the schema is the same) and compare
with `feature_differences`. `truncation_differences` does all of it for features and the label at one cutoff.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.build import FEATURE_SPECS, LABEL, features_at
from features.cutoffs import FeatureParams
from features.inputs import inputs_from_frames

# The column that says when a row itself came into being; rows at or after the cutoff are deleted.
ROW_TIME = {
    "customers": "signed_up_at",
    "orders": "ordered_at",
    "reviews": "reviewed_at",
    "tickets": "opened_at",
    "returns": "returned_at",
}
# A table whose rows came into being with a row of another: table -> (the key into it, that table).
ROW_TIME_VIA = {"order_lines": ("order_id", "orders")}
# Later events on a kept row; they are blanked when at or after the cutoff. (promised_delivery_at is a promise made
# at checkout, known from the order time.)
LATER_TIMES = {
    "orders": ("delivered_at", "cancelled_at"),
    "tickets": ("resolved_at",),
    "customers": ("loyalty_joined_at", "loyalty_left_at"),
}
RELATIVE_TOLERANCE = 1e-9


def known_before(tables: dict[str, pd.DataFrame], cutoff: pd.Timestamp) -> dict[str, pd.DataFrame]:
    """The tables as they stood just before `cutoff`: rows created at or after it are deleted, later timestamps of
    kept rows blanked, and every export-time snapshot wound back to what it said then where the data has the time it
    changed: an order's status (cancelled later: delivered or on its way; delivered or returned later, or delivered
    at no known time: shipped; returned later but delivered before: delivered) and loyalty membership (joined later:
    not a member; left later: a member). A snapshot without its time (a cancellation without cancelled_at, a flag
    without loyalty_joined_at, the customers table's country) cannot be wound back and is kept."""
    known = {}
    for name, table in tables.items():
        if name in ROW_TIME_VIA:
            key, owner = ROW_TIME_VIA[name]
            owners = tables[owner]
            known[name] = table.loc[table[key].isin(owners.loc[owners[ROW_TIME[owner]] < cutoff, key])]
            known[name] = known[name].reset_index(drop=True)
            continue
        if name not in ROW_TIME:
            raise ValueError(f"unknown table {name!r}; expected some of {sorted([*ROW_TIME, *ROW_TIME_VIA])}")
        time = ROW_TIME[name]
        kept = table.loc[~_at_or_after(table, time, cutoff)].copy() if time in table else table.copy()
        if name == "orders" and "status" in kept:
            returned = tables["returns"] if "returns" in tables else pd.DataFrame({"order_id": [], "returned_at": []})
            kept = _status_at_cutoff(kept, set(returned.loc[returned["returned_at"] < cutoff, "order_id"]), cutoff)
        if name == "customers" and "loyalty_member" in kept:
            kept = _membership_at_cutoff(kept, cutoff)
        for column in LATER_TIMES.get(name, ()):
            if column in kept:
                kept.loc[_at_or_after(kept, column, cutoff), column] = pd.NaT
        known[name] = kept.reset_index(drop=True)
    return known


def _at_or_after(table: pd.DataFrame, column: str, cutoff: pd.Timestamp) -> pd.Series:
    return (table[column] >= cutoff).fillna(False).astype(bool) if column in table else pd.Series(False, table.index)


def _status_at_cutoff(orders: pd.DataFrame, returned_before: set[object], cutoff: pd.Timestamp) -> pd.DataFrame:
    status = orders["status"].astype("string")
    delivered = (orders["delivered_at"] < cutoff).fillna(False) if "delivered_at" in orders else True
    cancelled_later = (status == "cancelled").fillna(False) & _at_or_after(orders, "cancelled_at", cutoff)
    status = status.mask(cancelled_later, "delivered")
    after_delivery = status.isin(["delivered", "returned"]).fillna(False)
    status = status.mask(after_delivery & ~delivered, "shipped")
    not_yet_returned = (status == "returned").fillna(False) & ~orders["order_id"].isin(returned_before)
    status = status.mask(not_yet_returned, "delivered")
    rewound = orders.assign(status=status.astype(orders["status"].dtype))
    if "cancel_reason" in rewound:
        rewound.loc[cancelled_later, "cancel_reason"] = None
    return rewound


def _membership_at_cutoff(customers: pd.DataFrame, cutoff: pd.Timestamp) -> pd.DataFrame:
    joined_later = _at_or_after(customers, "loyalty_joined_at", cutoff)
    left_later = _at_or_after(customers, "loyalty_left_at", cutoff) & ~joined_later
    member = customers["loyalty_member"].mask(joined_later, False).mask(left_later, True)
    return customers.assign(loyalty_member=member.astype(customers["loyalty_member"].dtype))


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


def truncation_differences(
    tables: dict[str, pd.DataFrame], cutoff: pd.Timestamp, params: FeatureParams, as_of: pd.Timestamp
) -> pd.Series:
    """Per feature and for the label, the rows that differ between the full tables (exported at `as_of`) and the
    tables as known then: just before `cutoff` for the features, just before the label window's end for the label.
    Each side decides from its own tables what the source provides, as an export at that time would. All zero when
    nothing known later leaks into the cutoff."""
    expected = features_at(inputs_from_frames(tables, as_of), cutoff, params).execute()
    cut = inputs_from_frames(known_before(tables, cutoff), cutoff)
    differences = feature_differences(expected, features_at(cut, cutoff, params).execute())
    window_end = cutoff + pd.Timedelta(days=params.horizon_days)
    at_window_end = inputs_from_frames(known_before(tables, window_end), window_end)
    labels = features_at(at_window_end, cutoff, params).execute()
    keys = ["customer_id", "cutoff"]
    both = expected[[*keys, LABEL]].merge(labels[[*keys, LABEL]], on=keys, how="outer", suffixes=("", "_known"))
    label_differs = both[LABEL].astype("Float64").fillna(-1) != both[f"{LABEL}_known"].astype("Float64").fillna(-1)
    return pd.concat([differences, pd.Series({LABEL: int(label_differs.sum())})])
