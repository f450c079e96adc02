"""Bad experiences and how the shop handled them, each counted from the moment it became known.

| kind                  | what                                                   | known from                 |
|-----------------------|--------------------------------------------------------|----------------------------|
| late_delivery         | not delivered by the promised date                     | promised_delivery_at       |
| retailer_cancellation | cancelled by the shop (out of stock, fraud, other)     | cancelled_at (without it:  |
|                       |                                                        | ordered_at, a snapshot)    |
| retailer_return       | returned as wrong item, damaged or not as described    | returned_at                |
| low_review            | review score <= `low_review_max`                       | reviewed_at                |
| complaint             | a customer-service ticket                              | opened_at                  |

A delivery is late from its promised date on, whether it then arrives late (delivered_at > promised) or has not
arrived at all; how late is measured up to the cutoff, so a parcel still on its way counts the days so far. Only
times decide, never the export's status: an order arrived when its delivered_at says (a "delivered" status without
one is still on its way as far as any cutoff can tell), and one cancelled before its promised date was never late
(one cancelled later was late until its cancellation).
"""

from __future__ import annotations

import ibis
import pandas as pd

from features.common import (
    at,
    cancel_known_at,
    count_if,
    days_before,
    days_between,
    join_customers,
    latest,
)
from features.contract import RETAILER_CANCEL_REASONS, RETAILER_RETURN_REASONS
from features.cutoffs import FeatureParams
from features.inputs import FeatureInputs
from features.orders import order_facts, order_summary
from features.spec import FeatureSpec, reading_order_status

# kind -> what the source must provide for it
BAD_KINDS: dict[str, tuple[str, ...]] = {
    "late_delivery": ("orders.promised_delivery_at", "orders.delivered_at"),
    "retailer_cancellation": ("orders.status", "orders.cancel_reason"),
    "retailer_return": ("returns", "returns.reason"),
    "low_review": ("reviews",),
    "complaint": ("tickets",),
}
BAD_WINDOWS = (90, 365)
# What a source needs for at least one kind: without any, "no bad experience" is unknown, not a fact.
ANY_BAD_KIND: tuple[tuple[str, ...], ...] = tuple(BAD_KINDS.values())


def _count_specs() -> tuple[FeatureSpec, ...]:
    specs = []
    for kind, needs in BAD_KINDS.items():
        for days in BAD_WINDOWS:
            specs.append(
                FeatureSpec(
                    f"{kind}_{days}d",
                    "satisfaction",
                    "int64",
                    "events",
                    f"{days} days",
                    f"{kind.replace('_', ' ').capitalize()}s known in the {days} days before the cutoff.",
                    needs,
                )
            )
        specs.append(
            FeatureSpec(
                f"{kind}_total",
                "satisfaction",
                "int64",
                "events",
                "all history",
                f"{kind.replace('_', ' ').capitalize()}s known before the cutoff.",
                needs,
            )
        )
    return tuple(specs)


