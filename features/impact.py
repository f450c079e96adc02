"""One row per order for the `impact` analysis: what was known about the customer before the order (the
adjustment set), what went wrong on the order (the treatments), and whether the customer ordered again within the
horizon (the outcome). Ibis expressions, so the same definitions run on DuckDB and Spark.

Point in time: every history column of an order sees only orders placed strictly before it and bad experiences
known strictly before its `ordered_at` (each from the moment `features.satisfaction.bad_events` says it became
known). The treatment flags and the outcome are about the order itself and what followed it; they are not history.

| kind                  | the order ...                                                    | needs                     |
|-----------------------|------------------------------------------------------------------|---------------------------|
| late_delivery         | was not cancelled and arrived after the promised date (or had    | promised and delivered    |
|                       | not arrived by a promised date already passed)                   | times                     |
| retailer_cancellation | was cancelled by the shop (out of stock, fraud, other)           | status, cancel_reason     |
| wrong_item            | was returned or complained about as the wrong item               | return or ticket reasons  |
| damaged               | was returned or complained about as damaged                      | return or ticket reasons  |
| retailer_return       | was returned as wrong, damaged or not as described               | returns with reasons      |
| any_return            | was returned, for any reason (only when returns have no reason)  | returns                   |
| complaint             | got a customer-service ticket                                    | tickets                   |
| low_review            | got a review scoring `low_review_max` or lower                   | reviews                   |

`ticket_fast`: a ticket on the order was resolved within `recovery_days` of being opened (service recovery).
"""

from __future__ import annotations

from dataclasses import replace

import ibis

from features.common import cancel_known_at, days_between
from features.contract import RETAILER_CANCEL_REASONS, RETAILER_RETURN_REASONS
from features.cutoffs import FeatureParams
from features.inputs import FeatureInputs
from features.relationship import loyalty_member_at
from features.satisfaction import BAD_KINDS, bad_events

# kind -> alternatives, each a tuple of what the source must provide; the kind is available when one holds.
IMPACT_KINDS: dict[str, tuple[tuple[str, ...], ...]] = {
    "late_delivery": (("orders.promised_delivery_at", "orders.delivered_at"),),
    "retailer_cancellation": (("orders.status", "orders.cancel_reason"),),
    "wrong_item": (("returns", "returns.reason"), ("tickets", "tickets.reason")),
    "damaged": (("returns", "returns.reason"), ("tickets", "tickets.reason")),
    "retailer_return": (("returns", "returns.reason"),),
    "any_return": (("returns",),),
    "complaint": (("tickets",),),
    "low_review": (("reviews",),),
}
# What went wrong in the shop's operations; complaints and low reviews are the customer's response to it.
FAILURE_KINDS = ("late_delivery", "retailer_cancellation", "wrong_item", "damaged", "retailer_return", "any_return")
RESPONSE_KINDS = ("complaint", "low_review")
# History columns: the adjustment set, all known before the order.
HISTORY_COLUMNS = (
    "prev_orders",
    "prev_cancelled",
    "prev_value_mean",
    "days_since_prev_order",
    "days_since_first_order",
    "days_since_signup",
    *(f"prev_{kind}" for kind in BAD_KINDS),
    "prev_bad_experiences",
    "days_since_prev_bad_experience",
)
CONTEXT_COLUMNS = ("order_value", "channel", "payment_method", "loyalty_member", "country", "month")


def available_kinds(inputs: FeatureInputs) -> dict[str, bool]:
    """Which kinds the source can show. any_return stands in for retailer_return only when returns have no
    reason: with reasons, a customer's own return (wrong size) is no bad experience."""
    available = {
        kind: any(all(inputs.has(need) for need in option) for option in options)
        for kind, options in IMPACT_KINDS.items()
    }
    available["any_return"] = available["any_return"] and not available["retailer_return"]
    return available


def restrict_to_customers(inputs: FeatureInputs, customers: ibis.Table) -> FeatureInputs:
    """The inputs with only the orders (and so the history, treatments and outcomes) of `customers` (customer_id);
    other tables join to the kept orders."""
    orders = inputs.orders.join(customers.select("customer_id"), "customer_id")
    return replace(inputs, orders=orders)


