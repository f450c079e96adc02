"""The customer relationship: tenure, loyalty, how they pay and where they shop."""

from __future__ import annotations

from collections.abc import Collection, Mapping

import ibis
import pandas as pd

from features.common import at, days_between, join_customers
from features.inputs import FeatureInputs
from features.orders import most_common, order_facts, order_summary
from features.spec import FeatureSpec

RELATIONSHIP_SPECS: tuple[FeatureSpec, ...] = (
    FeatureSpec("tenure_days", "relationship", "float64", "days", "all history",
                "Days from sign-up (or the first order, if earlier or no sign-up is known) to the cutoff."),
    FeatureSpec("loyalty_member", "relationship", "boolean", "flag", "at the cutoff",
                "Member of the loyalty programme: joined (loyalty_joined_at) before the cutoff and not left by then; "
                "a customer without a joining time has the export's flag.",
                ("customers", "customers.loyalty_member"),
                snapshots=(("customers.loyalty_member", "customers.loyalty_joined_at"),)),
    FeatureSpec("country", "relationship", "string", "category", "at the cutoff",
                "Country of most orders placed before the cutoff (ties: alphabetical) where orders carry one, else "
                "the customers table's country.",
                needs_one_of=(("orders.country",), ("customers", "customers.country")),
                snapshots=(("customers.country", "orders.country"),)),
    FeatureSpec("invoice_share", "relationship", "float64", "share", "all history",
                "Share of orders placed before the cutoff paid by invoice.", ("orders.payment_method",)),
    FeatureSpec("channels_used", "relationship", "int64", "channels", "all history",
                "Number of different channels ordered through.", ("orders.channel",)),
    FeatureSpec("main_channel", "relationship", "string", "category", "all history",
                "Channel of most orders (ties: alphabetical).", ("orders.channel",)),
    FeatureSpec("main_payment_method", "relationship", "string", "category", "all history",
                "Payment method of most orders (ties: alphabetical).", ("orders.payment_method",)),
)  # fmt: skip


def relationship_features(inputs: FeatureInputs, cutoff: pd.Timestamp) -> ibis.Table:
    """One row per customer with an order before the cutoff."""
    facts = order_facts(inputs.orders)
    table = order_summary(facts, cutoff)
    for part in relationship_parts(inputs, facts, cutoff):
        table = join_customers(table, part)
    return table.select("customer_id", **relationship_columns(inputs, table, cutoff))


# Order column -> the names of its most common value and (where a feature) of its number of different values.
MOST_COMMON: dict[str, tuple[str, str | None]] = {
    "channel": ("main_channel", "channels_used"),
    "payment_method": ("main_payment_method", None),
    "country": ("order_country", None),
}


def relationship_parts(
    inputs: FeatureInputs, facts: ibis.Table, cutoff: pd.Timestamp, counted: Collection[str] = ()
) -> list[ibis.Table]:
    """Per-customer tables the relationship features need besides `order_summary`, to be joined to it. The most
    common values of the order columns in `counted` come from the summary's counts (`most_common_columns`)
    instead."""
    columns = [column for column in MOST_COMMON if column != "country" or inputs.has("orders.country")]
    parts = [
        _most_common(facts, cutoff, column, name, count_name=count_name)
        for column, (name, count_name) in MOST_COMMON.items()
        if column in columns and column not in counted
    ]
    if inputs.customers is not None:
        customers = inputs.customers
        parts.append(
            customers.select(
                "customer_id",
                "signed_up_at",
                customer_country=customers.country,
                loyalty_member=loyalty_member_at(customers, at(cutoff)),
            )
        )
    return parts


def loyalty_member_at(customers: ibis.Table, t: ibis.Value) -> ibis.Value:
    """Membership as it stood at `t` (a cutoff, or each row's own time): joined before it and not left by then.
    Where the source gives no joining time for a customer, the export's flag is all there is (a snapshot)."""
    joined = (customers.loyalty_joined_at < t) & ~(customers.loyalty_left_at < t).fill_null(False)
    return ibis.ifelse(customers.loyalty_joined_at.isnull(), customers.loyalty_member, joined)


def most_common_columns(summary: ibis.Table, levels: Mapping[str, tuple[str, ...]]) -> dict[str, ibis.Value]:
    """main_channel, channels_used, ... of the order columns in `levels` from `order_summary(..., levels)`."""
    columns = {}
    for column, values in levels.items():
        name, count_name = MOST_COMMON[column]
        columns[name], used = most_common(summary, column, values)
        if count_name is not None:
            columns[count_name] = used
    return columns


def relationship_columns(inputs: FeatureInputs, table: ibis.Table, cutoff: pd.Timestamp) -> dict[str, ibis.Value]:
    """The relationship features from `order_summary` joined with `relationship_parts`."""
    started = table.first_order_at
    extra: dict[str, ibis.Value] = {}
    if inputs.customers is not None:
        started = ibis.least(table.signed_up_at.fill_null(table.first_order_at), table.first_order_at)
        extra = {"loyalty_member": table.loyalty_member, "country": table.customer_country}
    if inputs.has("orders.country"):
        # The countries orders went to before the cutoff, not the address as exported (which may be later).
        extra["country"] = table.order_country
    return {
        "tenure_days": days_between(at(cutoff), started),
        "invoice_share": table.invoice_share,
        "channels_used": table.channels_used.fill_null(0),
        "main_channel": table.main_channel,
        "main_payment_method": table.main_payment_method,
        **extra,
    }


def _most_common(
    facts: ibis.Table, cutoff: pd.Timestamp, column: str, name: str, count_name: str | None = None
) -> ibis.Table:
    """Per customer, the most frequent non-null value of `column` in the orders placed before the cutoff; ties go
    to the alphabetically first. With `count_name`, also how many different values there are."""
    # A filter of its own (not a shared "orders before the cutoff"): DuckDB would materialise a shared one.
    known = facts.filter(facts.ordered_at < at(cutoff), facts[column].notnull())
    counted = known.aggregate(by=["customer_id", column], n=known.count())
    top = counted.aggregate(
        by="customer_id", top_n=counted.n.max(), **({count_name: counted.count()} if count_name else {})
    )
    best = counted.join(top, [counted.customer_id == top.customer_id, counted.n == top.top_n])
    return best.aggregate(
        by="customer_id", **{name: best[column].min()}, **({count_name: best[count_name].max()} if count_name else {})
    )