# Whether an order was cancelled decides late deliveries (not after a cancellation) and retailer cancellations, and
# with them every feature over all kinds of bad experience.
NOT_READING_ORDER_STATUS = (
    *(f"{kind}_{window}" for kind in ("retailer_return", "low_review", "complaint")
      for window in (*(f"{days}d" for days in BAD_WINDOWS), "total")),
    "review_score_mean", "review_score_min", "review_score_last", "tickets_open", "ticket_resolution_days_mean",
)  # fmt: skip
SATISFACTION_SPECS: tuple[FeatureSpec, ...] = reading_order_status((
    *_count_specs(),
    *(
        FeatureSpec(f"bad_experiences_{days}d", "satisfaction", "int64", "events", f"{days} days",
                    f"Bad experiences of every available kind known in the {days} days before the cutoff.",
                    needs_one_of=ANY_BAD_KIND)
        for days in BAD_WINDOWS
    ),
    FeatureSpec("bad_experiences_total", "satisfaction", "int64", "events", "all history",
                "Bad experiences of every available kind known before the cutoff.", needs_one_of=ANY_BAD_KIND),
    FeatureSpec("late_days_max_365d", "satisfaction", "float64", "days", "365 days",
                "Most days late of a late delivery known in the 365 days before the cutoff (counted up to the cutoff "
                "while the parcel is still on its way).", BAD_KINDS["late_delivery"]),
    FeatureSpec("bad_order_share", "satisfaction", "float64", "share", "all history",
                "Share of the orders placed before the cutoff with a bad experience known by then.",
                needs_one_of=ANY_BAD_KIND),
    FeatureSpec("last_order_went_wrong", "satisfaction", "boolean", "flag", "last order",
                "The customer's last order before the cutoff has a bad experience known by then.",
                needs_one_of=ANY_BAD_KIND),
    FeatureSpec("days_since_last_bad_experience", "satisfaction", "float64", "days", "all history",
                "Days from the last bad experience becoming known to the cutoff (null: none).",
                needs_one_of=ANY_BAD_KIND),
    FeatureSpec("review_score_mean", "satisfaction", "float64", "score 1-5", "all history",
                "Mean score of reviews written before the cutoff.", ("reviews",)),
    FeatureSpec("review_score_min", "satisfaction", "float64", "score 1-5", "all history",
                "Lowest score of reviews written before the cutoff.", ("reviews",)),
    FeatureSpec("review_score_last", "satisfaction", "float64", "score 1-5", "last review",
                "Score of the last review written before the cutoff.", ("reviews",)),
    FeatureSpec("tickets_open", "satisfaction", "int64", "tickets", "at the cutoff",
                "Tickets opened before the cutoff and not resolved by then.", ("tickets",)),
    FeatureSpec("ticket_resolution_days_mean", "satisfaction", "float64", "days", "all history",
                "Mean days from opening to resolution of tickets resolved before the cutoff.",
                ("tickets", "tickets.resolved_at")),
    FeatureSpec("last_bad_experience_recovered", "satisfaction", "boolean", "flag", "last bad experience",
                "The order of the last bad experience has a ticket resolved within recovery_days, by the cutoff "
                "(null: no bad experience tied to an order).", ("tickets", "tickets.resolved_at")),
), unless=NOT_READING_ORDER_STATUS)  # fmt: skip


def bad_events(inputs: FeatureInputs, params: FeatureParams) -> ibis.Table:
    """Every bad experience of the kinds the source supports: customer_id, order_id, kind, known_at and
    settled_at (a late order's delivery or cancellation, null while on its way).

    The table is cutoff-independent; a cutoff keeps the events with known_at before it.
    """
    orders = inputs.orders
    customer_of_order = orders.select("order_id", "customer_id")
    parts = []

    def event(table: ibis.Table, kind: str, known_at: ibis.Value, settled_at: ibis.Value | None = None) -> None:
        parts.append(
            table.select(
                customer_id=table.customer_id,
                order_id=table.order_id.cast("string"),
                kind=ibis.literal(kind),
                known_at=known_at.cast("timestamp"),
                settled_at=(settled_at if settled_at is not None else ibis.null()).cast("timestamp"),
            )
        )

    orders = orders.mutate(cancel_known_at=cancel_known_at(orders))
    if _supported(inputs, "late_delivery"):
        late = orders.filter(
            orders.promised_delivery_at.notnull()
            & ~(orders.cancel_known_at <= orders.promised_delivery_at).fill_null(False)
            & (orders.delivered_at.isnull() | (orders.delivered_at > orders.promised_delivery_at))
        )
        # least() skips nulls: the delivery or the cancellation, whichever came first
        event(late, "late_delivery", late.promised_delivery_at, ibis.least(late.delivered_at, late.cancel_known_at))
    if _supported(inputs, "retailer_cancellation"):
        cancelled = orders.filter(
            orders.cancel_known_at.notnull() & orders.cancel_reason.isin(list(RETAILER_CANCEL_REASONS))
        )
        event(cancelled, "retailer_cancellation", cancelled.cancel_known_at)
    if inputs.returns is not None and _supported(inputs, "retailer_return"):
        returns = inputs.returns.filter(inputs.returns.reason.isin(list(RETAILER_RETURN_REASONS)))
        returns = returns.join(customer_of_order, "order_id")
        event(returns, "retailer_return", returns.returned_at)
    if inputs.reviews is not None and _supported(inputs, "low_review"):
        low = inputs.reviews.filter(inputs.reviews.review_score <= params.low_review_max)
        low = low.join(customer_of_order, "order_id")
        event(low, "low_review", low.reviewed_at)
    if inputs.tickets is not None and _supported(inputs, "complaint"):
        event(inputs.tickets, "complaint", inputs.tickets.opened_at)
    if not parts:
        return _no_events(inputs)
    return ibis.union(*parts)


