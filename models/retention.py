"""Do customers come back after an order, and does a bad experience on that order change it? Descriptive analysis of
the validated contract tables for the notebooks (pandas in, pandas out, no file I/O).

Every order (a cancelled one too: an out-of-stock cancellation is an order that went wrong) gets the time to the
same customer's next qualifying (non-cancelled) order placed after it, and one flag per kind of bad experience.
The share of orders followed by another order within d days is a Kaplan-Meier estimate: an order placed shortly
before the data's export time has not had d days to be followed yet, so it counts only as long as it was observed.

| experience    | the order ...                                                                 | needs              |
|---------------|-------------------------------------------------------------------------------|--------------------|
| late_delivery | was not cancelled and arrived after the promised date, or had not arrived by  | promised and       |
|               | a promised date already passed (as in the features)                           | delivered times    |
| out_of_stock  | was cancelled by the shop as out of stock                                     | status, reason     |
| wrong_item    | was returned, or complained about, as the wrong item                          | returns or tickets |
| damaged       | was returned, or complained about, as damaged                                 | returns or tickets |
| low_review    | got a review scoring `low_review_max` or lower                                | reviews            |
| ticket        | got a customer-service ticket                                                 | tickets            |

A flag is missing (<NA>) on every order when the source lacks what it needs, so "not known" never reads as
"went fine".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

SECONDS_PER_DAY = 86_400
EXPERIENCES = ("late_delivery", "wrong_item", "out_of_stock", "damaged", "low_review", "ticket")
NO_BAD_EXPERIENCE = "none"


def order_experiences(
    tables: dict[str, pd.DataFrame], as_of: pd.Timestamp, low_review_max: int = 2, recovery_days: float = 2.0
) -> pd.DataFrame:
    """One row per order: order_id, customer_id, ordered_at, order_value, cancelled, payment_method, loyalty_member,
    days_to_next_order (NaN: no later order by `as_of`), follow_up_days (from the order to `as_of`), a flag per
    kind in EXPERIENCES, any_bad_experience, and ticket_resolved_fast (a ticket on the order was resolved within
    `recovery_days` of opening; missing on orders without a ticket)."""
    if "orders" not in tables:
        raise ValueError("the analysis needs the orders table")
    orders = tables["orders"]
    late = orders["ordered_at"] >= as_of
    if late.any():
        raise ValueError(f"{int(late.sum())} orders are placed at or after as_of {as_of}; pass the data's export time")
    if orders["order_id"].duplicated().any():
        raise ValueError("order_id is not unique in the orders table")
    status = _column(orders, "status").astype("string").fillna("")
    result = pd.DataFrame(
        {
            "order_id": orders["order_id"].to_numpy(),
            "customer_id": orders["customer_id"].to_numpy(),
            "ordered_at": orders["ordered_at"].to_numpy(),
            "order_value": orders["order_value"].astype(float).to_numpy(),
            "cancelled": (status == "cancelled").to_numpy(),
            "payment_method": _column(orders, "payment_method").astype("string").to_numpy(),
        }
    )
    result["loyalty_member"] = _loyalty(result["customer_id"], tables.get("customers"))
    result["days_to_next_order"] = _days_to_next_order(result)
    result["follow_up_days"] = (as_of - result["ordered_at"]).dt.total_seconds() / SECONDS_PER_DAY
    order_ids = result["order_id"]
    result["late_delivery"] = _late_deliveries(orders, status, as_of)
    result["out_of_stock"] = _flag(
        (status == "cancelled") & (_column(orders, "cancel_reason") == "out_of_stock").fillna(False),
        _has(orders, "status") and _has(orders, "cancel_reason"),
    )
    returns, tickets, reviews = tables.get("returns"), tables.get("tickets"), tables.get("reviews")
    for kind in ("wrong_item", "damaged"):
        reported = _orders_where(returns, "reason", kind) | _orders_where(tickets, "reason", kind)
        known = _has(returns, "reason") or _has(tickets, "reason")
        result[kind] = _flag(order_ids.isin(reported), known)
    low = _orders_where(reviews, "review_score", None, lambda score: score <= low_review_max)
    result["low_review"] = _flag(order_ids.isin(low), _has(reviews, "review_score"))
    result["ticket"] = _flag(order_ids.isin(_orders_where(tickets)), tickets is not None and len(tickets) > 0)
    result["any_bad_experience"] = result[list(EXPERIENCES)].fillna(False).any(axis=1)
    with_ticket = result["ticket"].fillna(False).astype(bool)
    result["ticket_resolved_fast"] = _resolved_fast(order_ids, tickets, recovery_days).where(with_ticket)
    return result


def repeat_purchase_summary(orders: pd.DataFrame) -> pd.Series:
    """Over the non-cancelled orders (order_id, customer_id, ordered_at, order_value, cancelled): customers,
    repeat_customers (two orders or more), repeat_rate, revenue, returning_revenue (orders of a customer who had
    ordered before) and returning_revenue_share."""
    placed = orders.loc[~orders["cancelled"].astype(bool)].sort_values(["customer_id", "ordered_at", "order_id"])
    returning = placed.groupby("customer_id").cumcount() > 0
    per_customer = placed.groupby("customer_id").size()
    revenue = float(placed["order_value"].sum())
    returning_revenue = float(placed.loc[returning, "order_value"].sum())
    customers = len(per_customer)
    repeat = int((per_customer >= 2).sum())
    return pd.Series(
        {
            "customers": customers,
            "repeat_customers": repeat,
            "repeat_rate": repeat / customers if customers else np.nan,
            "revenue": revenue,
            "returning_revenue": returning_revenue,
            "returning_revenue_share": returning_revenue / revenue if revenue else np.nan,
        }
    )


def repeat_curve(orders: pd.DataFrame, days: Sequence[float], by: str | None = None) -> pd.DataFrame:
    """Kaplan-Meier share of orders followed by the customer's next order within each of `days` (columns group,
    days, ordered_again, orders); one curve per value of `by` (rows where it is missing are left out), or one
    curve for all orders (group "all")."""
    grid = np.asarray(days, dtype=float)
    if (np.diff(grid) < 0).any() or (grid < 0).any():
        raise ValueError("days must be non-negative and increasing")
    groups = [("all", orders)] if by is None else list(orders.dropna(subset=[by]).groupby(by, sort=True))
    curves = [
        pd.DataFrame(
            {
                "group": [str(name)] * len(grid),
                "days": grid,
                "ordered_again": _kaplan_meier_share(
                    frame["days_to_next_order"].to_numpy(dtype=float),
                    frame["follow_up_days"].to_numpy(dtype=float),
                    grid,
                ),
                "orders": len(frame),
            }
        )
        for name, frame in groups
    ]
    return pd.concat(curves, ignore_index=True) if curves else _empty_curve()


def experience_curves(orders: pd.DataFrame, days: Sequence[float]) -> pd.DataFrame:
    """repeat_curve for the orders with each kind of bad experience the source records (group = the kind) and
    for the orders with none of them (group "none"), the common reference."""
    parts = [repeat_curve(orders.loc[~orders["any_bad_experience"]], days).assign(group=NO_BAD_EXPERIENCE)]
    for kind in EXPERIENCES:
        flagged = orders.loc[orders[kind].fillna(False).astype(bool)]
        if len(flagged):
            parts.append(repeat_curve(flagged, days).assign(group=kind))
    return pd.concat(parts, ignore_index=True)


def _kaplan_meier_share(to_next: np.ndarray, follow_up: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """1 - S(d): an order is an event at its time to the next order, else censored at its follow-up time (an order
    censored at an event time is still at risk then, the usual convention)."""
    if len(to_next) == 0:
        return np.full(len(grid), np.nan)
    event = ~np.isnan(to_next)
    duration = np.where(event, to_next, follow_up)
    times, events_at = np.unique(duration[event], return_counts=True)
    at_risk = len(duration) - np.searchsorted(np.sort(duration), times, side="left")
    survival = np.cumprod(1.0 - events_at / at_risk)
    index = np.searchsorted(times, grid, side="right") - 1
    return 1.0 - np.where(index >= 0, survival[np.clip(index, 0, None)] if len(times) else 1.0, 1.0)


def _days_to_next_order(orders: pd.DataFrame) -> pd.Series:
    """Days to the customer's next non-cancelled order placed strictly later (NaN when there is none)."""
    placed = orders.loc[~orders["cancelled"], ["customer_id", "ordered_at"]].rename(columns={"ordered_at": "next_at"})
    placed = placed.sort_values("next_at")
    query = orders[["customer_id", "ordered_at"]].reset_index().sort_values("ordered_at")
    matched = pd.merge_asof(
        query, placed, left_on="ordered_at", right_on="next_at", by="customer_id",
        direction="forward", allow_exact_matches=False,
    )  # fmt: skip
    matched = matched.set_index("index").reindex(orders.index)
    return (matched["next_at"] - matched["ordered_at"]).dt.total_seconds() / SECONDS_PER_DAY


