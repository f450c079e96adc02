"""The customer relationship: tenure, loyalty, how they pay and where they shop."""

from __future__ import annotations

import ibis
import pandas as pd

from features.common import at, days_between, join_customers, orders_before
from features.inputs import FeatureInputs
from features.spec import FeatureSpec

RELATIONSHIP_SPECS: tuple[FeatureSpec, ...] = (
    FeatureSpec("tenure_days", "relationship", "float64", "days", "all history",
                "Days from sign-up (or the first order, if earlier or no sign-up is known) to the cutoff."),
    FeatureSpec("loyalty_member", "relationship", "boolean", "flag", "as exported",
                "Member of the loyalty programme (the customers table's current flag: no history is kept).",
                ("customers", "customers.loyalty_member")),
    FeatureSpec("country", "relationship", "string", "category", "as exported", "Customer's country.",
                ("customers", "customers.country")),
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
    placed = orders_before(inputs.orders, cutoff)
    summary = placed.aggregate(
        by="customer_id",
        first_order_at=placed.ordered_at.min(),
        invoice_share=(placed.payment_method == "invoice").cast("float64").mean(),
        channels_used=placed.channel.nunique(),
    )
    summary = join_customers(summary, _most_common(placed, "channel", "main_channel"))
    summary = join_customers(summary, _most_common(placed, "payment_method", "main_payment_method"))
    started = summary.first_order_at
    extra: dict[str, ibis.Value] = {}
    if inputs.customers is not None:
        customers = inputs.customers.select("customer_id", "signed_up_at", "loyalty_member", "country")
        summary = join_customers(summary, customers)
        started = ibis.least(summary.signed_up_at.fill_null(summary.first_order_at), summary.first_order_at)
        extra = {"loyalty_member": summary.loyalty_member, "country": summary.country}
    return summary.select(
        "customer_id",
        tenure_days=days_between(at(cutoff), started),
        invoice_share=summary.invoice_share,
        channels_used=summary.channels_used,
        main_channel=summary.main_channel,
        main_payment_method=summary.main_payment_method,
        **extra,
    )


def _most_common(orders: ibis.Table, column: str, name: str) -> ibis.Table:
    """Per customer, the most frequent non-null value of `column`; ties go to the alphabetically first."""
    known = orders.filter(orders[column].notnull())
    counted = known.aggregate(by=["customer_id", column], n=known.count())
    top = counted.aggregate(by="customer_id", top_n=counted.n.max())
    best = counted.join(top, [counted.customer_id == top.customer_id, counted.n == top.top_n])
    return best.aggregate(by="customer_id", **{name: best[column].min()})