def last_bad_experience(events: ibis.Table, cutoff: pd.Timestamp) -> ibis.Table:
    """Per customer, the latest bad experience known before the cutoff: customer_id, last_bad_kind,
    last_bad_known_at. For the risk list, not a model feature; simultaneous events resolve to the kind that sorts
    last, so the answer never depends on row order."""
    known = events.filter(events.known_at < at(cutoff))
    kinds = latest(known, "known_at", "kind", "last_bad_kind")
    when = known.aggregate(by="customer_id", last_bad_known_at=known.known_at.max())
    return join_customers(when, kinds)


def _supported(inputs: FeatureInputs, kind: str) -> bool:
    return all(inputs.has(need) for need in BAD_KINDS[kind])


def _no_events(inputs: FeatureInputs) -> ibis.Table:
    orders = inputs.orders
    return orders.filter(ibis.literal(False)).select(
        customer_id=orders.customer_id,
        order_id=orders.order_id,
        kind=ibis.literal("none"),
        known_at=orders.ordered_at.cast("timestamp"),
        settled_at=orders.ordered_at.cast("timestamp"),
    )


def satisfaction_features(
    inputs: FeatureInputs, events: ibis.Table, cutoff: pd.Timestamp, params: FeatureParams
) -> ibis.Table:
    """One row per customer with an order before the cutoff."""
    table = order_summary(order_facts(inputs.orders, events), cutoff)
    for part in satisfaction_parts(inputs, events, reviews_with_customers(inputs), cutoff, params):
        table = join_customers(table, part)
    return table.select("customer_id", **satisfaction_columns(table, cutoff))


def reviews_with_customers(inputs: FeatureInputs) -> ibis.Table | None:
    """Every review with the customer of its order and its score as a float (cutoff-independent)."""
    if inputs.reviews is None:
        return None
    reviews = inputs.reviews.join(inputs.orders.select("order_id", "customer_id"), "order_id")
    return reviews.select("customer_id", "reviewed_at", score=reviews.review_score.cast("float64"))


def satisfaction_parts(
    inputs: FeatureInputs, events: ibis.Table, reviews: ibis.Table | None, cutoff: pd.Timestamp, params: FeatureParams
) -> list[ibis.Table]:
    """Per-customer tables the satisfaction features need besides `order_summary`, to be joined to it. `events`
    are `bad_events`, `reviews` `reviews_with_customers`."""
    counts = _event_counts(events, cutoff)
    parts = [counts]
    if reviews is not None:
        parts.append(_review_features(reviews, cutoff))
    if inputs.tickets is not None:
        parts.append(_ticket_features(inputs.tickets, cutoff))
        last_times = counts.select("customer_id", last_time=counts.last_bad_at)
        parts.append(_recovery(inputs.tickets, _last_bad_order(events, cutoff, last_times), cutoff, params))
    return parts


def satisfaction_columns(table: ibis.Table, cutoff: pd.Timestamp) -> dict[str, ibis.Value]:
    """The satisfaction features (those whose source is there) from `order_summary` joined with
    `satisfaction_parts`: counts are 0 for a customer without a bad experience."""
    zero_filled = [f"{kind}_{days}d" for kind in BAD_KINDS for days in BAD_WINDOWS]
    zero_filled += [f"{kind}_total" for kind in BAD_KINDS]
    zero_filled += [f"bad_experiences_{days}d" for days in BAD_WINDOWS] + ["bad_experiences_total"]
    if "tickets_open" in table.columns:
        zero_filled.append("tickets_open")
    columns = {
        **{name: table[name].fill_null(0) for name in zero_filled},
        "late_days_max_365d": table.late_days_max_365d,
        "bad_order_share": table.bad_orders.cast("float64") / table.orders_placed,
        "last_order_went_wrong": (table.last_went_wrong_at == table.last_placed_at).fill_null(False),
        "days_since_last_bad_experience": days_between(at(cutoff), table.last_bad_at),
    }
    passed_through = ("review_score_mean", "review_score_min", "review_score_last", "ticket_resolution_days_mean")
    columns |= {
        name: table[name] for name in (*passed_through, "last_bad_experience_recovered") if name in table.columns
    }
    return {spec.name: columns[spec.name] for spec in SATISFACTION_SPECS if spec.name in columns}