def _late_deliveries(orders: pd.DataFrame, status: pd.Series, as_of: pd.Timestamp) -> pd.Series:
    if not (_has(orders, "promised_delivery_at") and _has(orders, "delivered_at")):
        return _flag(pd.Series(False, index=orders.index), False).reset_index(drop=True)
    promised, delivered = orders["promised_delivery_at"], orders["delivered_at"]
    arrived_late = delivered > promised
    never_arrived = delivered.isna() & ~status.isin(["delivered", "returned"]) & (promised < as_of)
    late = promised.notna() & (status != "cancelled") & (arrived_late | never_arrived)
    return _flag(late.fillna(False), True).reset_index(drop=True)


def _resolved_fast(order_ids: pd.Series, tickets: pd.DataFrame | None, recovery_days: float) -> pd.Series:
    if tickets is None or "resolved_at" not in tickets.columns:
        return pd.Series(pd.NA, index=order_ids.index, dtype="boolean")
    took = (tickets["resolved_at"] - tickets["opened_at"]).dt.total_seconds() / SECONDS_PER_DAY
    fast = set(tickets.loc[(took <= recovery_days).fillna(False), "order_id"].dropna())
    return pd.Series(order_ids.isin(fast).to_numpy(), index=order_ids.index, dtype="boolean")