def order_history(inputs: FeatureInputs, params: FeatureParams) -> ibis.Table:
    """Every order with its history columns (HISTORY_COLUMNS) and context (CONTEXT_COLUMNS): what was known when
    it was placed."""
    orders = inputs.orders
    window = ibis.window(group_by=orders.customer_id, order_by=[orders.ordered_at, orders.order_id])
    # Running totals up to and including the order, less the order itself: what came before it.
    running = ibis.window(
        group_by=orders.customer_id, order_by=[orders.ordered_at, orders.order_id], preceding=None, following=0
    )
    prev_orders = ibis.row_number().over(window)
    prev_value_sum = orders.order_value.sum().over(running) - orders.order_value
    history = orders.select(
        "order_id",
        "customer_id",
        "ordered_at",
        "order_value",
        "channel",
        "payment_method",
        "country",
        prev_orders=prev_orders,
        prev_value_mean=ibis.ifelse(prev_orders > 0, prev_value_sum / prev_orders, ibis.null()),
        days_since_prev_order=days_between(orders.ordered_at, orders.ordered_at.lag().over(window)),
        days_since_first_order=days_between(orders.ordered_at, orders.ordered_at.min().over(window)),
        month=orders.ordered_at.month(),
    )
    history = history.join(_cancellations_before(orders), "order_id")
    history = history.join(_bad_history(orders, bad_events(inputs, params)), "order_id")
    if inputs.customers is not None:
        customers = inputs.customers.select(
            "customer_id",
            "signed_up_at",
            "loyalty_member",
            "loyalty_joined_at",
            "loyalty_left_at",
            customer_country=inputs.customers.country,
        )
        history = history.left_join(customers, "customer_id").drop("customer_id_right")
        # Membership as it stood when the order was placed; the country the order itself went to, else the
        # customer's (an export-time snapshot, like an undated loyalty flag).
        history = history.mutate(
            days_since_signup=days_between(history.ordered_at, history.signed_up_at),
            loyalty_member=loyalty_member_at(history, history.ordered_at).cast("string"),
            country=ibis.coalesce(history.country, history.customer_country),
        ).drop("signed_up_at", "loyalty_joined_at", "loyalty_left_at", "customer_country")
    else:
        history = history.mutate(
            days_since_signup=ibis.null().cast("float64"),
            loyalty_member=ibis.null().cast("string"),
        )
    return history


def _cancellations_before(orders: ibis.Table) -> ibis.Table:
    """Per order: the customer's orders known to be cancelled strictly before it was placed (`cancel_known_at`: an
    earlier order cancelled after this one was placed is not yet history). One timeline per customer, as in
    `_bad_history`: at equal times a cancellation sorts after the order."""
    known = cancel_known_at(orders)
    order_rows = orders.select(
        "customer_id",
        order_id=orders.order_id,
        time=orders.ordered_at.cast("timestamp"),
        rank=ibis.literal(0),
        cancellation=ibis.literal(0),
    )
    cancellation_rows = orders.filter(known.notnull()).select(
        "customer_id",
        order_id=ibis.null().cast("string"),
        time=known.cast("timestamp"),
        rank=ibis.literal(1),
        cancellation=ibis.literal(1),
    )
    timeline = order_rows.union(cancellation_rows)
    so_far = ibis.window(
        group_by=timeline.customer_id, order_by=[timeline.time, timeline.rank], preceding=None, following=0
    )
    counted = timeline.mutate(prev_cancelled=timeline.cancellation.sum().over(so_far))
    return counted.filter(counted.rank == 0).select("order_id", "prev_cancelled")


def _bad_history(orders: ibis.Table, events: ibis.Table) -> ibis.Table:
    """Per order: bad experiences of each kind known strictly before it was placed, and days since the last one.

    Orders and events go on one timeline per customer; at equal times an event sorts after the order, so an event
    known at the very moment of the order is not yet history."""
    order_rows = orders.select(
        "customer_id",
        order_id=orders.order_id,
        time=orders.ordered_at.cast("timestamp"),
        rank=ibis.literal(0),
        kind=ibis.null().cast("string"),
    )
    event_rows = events.select(
        "customer_id",
        order_id=ibis.null().cast("string"),
        time=events.known_at.cast("timestamp"),
        rank=ibis.literal(1),
        kind=events.kind,
    )
    timeline = ibis.union(order_rows, event_rows)
    running = ibis.window(
        group_by=timeline.customer_id,
        order_by=[timeline.time, timeline.rank, timeline.order_id],
        preceding=None,
        following=0,
    )
    is_event = timeline.rank == 1
    counts = {f"prev_{kind}": ibis.ifelse(timeline.kind == kind, 1, 0).sum().over(running) for kind in BAD_KINDS}
    last_event = ibis.ifelse(is_event, timeline.time, ibis.null()).max().over(running)
    ran = timeline.mutate(
        prev_bad_experiences=ibis.ifelse(is_event, 1, 0).sum().over(running), last_event_at=last_event, **counts
    )
    ran = ran.filter(ran.rank == 0)
    return ran.select(
        "order_id",
        *counts,
        "prev_bad_experiences",
        days_since_prev_bad_experience=days_between(ran.time, ran.last_event_at),
    )


