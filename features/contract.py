"""The canonical input contract: the tables every source is turned into and every feature reads.

This module is the single source of truth for table and column names, types, allowed values and which parts are
required. Sources map onto it, validation derives its Great Expectations suite from it, and the README's
data-contract table is generated from it (`churn contract`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

DType = Literal["string", "timestamp", "float", "int", "bool"]

# pandas dtypes the validated tables carry; timestamps are naive UTC.
PANDAS_DTYPES: dict[str, str] = {
    "string": "string[pyarrow]",
    "timestamp": "datetime64[ns]",
    "float": "float64",
    "int": "Int64",
    "bool": "boolean",
}


@dataclass(frozen=True)
class Column:
    """One column of a contract table and the rules its values obey."""

    name: str
    dtype: DType
    description: str
    required: bool = False
    nullable: bool = True
    unique: bool = False
    allowed: tuple[str, ...] | None = None
    min_value: float | None = None
    max_value: float | None = None
    # min_value itself is not allowed (a quantity is more than zero).
    strict_min: bool = False
    # "table.column" this column must point to (referential integrity).
    references: str | None = None
    # Timestamp columns that must not be earlier than this one: "column" in the same table or "table.column"
    # reached through this table's reference.
    not_before: str | None = None
    # Timestamps are "not after the data's as-of time" unless they are promises about the future.
    may_be_future: bool = False
    # A timestamp column of the same table that says when a value became known, if later than the row itself.
    known_from: str | None = None
    # "table.column" this column must equal, where the row points to that table through another reference (a
    # return of a line names the line's own order); empty on either side: nothing to compare.
    agrees_with: str | None = None

    @property
    def identifier(self) -> bool:
        """An id: text, never a number, so '0042' stays apart from '42'."""
        return self.dtype == "string" and self.name.endswith("_id")


@dataclass(frozen=True)
class Table:
    name: str
    description: str
    columns: tuple[Column, ...]
    required: bool = False
    key: str | None = None

    def column(self, name: str) -> Column:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(f"table {self.name!r} has no column {name!r}")

    @property
    def column_names(self) -> list[str]:
        return [column.name for column in self.columns]

    @property
    def required_columns(self) -> list[str]:
        return [column.name for column in self.columns if column.required]


ORDER_STATUSES = ("placed", "shipped", "delivered", "cancelled", "returned")
CANCEL_REASONS = ("out_of_stock", "customer", "payment", "fraud", "other")
CHANNELS = ("web", "app", "store", "phone", "marketplace", "other")
PAYMENT_METHODS = ("card", "invoice", "wallet", "bank_transfer", "cash_on_delivery", "other")
TICKET_REASONS = ("late_delivery", "wrong_item", "damaged", "missing_item", "refund", "other")
RETURN_REASONS = ("wrong_item", "damaged", "not_as_described", "wrong_size", "changed_mind", "other")

CUSTOMERS = Table(
    name="customers",
    description="One row per customer account.",
    key="customer_id",
    columns=(
        Column("customer_id", "string", "Customer identifier.", required=True, nullable=False, unique=True),
        Column("signed_up_at", "timestamp", "When the account was created."),
        Column("loyalty_member", "bool", "Member of the loyalty programme at the export (a snapshot)."),
        Column(
            "loyalty_joined_at",
            "timestamp",
            "When the customer joined the loyalty programme (the latest time, if they joined more than once).",
        ),
        Column(
            "loyalty_left_at",
            "timestamp",
            "When the customer left the loyalty programme after joining; empty while a member.",
            not_before="loyalty_joined_at",
        ),
        Column("country", "string", "Country code of the customer's address at the export (a snapshot)."),
    ),
)

ORDERS = Table(
    name="orders",
    description="One row per order. The only required table.",
    required=True,
    key="order_id",
    columns=(
        Column("order_id", "string", "Order identifier.", required=True, nullable=False, unique=True),
        Column(
            "customer_id",
            "string",
            "Who placed the order.",
            required=True,
            nullable=False,
            references="customers.customer_id",
        ),
        Column("ordered_at", "timestamp", "When the order was placed.", required=True, nullable=False),
        Column(
            "order_value",
            "float",
            "Order value in the shop's currency.",
            required=True,
            nullable=False,
            min_value=0,
        ),
        Column("status", "string", "Order status at the export (a snapshot).", allowed=ORDER_STATUSES),
        Column(
            "cancel_reason",
            "string",
            "Why a cancelled order was cancelled.",
            allowed=CANCEL_REASONS,
            known_from="cancelled_at",
        ),
        Column("cancelled_at", "timestamp", "When the order was cancelled.", not_before="ordered_at"),
        Column("channel", "string", "Where the order was placed.", allowed=CHANNELS),
        Column("payment_method", "string", "How the order was paid.", allowed=PAYMENT_METHODS),
        Column(
            "promised_delivery_at",
            "timestamp",
            "Delivery date promised at checkout.",
            not_before="ordered_at",
            may_be_future=True,
        ),
        Column("delivered_at", "timestamp", "When the order was delivered.", not_before="ordered_at"),
        Column("country", "string", "Country code the order was shipped to (the customer's country as of then)."),
    ),
)

ORDER_LINES = Table(
    name="order_lines",
    description="What was bought: one row per product in an order.",
    key="line_id",
    columns=(
        Column("line_id", "string", "Order line identifier.", required=True, nullable=False, unique=True),
        Column(
            "order_id",
            "string",
            "Order the line belongs to.",
            required=True,
            nullable=False,
            references="orders.order_id",
        ),
        Column("product_id", "string", "Product identifier (SKU, stock code).", required=True, nullable=False),
        Column("category", "string", "Product category as the shop names it (free text)."),
        Column(
            "quantity",
            "float",
            "Units bought (more than zero).",
            required=True,
            nullable=False,
            min_value=0,
            strict_min=True,
        ),
        Column(
            "unit_price",
            "float",
            "Price of one unit in the shop's currency.",
            required=True,
            nullable=False,
            min_value=0,
        ),
    ),
)

REVIEWS = Table(
    name="reviews",
    description="Product or order reviews.",
    columns=(
        Column(
            "order_id",
            "string",
            "Reviewed order.",
            required=True,
            nullable=False,
            references="orders.order_id",
        ),
        Column(
            "review_score",
            "int",
            "Score from 1 (worst) to 5 (best).",
            required=True,
            nullable=False,
            min_value=1,
            max_value=5,
        ),
        Column(
            "reviewed_at",
            "timestamp",
            "When the review was written.",
            required=True,
            nullable=False,
            not_before="orders.ordered_at",
        ),
    ),
)

TICKETS = Table(
    name="tickets",
    description="Customer-service tickets (complaints).",
    key="ticket_id",
    columns=(
        Column("ticket_id", "string", "Ticket identifier.", required=True, nullable=False, unique=True),
        Column(
            "customer_id",
            "string",
            "Who opened the ticket.",
            required=True,
            nullable=False,
            references="customers.customer_id",
        ),
        Column("order_id", "string", "Order the ticket is about, if any.", references="orders.order_id"),
        Column("opened_at", "timestamp", "When the ticket was opened.", required=True, nullable=False),
        Column("resolved_at", "timestamp", "When it was resolved; empty while open.", not_before="opened_at"),
        Column("reason", "string", "What the complaint is about.", allowed=TICKET_REASONS),
    ),
)

RETURNS = Table(
    name="returns",
    description="Returned orders or order lines.",
    columns=(
        Column(
            "order_id",
            "string",
            "Returned order.",
            required=True,
            nullable=False,
            references="orders.order_id",
            agrees_with="order_lines.order_id",
        ),
        Column(
            "returned_at",
            "timestamp",
            "When the return was registered.",
            required=True,
            nullable=False,
            not_before="orders.ordered_at",
        ),
        Column("reason", "string", "Why it was returned.", allowed=RETURN_REASONS),
        Column(
            "line_id",
            "string",
            "Returned line, if the return names one; empty: every line of the order came back.",
            references="order_lines.line_id",
        ),
    ),
)

# Validation order: a table comes after every table it references.
TABLES: tuple[Table, ...] = (CUSTOMERS, ORDERS, ORDER_LINES, REVIEWS, TICKETS, RETURNS)
TABLES_BY_NAME: dict[str, Table] = {table.name: table for table in TABLES}

# Reasons for which the retailer, not the customer, is at fault; features and the generator share them.
RETAILER_CANCEL_REASONS = ("out_of_stock", "fraud", "other")
RETAILER_RETURN_REASONS = ("wrong_item", "damaged", "not_as_described")


@dataclass(frozen=True)
class ContractRow:
    table: str
    column: str
    dtype: str
    required: str
    rules: str


def contract_rows() -> list[ContractRow]:
    """One row per column, with its rules in words, for docs and reports."""
    rows = []
    for table in TABLES:
        table_required = "table required" if table.required else "table optional"
        for column in table.columns:
            rows.append(
                ContractRow(
                    table=table.name,
                    column=column.name,
                    dtype=column.dtype,
                    required=("required" if column.required else "optional") + f" ({table_required})",
                    rules=_describe_rules(column),
                )
            )
    return rows


def _describe_rules(column: Column) -> str:
    rules = []
    if not column.nullable:
        rules.append("not null")
    if column.unique:
        rules.append("unique")
    if column.allowed:
        rules.append("one of " + ", ".join(column.allowed))
    if column.min_value is not None:
        rules.append(f"{'>' if column.strict_min else '>='} {column.min_value:g}")
    if column.max_value is not None:
        rules.append(f"<= {column.max_value:g}")
    if column.references:
        rules.append(f"refers to {column.references}")
    if column.agrees_with:
        rules.append(f"equals {column.agrees_with} of the {column.agrees_with.split('.')[0]} row referenced")
    if column.not_before:
        rules.append(f"not before {column.not_before}")
    if column.dtype == "timestamp" and not column.may_be_future:
        rules.append("not after as-of")
    return "; ".join(rules)


def contract_markdown() -> str:
    """The data contract as a Markdown table (the README embeds this text verbatim)."""
    lines = [
        "| table | column | type | required | rules |",
        "|---|---|---|---|---|",
    ]
    for row in contract_rows():
        lines.append(f"| {row.table} | {row.column} | {row.dtype} | {row.required} | {row.rules} |")
    return "\n".join(lines) + "\n"