def _loyalty(customer_ids: pd.Series, customers: pd.DataFrame | None) -> pd.Series:
    if customers is None or "loyalty_member" not in customers.columns:
        return pd.Series(pd.NA, index=customer_ids.index, dtype="boolean")
    member = customers.drop_duplicates("customer_id").set_index("customer_id")["loyalty_member"].astype("boolean")
    return pd.Series(customer_ids.map(member).to_numpy(), index=customer_ids.index, dtype="boolean")


def _orders_where(
    table: pd.DataFrame | None,
    column: str | None = None,
    value: object = None,
    test: Callable[[pd.Series], pd.Series] | None = None,
) -> set[object]:
    """Order ids of the rows whose `column` equals `value` (or passes `test`); every row's without a column."""
    if table is None or (column is not None and column not in table.columns):
        return set()
    if column is None:
        return set(table["order_id"].dropna())
    matches = test(table[column]) if test is not None else table[column] == value
    return set(table.loc[matches.fillna(False).astype(bool), "order_id"].dropna())


def _column(table: pd.DataFrame, name: str) -> pd.Series:
    return table[name] if name in table.columns else pd.Series(pd.NA, index=table.index, dtype="string")


def _has(table: pd.DataFrame | None, column: str) -> bool:
    """The source provides the column: present and not all missing."""
    return table is not None and column in table.columns and bool(table[column].notna().any())


def _flag(values: pd.Series, known: bool) -> pd.Series:
    flags = pd.Series(np.asarray(values, dtype=bool), dtype="boolean")
    return flags if known else pd.Series(pd.NA, index=flags.index, dtype="boolean")


def _empty_curve() -> pd.DataFrame:
    return pd.DataFrame({"group": pd.Series(dtype=str), "days": [], "ordered_again": [], "orders": []})