def _event_counts(events: ibis.Table, cutoff: pd.Timestamp) -> ibis.Table:
    """Per customer with a bad experience known before the cutoff: counts by kind and window, the most days late
    and when the last one became known (last_bad_at)."""
    t = at(cutoff)
    known = events.filter(events.known_at < t)
    recent = {days: known.known_at >= days_before(cutoff, days) for days in BAD_WINDOWS}
    is_late = known.kind == "late_delivery"
    days_late = days_between(ibis.least(known.settled_at.fill_null(t), t), known.known_at)
    return known.aggregate(
        by="customer_id",
        **{
            f"{kind}_{days}d": count_if((known.kind == kind) & recent[days])
            for kind in BAD_KINDS
            for days in BAD_WINDOWS
        },
        **{f"{kind}_total": count_if(known.kind == kind) for kind in BAD_KINDS},
        **{f"bad_experiences_{days}d": count_if(recent[days]) for days in BAD_WINDOWS},
        bad_experiences_total=known.count(),
        late_days_max_365d=ibis.ifelse(is_late & recent[365], days_late, ibis.null()).max(),
        last_bad_at=known.known_at.max(),
    )


def _last_bad_order(events: ibis.Table, cutoff: pd.Timestamp, last_times: ibis.Table) -> ibis.Table:
    """Per customer, the order of the last bad experience known before the cutoff (of simultaneous ones, the
    largest order id); `last_times` holds when that experience became known."""
    # A projection of its own, not the counts' filtered events: DuckDB would materialise a shared one.
    known = events.select("customer_id", "order_id", "known_at").filter(events.known_at < at(cutoff))
    return latest(known, "known_at", "order_id", "last_bad_order_id", last_times)


def _review_features(reviews: ibis.Table, cutoff: pd.Timestamp) -> ibis.Table:
    written = reviews.filter(reviews.reviewed_at < at(cutoff))
    summary = written.aggregate(
        by="customer_id",
        review_score_mean=written.score.mean(),
        review_score_min=written.score.min(),
        last_time=written.reviewed_at.max(),
    )
    last = latest(written, "reviewed_at", "score", "review_score_last", summary.select("customer_id", "last_time"))
    return join_customers(summary.drop("last_time"), last)


def _ticket_features(tickets: ibis.Table, cutoff: pd.Timestamp) -> ibis.Table:
    t = at(cutoff)
    opened = tickets.filter(tickets.opened_at < t)
    resolved = opened.resolved_at < t
    open_at_cutoff = opened.resolved_at.isnull() | ~resolved
    return opened.aggregate(
        by="customer_id",
        tickets_open=count_if(open_at_cutoff),
        ticket_resolution_days_mean=ibis.ifelse(
            resolved, days_between(opened.resolved_at, opened.opened_at), ibis.null()
        ).mean(),
    )


def _recovery(tickets: ibis.Table, last_bad: ibis.Table, cutoff: pd.Timestamp, params: FeatureParams) -> ibis.Table:
    """Whether the order of the last bad experience had a ticket resolved within recovery_days, by the cutoff."""
    fast = tickets.filter(
        tickets.order_id.notnull()
        & (tickets.resolved_at < at(cutoff))
        & (days_between(tickets.resolved_at, tickets.opened_at) <= params.recovery_days)
    )
    recovered_orders = fast.select(last_bad_order_id=fast.order_id).distinct().mutate(recovered=ibis.literal(True))
    with_order = last_bad.filter(last_bad.last_bad_order_id.notnull())
    flagged = with_order.left_join(recovered_orders, "last_bad_order_id")
    return flagged.select("customer_id", last_bad_experience_recovered=flagged.recovered.fill_null(False))