def order_treatments(inputs: FeatureInputs, params: FeatureParams) -> ibis.Table:
    """Every order with one boolean column per available kind (what went wrong on it), ticket_fast (null: no
    ticket) and the outcome columns: days_to_next_order (null: none by as-of) and follow_up_days."""
    orders = inputs.orders
    available = available_kinds(inputs)
    status = orders.status.fill_null("")
    flags: dict[str, ibis.Value] = {}
    if available["late_delivery"]:
        flags["late_delivery"] = (
            orders.promised_delivery_at.notnull()
            & cancel_known_at(orders).isnull()
            & (
                (orders.delivered_at > orders.promised_delivery_at)
                | (
                    orders.delivered_at.isnull()
                    & ~status.isin(["delivered", "returned"])
                    & (orders.promised_delivery_at < inputs.as_of.to_pydatetime())
                )
            )
        ).fill_null(False)
    if available["retailer_cancellation"]:
        flags["retailer_cancellation"] = (
            (status == "cancelled") & orders.cancel_reason.isin(list(RETAILER_CANCEL_REASONS))
        ).fill_null(False)
    window = ibis.window(group_by=orders.customer_id, order_by=[orders.ordered_at, orders.order_id])
    table = orders.select(
        "order_id",
        **flags,
        days_to_next_order=days_between(orders.ordered_at.lead().over(window), orders.ordered_at),
        follow_up_days=days_between(ibis.literal(inputs.as_of.to_pydatetime()), orders.ordered_at),
    )
    reasons = _order_reasons(inputs, params)
    if reasons is not None:
        table = table.left_join(reasons, "order_id").drop("order_id_right")
        for kind in ("wrong_item", "damaged", "retailer_return", "any_return", "complaint", "low_review"):
            if available[kind]:
                table = table.mutate(**{kind: table[f"has_{kind}"].fill_null(False)})
        table = table.drop(*(c for c in table.columns if c.startswith("has_")))
    return table


def _order_reasons(inputs: FeatureInputs, params: FeatureParams) -> ibis.Table | None:
    """Per order with a return, ticket or review: has_<kind> flags and ticket_fast."""
    parts = []

    def part(table: ibis.Table, **values: ibis.Value) -> None:
        parts.append(
            table.select(
                order_id=table.order_id.cast("string"),
                **{name: values.get(name, ibis.literal(False)) for name in _REASON_FLAGS},
                fast=values.get("fast", ibis.null().cast("boolean")),
            )
        )

    if inputs.returns is not None:
        returns = inputs.returns
        reason = returns.reason.fill_null("")
        part(
            returns,
            has_wrong_item=reason == "wrong_item",
            has_damaged=reason == "damaged",
            has_retailer_return=reason.isin(list(RETAILER_RETURN_REASONS)),
            has_any_return=ibis.literal(True),
        )
    if inputs.tickets is not None:
        tickets = inputs.tickets.filter(inputs.tickets.order_id.notnull())
        reason = tickets.reason.fill_null("")
        resolved_days = days_between(tickets.resolved_at, tickets.opened_at)
        part(
            tickets,
            has_wrong_item=reason == "wrong_item",
            has_damaged=reason == "damaged",
            has_complaint=ibis.literal(True),
            fast=(resolved_days <= params.recovery_days).fill_null(False),
        )
    if inputs.reviews is not None:
        reviews = inputs.reviews
        part(reviews, has_low_review=(reviews.review_score <= params.low_review_max).fill_null(False))
    if not parts:
        return None
    every = ibis.union(*parts)
    return every.aggregate(
        by="order_id",
        **{name: every[name].cast("int8").max() == 1 for name in _REASON_FLAGS},
        ticket_fast=every.fast.cast("int8").max() == 1,
    )


_REASON_FLAGS = (
    "has_wrong_item",
    "has_damaged",
    "has_retailer_return",
    "has_any_return",
    "has_complaint",
    "has_low_review",
)


def impact_orders(inputs: FeatureInputs, params: FeatureParams) -> ibis.Table:
    """Orders whose whole horizon is observed, each with history, context, treatments and the outcome
    `ordered_again` (another order, of any status, placed within horizon_days after it)."""
    table = order_history(inputs, params).join(order_treatments(inputs, params), "order_id")
    table = table.drop(*(c for c in table.columns if c.endswith("_right")))
    observed = table.follow_up_days >= params.horizon_days
    table = table.filter(observed)
    gap = table.days_to_next_order
    return table.mutate(ordered_again=(gap.notnull() & (gap <= params.horizon_days) & (gap > 0)).fill_null(False))
