"""The features of `features/` at one cutoff, written as a data scientist would in plain pandas: read the validated
Parquet files, boolean masks, groupby().agg and merge per feature group.

This is the baseline `benchmarks/features.py` times the Ibis/DuckDB stage against, and checks it against: it must
give the same columns (customer_id, cutoff, every FEATURE_SPECS feature, churned) and the same values.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from features.build import FEATURE_SPECS
from features.contract import RETAILER_CANCEL_REASONS, RETAILER_RETURN_REASONS
from features.cutoffs import FeatureParams, label_observed

DAY = pd.Timedelta(days=1)
TABLE_NAMES = ("customers", "orders", "reviews", "tickets", "returns")
BAD_KINDS = ("late_delivery", "retailer_cancellation", "retailer_return", "low_review", "complaint")
PANDAS_DTYPES = {"float64": "float64", "int64": "int64", "boolean": "boolean", "string": "string"}


def read_tables(folder: Path, categorical_ids: bool = False) -> dict[str, pd.DataFrame]:
    """The validated tables as stored (ids are strings). `categorical_ids` turns customer and order ids into one
    ordered categorical type per id across tables (a common pandas tuning: group-bys and merges on integer codes
    instead of hashing strings; ordered, so that max() of an id is the alphabetical one, as in SQL)."""
    tables = {name: pd.read_parquet(folder / f"{name}.parquet") for name in TABLE_NAMES}
    if categorical_ids:
        ids = {
            "customer_id": pd.CategoricalDtype(tables["customers"]["customer_id"].sort_values(), ordered=True),
            "order_id": pd.CategoricalDtype(tables["orders"]["order_id"].sort_values(), ordered=True),
        }
        for name, table in tables.items():
            tables[name] = table.astype({column: dtype for column, dtype in ids.items() if column in table.columns})
    return tables


def days(later: pd.Series | pd.Timestamp, earlier: pd.Series | pd.Timestamp) -> pd.Series:
    return (later - earlier) / DAY


def latest(frame: pd.DataFrame, time: str, value: str) -> pd.Series:
    """Per customer, `value` on the row with the latest `time` (ties: the largest value)."""
    last = frame[frame[time] == frame.groupby("customer_id", observed=True)[time].transform("max")]
    return last.groupby("customer_id", observed=True)[value].max()


def most_common(frame: pd.DataFrame, column: str) -> pd.Series:
    """Per customer, the most frequent non-null value of `column` (ties: alphabetically first)."""
    known = frame.dropna(subset=[column])
    counts = known.groupby(["customer_id", column], observed=True).size().rename("n").reset_index()
    counts = counts.sort_values(["customer_id", "n", column], ascending=[True, False, True])
    return counts.drop_duplicates("customer_id").set_index("customer_id")[column]


def cancel_known_at(orders: pd.DataFrame) -> pd.Series:
    """When an order became known as cancelled: cancelled_at, else the order time of a cancelled status; NaT: never."""
    by_status = orders["ordered_at"].where(orders["status"].fillna("") == "cancelled")
    return orders["cancelled_at"].fillna(by_status)


def rfm_and_trend(placed: pd.DataFrame, cutoff: pd.Timestamp) -> pd.DataFrame:
    cancelled = (cancel_known_at(placed) < cutoff).to_numpy()
    qualifying = placed[~cancelled]
    qualifying = qualifying.sort_values(["customer_id", "ordered_at", "order_id"])
    ordered_at, value = qualifying["ordered_at"], qualifying["order_value"]
    in_window = {d: ordered_at >= cutoff - pd.Timedelta(days=d) for d in (30, 90, 180, 365)}
    previous_90 = ~in_window[90] & in_window[180]
    qualifying = qualifying.assign(
        gap_days=qualifying.groupby("customer_id", observed=True)["ordered_at"].diff() / DAY,
        in_30d=in_window[30],
        in_90d=in_window[90],
        in_365d=in_window[365],
        in_prev_90d=previous_90,
        value_in_90d=value.where(in_window[90], 0.0),
        value_in_365d=value.where(in_window[365], 0.0),
        value_in_prev_90d=value.where(previous_90, 0.0),
    )
    repeat = qualifying.groupby("customer_id", observed=True).agg(
        last_order_at=("ordered_at", "max"),
        orders_30d=("in_30d", "sum"),
        orders_90d=("in_90d", "sum"),
        orders_365d=("in_365d", "sum"),
        orders_total=("order_id", "size"),
        value_sum=("order_value", "sum"),
        value_mean=("order_value", "mean"),
        value_max=("order_value", "max"),
        value_365d=("value_in_365d", "sum"),
        gap_mean_days=("gap_days", "mean"),
        gap_std_days=("gap_days", "std"),
        orders_prev_90d=("in_prev_90d", "sum"),
        value_90d=("value_in_90d", "sum"),
        value_prev_90d=("value_in_prev_90d", "sum"),
    )
    everything = (
        placed.assign(cancelled=cancelled)
        .groupby("customer_id", observed=True)
        .agg(first_order_at=("ordered_at", "min"), orders_placed=("order_id", "size"), cancelled=("cancelled", "sum"))
    )
    rfm = everything.join(repeat)
    counts = ["orders_30d", "orders_90d", "orders_365d", "orders_total", "orders_prev_90d"]
    values = ["value_sum", "value_365d", "value_90d", "value_prev_90d"]
    rfm[counts] = rfm[counts].fillna(0)
    rfm[values] = rfm[values].fillna(0.0)
    rfm["days_since_last_order"] = days(cutoff, rfm["last_order_at"])
    rfm["days_since_first_order"] = days(cutoff, rfm["first_order_at"])
    rfm["overdue_ratio"] = rfm["days_since_last_order"] / rfm["gap_mean_days"].replace(0.0, np.nan)
    rfm["cancelled_share"] = rfm["cancelled"] / rfm["orders_placed"]
    rfm["orders_90d_change"] = rfm["orders_90d"] - rfm["orders_prev_90d"]
    rfm["value_90d_change"] = rfm["value_90d"] - rfm["value_prev_90d"]
    rfm["cutoff_month"] = cutoff.month
    return rfm.drop(columns=["last_order_at", "first_order_at", "orders_placed", "cancelled", "value_prev_90d"])


def bad_events(tables: dict[str, pd.DataFrame], params: FeatureParams) -> pd.DataFrame:
    """Every bad experience: customer_id, order_id, kind, known_at (when it became known), delivered_at (a late
    order's delivery or cancellation)."""
    orders = tables["orders"].assign(cancel_known_at=cancel_known_at(tables["orders"]))
    customer_of_order = orders[["order_id", "customer_id"]]
    late = orders[
        orders["promised_delivery_at"].notna()
        & ~(orders["cancel_known_at"] <= orders["promised_delivery_at"])
        & (orders["delivered_at"].isna() | (orders["delivered_at"] > orders["promised_delivery_at"]))
    ]
    late = late.assign(delivered_at=late[["delivered_at", "cancel_known_at"]].min(axis=1))
    cancelled = orders[orders["cancel_known_at"].notna() & orders["cancel_reason"].isin(RETAILER_CANCEL_REASONS)]
    returns = tables["returns"]
    returns = returns[returns["reason"].isin(RETAILER_RETURN_REASONS)].merge(customer_of_order, on="order_id")
    reviews = tables["reviews"]
    low = reviews[reviews["review_score"] <= params.low_review_max].merge(customer_of_order, on="order_id")
    tickets = tables["tickets"]
    parts = [
        late.assign(kind="late_delivery", known_at=late["promised_delivery_at"]),
        cancelled.assign(kind="retailer_cancellation", known_at=cancelled["cancel_known_at"], delivered_at=pd.NaT),
        returns.assign(kind="retailer_return", known_at=returns["returned_at"], delivered_at=pd.NaT),
        low.assign(kind="low_review", known_at=low["reviewed_at"], delivered_at=pd.NaT),
        tickets.assign(kind="complaint", known_at=tickets["opened_at"], delivered_at=pd.NaT),
    ]
    columns = ["customer_id", "order_id", "kind", "known_at", "delivered_at"]
    return pd.concat([part[columns] for part in parts], ignore_index=True)


def satisfaction(
    tables: dict[str, pd.DataFrame],
    events: pd.DataFrame,
    placed: pd.DataFrame,
    cutoff: pd.Timestamp,
    params: FeatureParams,
) -> pd.DataFrame:
    known = events[events["known_at"] < cutoff]
    recent = {d: known["known_at"] >= cutoff - pd.Timedelta(days=d) for d in (90, 365)}
    flags = {}
    for kind in BAD_KINDS:
        is_kind = known["kind"] == kind
        flags[f"{kind}_90d"] = is_kind & recent[90]
        flags[f"{kind}_365d"] = is_kind & recent[365]
        flags[f"{kind}_total"] = is_kind
    flags["bad_experiences_90d"] = recent[90]
    flags["bad_experiences_365d"] = recent[365]
    flags["bad_experiences_total"] = pd.Series(True, index=known.index)
    days_late = days(known["delivered_at"].fillna(cutoff).clip(upper=cutoff), known["known_at"])
    known = known.assign(**flags, days_late=days_late.where((known["kind"] == "late_delivery") & recent[365]))
    by_customer = known.groupby("customer_id", observed=True)
    counts = by_customer[list(flags)].sum()
    counts["late_days_max_365d"] = by_customer["days_late"].max()
    counts["days_since_last_bad_experience"] = days(cutoff, by_customer["known_at"].max())

    bad_orders = known["order_id"].dropna().unique()
    placed = placed.assign(went_wrong=placed["order_id"].isin(bad_orders))
    per_order = placed.groupby("customer_id", observed=True).agg(bad_order_share=("went_wrong", "mean"))
    per_order["last_order_went_wrong"] = latest(placed, "ordered_at", "went_wrong")
    result = per_order.join(counts)
    result[list(flags)] = result[list(flags)].fillna(0)

    reviews = tables["reviews"]
    reviews = reviews[reviews["reviewed_at"] < cutoff].merge(
        tables["orders"][["order_id", "customer_id"]], on="order_id"
    )
    reviews["score"] = reviews["review_score"].astype("float64")
    result = result.join(
        reviews.groupby("customer_id", observed=True).agg(
            review_score_mean=("score", "mean"), review_score_min=("score", "min")
        )
    )
    result["review_score_last"] = latest(reviews, "reviewed_at", "score")

    tickets = tables["tickets"]
    tickets = tickets[tickets["opened_at"] < cutoff]
    resolved = tickets["resolved_at"] < cutoff
    tickets = tickets.assign(
        is_open=~resolved, resolution_days=days(tickets["resolved_at"], tickets["opened_at"]).where(resolved)
    )
    result = result.join(
        tickets.groupby("customer_id", observed=True).agg(
            tickets_open=("is_open", "sum"), ticket_resolution_days_mean=("resolution_days", "mean")
        )
    )
    result["tickets_open"] = result["tickets_open"].fillna(0)

    # Recovery: the order of the last bad experience had a ticket resolved within recovery_days, by the cutoff.
    all_tickets = tables["tickets"]
    fast = all_tickets[
        all_tickets["order_id"].notna()
        & (all_tickets["resolved_at"] < cutoff)
        & (days(all_tickets["resolved_at"], all_tickets["opened_at"]) <= params.recovery_days)
    ]
    last_bad_order = latest(known, "known_at", "order_id").dropna()
    result["last_bad_experience_recovered"] = last_bad_order.isin(fast["order_id"])
    return result


def returns(tables: dict[str, pd.DataFrame], placed: pd.DataFrame, cutoff: pd.Timestamp) -> pd.DataFrame:
    known = tables["returns"][tables["returns"]["returned_at"] < cutoff]
    known = known.merge(tables["orders"][["order_id", "customer_id"]], on="order_id")
    known = known.assign(
        returns_90d=known["returned_at"] >= cutoff - 90 * DAY,
        returns_365d=known["returned_at"] >= cutoff - 365 * DAY,
    )
    result = known.groupby("customer_id", observed=True).agg(
        returns_90d=("returns_90d", "sum"),
        returns_365d=("returns_365d", "sum"),
        returns_total=("order_id", "size"),
        last_returned_at=("returned_at", "max"),
    )
    share = placed["order_id"].isin(known["order_id"]).groupby(placed["customer_id"], observed=True).mean()
    result = result.reindex(share.index)
    counts = ["returns_90d", "returns_365d", "returns_total"]
    result[counts] = result[counts].fillna(0)
    result["returned_order_share"] = share
    result["days_since_last_return"] = days(cutoff, result.pop("last_returned_at"))
    return result


def relationship(tables: dict[str, pd.DataFrame], placed: pd.DataFrame, cutoff: pd.Timestamp) -> pd.DataFrame:
    method = placed["payment_method"]
    invoice = (method == "invoice").astype("float64").where(method.notna())  # unknown methods do not count
    result = (
        placed.assign(invoice=invoice)
        .groupby("customer_id", observed=True)
        .agg(
            first_order_at=("ordered_at", "min"),
            invoice_share=("invoice", "mean"),
            channels_used=("channel", "nunique"),
        )
    )
    result["main_channel"] = most_common(placed, "channel")
    result["main_payment_method"] = most_common(placed, "payment_method")
    customers = tables["customers"].set_index("customer_id")
    joined, left = customers["loyalty_joined_at"], customers["loyalty_left_at"]
    member_then = (joined < cutoff) & ~(left < cutoff)
    customers = customers.assign(loyalty_member=customers["loyalty_member"].where(joined.isna(), member_then))
    result = result.join(customers[["signed_up_at", "loyalty_member"]])
    result["country"] = most_common(placed, "country")
    started = result["signed_up_at"].fillna(result["first_order_at"]).clip(upper=result["first_order_at"])
    result["tenure_days"] = days(cutoff, started)
    return result.drop(columns=["first_order_at", "signed_up_at"])


def features_at(
    tables: dict[str, pd.DataFrame], cutoff: pd.Timestamp, params: FeatureParams, as_of: pd.Timestamp
) -> pd.DataFrame:
    orders = tables["orders"]
    placed = orders[orders["ordered_at"] < cutoff]
    active = placed[placed["ordered_at"] >= cutoff - pd.Timedelta(days=params.active_window_days)]
    table = pd.DataFrame({"customer_id": active["customer_id"].unique()})
    events = bad_events(tables, params)
    for group in (
        rfm_and_trend(placed, cutoff),
        satisfaction(tables, events, placed, cutoff, params),
        returns(tables, placed, cutoff),
        relationship(tables, placed, cutoff),
    ):
        table = table.merge(group, left_on="customer_id", right_index=True, how="left")

    if label_observed(cutoff, params.horizon_days, as_of):
        end = cutoff + pd.Timedelta(days=params.horizon_days)
        returned = orders[
            (orders["ordered_at"] >= cutoff) & (orders["ordered_at"] < end) & ~(cancel_known_at(orders) < end)
        ]
        churned = (~table["customer_id"].isin(returned["customer_id"])).astype("int8")
    else:
        churned = pd.Series(pd.NA, index=table.index, dtype="Int8")
    table["cutoff"] = cutoff
    table["churned"] = churned
    columns = {spec.name: PANDAS_DTYPES[spec.dtype] for spec in FEATURE_SPECS}
    return table[["customer_id", "cutoff", *columns, "churned"]].astype({"customer_id": "string", **columns})
