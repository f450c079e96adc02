"""The Olist Brazilian e-commerce tables (Kaggle download, CSV files as published) mapped to the contract.

| contract                      | from Olist                                                                        |
|-------------------------------|-----------------------------------------------------------------------------------|
| customers.customer_id         | `customer_unique_id`: Olist gives every order its own `customer_id`               |
| orders.ordered_at             | `order_purchase_timestamp`                                                        |
| orders.order_value            | items' price + freight; the payments when an order has no items (most            |
|                               | unavailable and canceled orders); else 0                                          |
| orders.status, cancel_reason  | delivered, shipped; canceled -> cancelled (reason unknown); unavailable ->        |
|                               | cancelled, out_of_stock; created, approved, invoiced, processing -> placed        |
| orders.payment_method         | the payment type that paid most: credit and debit card -> card, boleto -> invoice |
|                               | (a bank slip paid after checkout), voucher -> other                               |
| orders.promised_delivery_at   | the end of `order_estimated_delivery_date` (a day: delivery on it is on time)     |
| orders.delivered_at           | `order_delivered_customer_date`                                                   |
| reviews.reviewed_at           | `review_answer_timestamp`, when the score became known (the survey is sent at    |
|                               | `review_creation_date`, used when the answer time is missing)                     |
| order_lines                   | `olist_order_items`, one row per unit: the units of one product at one price in  |
|                               | an order are a line (line_id `<order_id>-<its first order_item_id>`); unit_price |
|                               | = `price` (freight is in the order's value, not a line's)                         |
| order_lines.category          | `product_category_name` of `olist_products` (Portuguese, as published), when     |
|                               | that optional file is present                                                     |

Olist has no tickets or returns, so their features are missing (null), the share of returned lines among them.
Times are Brazilian local time (São Paulo); validation converts them to UTC. Items and payments of orders not in
the orders file are set aside with the reason.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.sources.files import SourceTable, read_csv
from pipelines.sources.options import ReadOptions
from pipelines.sources.read import SET_ASIDE_FILE, SET_ASIDE_ROW, SET_ASIDE_RULES, SourceRead

log = logging.getLogger(__name__)

SOURCE = "olist"
SHOP_TIMEZONE = "America/Sao_Paulo"
# Olist table -> (file name as published, columns the adapter reads)
FILES: dict[str, tuple[str, tuple[str, ...]]] = {
    "customers": ("olist_customers_dataset.csv", ("customer_id", "customer_unique_id")),
    "orders": (
        "olist_orders_dataset.csv",
        (
            "order_id",
            "customer_id",
            "order_status",
            "order_purchase_timestamp",
            "order_delivered_customer_date",
            "order_estimated_delivery_date",
        ),
    ),
    "order_items": (
        "olist_order_items_dataset.csv",
        ("order_id", "order_item_id", "product_id", "price", "freight_value"),
    ),
    "products": ("olist_products_dataset.csv", ("product_id", "product_category_name")),
    "payments": ("olist_order_payments_dataset.csv", ("order_id", "payment_type", "payment_value")),
    "reviews": (
        "olist_order_reviews_dataset.csv",
        ("order_id", "review_score", "review_creation_date", "review_answer_timestamp"),
    ),
}
REQUIRED = ("customers", "orders", "order_items")
STATUSES = {
    "delivered": "delivered",
    "shipped": "shipped",
    "canceled": "cancelled",
    "unavailable": "cancelled",
    "created": "placed",
    "approved": "placed",
    "invoiced": "placed",
    "processing": "placed",
}
PAYMENT_METHODS = {"credit_card": "card", "debit_card": "card", "boleto": "invoice", "voucher": "other"}


def read_olist(folder: Path) -> SourceRead:
    files = read_files(folder)
    customer_of = customer_ids(files["customers"])
    orders = files["orders"]
    items, items_aside = rows_of_known_orders(files["order_items"], orders, "item")
    payments, payments_aside = rows_of_known_orders(files.get("payments"), orders, "payment")
    contract_orders = orders_table(orders, customer_of, items, payments)
    lines = order_lines_table(items, files.get("products"))
    tables = {
        "customers": SourceTable("customers", customers_table(files["customers"]), _origin(folder, "customers")),
        "orders": SourceTable("orders", contract_orders, _origin(folder, "orders")),
        "order_lines": SourceTable("order_lines", lines, _origin(folder, "order items")),
    }
    if "reviews" in files:
        tables["reviews"] = SourceTable("reviews", reviews_table(files["reviews"]), _origin(folder, "reviews"))
    set_aside = pd.concat([items_aside, payments_aside], ignore_index=True)
    rows_in = sum(len(frame) for frame in files.values())
    accounting = {
        "source": SOURCE,
        "unit": "rows",
        "files": {name: len(frame) for name, frame in files.items()},
        "rows_in": rows_in,
        "rows_used": rows_in - len(set_aside),
        "rows_set_aside": len(set_aside),
        "set_aside_by_rule": set_aside[SET_ASIDE_RULES].value_counts().sort_index().astype(int).to_dict(),
        "tables": {name: len(table.raw) for name, table in tables.items()},
    }
    log.info("%s: %s", SOURCE, ", ".join(f"{name} {rows:,} rows" for name, rows in accounting["tables"].items()))
    return SourceRead(tables=tables, set_aside=set_aside, accounting=accounting)


def read_files(folder: Path) -> dict[str, pd.DataFrame]:
    """The Olist files present; a clear error naming the required ones that are missing or lack columns."""
    if not folder.is_dir():
        raise ValueError(f"data folder {folder} does not exist; set data.path in params.yaml")
    missing = [FILES[name][0] for name in REQUIRED if not (folder / FILES[name][0]).is_file()]
    if missing:
        raise ValueError(
            f"{folder} lacks the Olist file(s) {', '.join(missing)}; the adapter needs "
            f"{', '.join(FILES[name][0] for name in REQUIRED)} and reads "
            f"{', '.join(FILES[name][0] for name in FILES if name not in REQUIRED)} when present"
        )
    files = {}
    for name, (file_name, columns) in FILES.items():
        path = folder / file_name
        if not path.is_file():
            log.warning("%s: %s is absent, so the features from it will be missing", SOURCE, file_name)
            continue
        frame = read_csv(path, ReadOptions())
        lacking = [column for column in columns if column not in frame.columns]
        if lacking:
            raise ValueError(f"{path} lacks the column(s) {lacking} (found {list(frame.columns)})")
        files[name] = frame.assign(**{SET_ASIDE_FILE: str(path), SET_ASIDE_ROW: np.arange(len(frame))})
    return files


def _origin(folder: Path, table: str) -> str:
    return f"{folder} ({SOURCE}: {table})"


def customer_ids(customers: pd.DataFrame) -> pd.Series:
    """Olist's per-order customer_id -> the person, customer_unique_id."""
    return customers.drop_duplicates("customer_id").set_index("customer_id")["customer_unique_id"]


def customers_table(customers: pd.DataFrame) -> pd.DataFrame:
    people = customers["customer_unique_id"].drop_duplicates().sort_values()
    return pd.DataFrame({"customer_id": people.to_numpy(), "country": "BR"})


def rows_of_known_orders(
    rows: pd.DataFrame | None, orders: pd.DataFrame, what: str
) -> tuple[pd.DataFrame | None, pd.DataFrame]:
    """(rows whose order is in the orders file, the others marked for setting aside)."""
    if rows is None:
        return None, pd.DataFrame(columns=[SET_ASIDE_FILE, SET_ASIDE_ROW, SET_ASIDE_RULES])
    known = rows["order_id"].isin(orders["order_id"])
    aside = rows[~known].assign(**{SET_ASIDE_RULES: f"{what}_of_unknown_order"})
    return rows[known], aside


def orders_table(
    orders: pd.DataFrame, customer_of: pd.Series, items: pd.DataFrame | None, payments: pd.DataFrame | None
) -> pd.DataFrame:
    status = orders["order_status"].str.strip().str.lower()
    # An order whose customer_id is not in the customers file keeps it, and validation quarantines it as unknown.
    customer = orders["customer_id"].map(customer_of).fillna(orders["customer_id"])
    return pd.DataFrame(
        {
            "order_id": orders["order_id"],
            "customer_id": customer,
            "ordered_at": _local_times(orders["order_purchase_timestamp"]),
            "order_value": order_values(orders["order_id"], items, payments).to_numpy(),
            "status": status.map(STATUSES).fillna(status),
            "cancel_reason": status.map({"unavailable": "out_of_stock"}),
            "payment_method": main_payment_method(orders["order_id"], payments).to_numpy(),
            "promised_delivery_at": _local_times(orders["order_estimated_delivery_date"]) + pd.Timedelta(days=1),
            "delivered_at": _local_times(orders["order_delivered_customer_date"]),
        }
    )


def order_values(order_ids: pd.Series, items: pd.DataFrame | None, payments: pd.DataFrame | None) -> pd.Series:
    """Items' price + freight; the payments for an order without items; else 0. Unreadable amounts stay unreadable
    (null), so validation quarantines the order rather than it being undervalued."""
    value = pd.Series(np.nan, index=pd.Index(order_ids, name="order_id"))
    if payments is not None:
        paid = pd.to_numeric(payments["payment_value"], errors="coerce")
        value = value.fillna(paid.groupby(payments["order_id"]).sum(min_count=1).reindex(value.index))
    if items is not None:
        line = pd.to_numeric(items["price"], errors="coerce") + pd.to_numeric(items["freight_value"], errors="coerce")
        item_value = line.groupby(items["order_id"]).sum(min_count=1)
        has_items = value.index.isin(item_value.index)
        value[has_items] = item_value.reindex(value.index[has_items]).to_numpy()
    return value.fillna(0.0).round(2)


def order_lines_table(items: pd.DataFrame | None, products: pd.DataFrame | None) -> pd.DataFrame:
    """The units of one product at one price in an order as one line, with the product's category where the
    products file names one. An unreadable price stays unreadable (null), so validation quarantines the line."""
    assert items is not None  # a required file
    units = items.assign(
        _price=pd.to_numeric(items["price"], errors="coerce"), _item=items["order_item_id"].astype(str)
    )
    grouped = units.groupby(["order_id", "product_id", "_price"], dropna=False, sort=False)
    lines = grouped.agg(quantity=("_item", "size"), first_item=("_item", "first")).reset_index()
    category = (
        pd.Series(dtype="object")
        if products is None
        else products.drop_duplicates("product_id").set_index("product_id")["product_category_name"]
    )
    return pd.DataFrame(
        {
            "line_id": lines["order_id"].astype(str) + "-" + lines["first_item"],
            "order_id": lines["order_id"],
            "product_id": lines["product_id"],
            "category": lines["product_id"].map(category).replace("", None),
            "quantity": lines["quantity"].astype(float),
            "unit_price": lines["_price"],
        }
    )


def main_payment_method(order_ids: pd.Series, payments: pd.DataFrame | None) -> pd.Series:
    if payments is None:
        return pd.Series(None, index=order_ids.index, dtype="object")
    paid = payments.assign(value=pd.to_numeric(payments["payment_value"], errors="coerce").fillna(0.0))
    totals = paid.groupby(["order_id", "payment_type"], as_index=False)["value"].sum()
    top = totals.sort_values(["order_id", "value", "payment_type"], ascending=[True, False, True])
    method = top.drop_duplicates("order_id").set_index("order_id")["payment_type"].map(PAYMENT_METHODS)
    return order_ids.map(method)


def reviews_table(reviews: pd.DataFrame) -> pd.DataFrame:
    answered = _local_times(reviews["review_answer_timestamp"])
    return pd.DataFrame(
        {
            "order_id": reviews["order_id"],
            "review_score": reviews["review_score"],
            "reviewed_at": answered.fillna(_local_times(reviews["review_creation_date"])),
        }
    )


def _local_times(values: pd.Series) -> pd.Series:
    naive = pd.to_datetime(values, errors="coerce", format="ISO8601")
    # Brazil's clocks changed at midnight until 2019: the skipped hour moves forward, the repeated one is read as
    # summer time. An hour does not matter to churn; a dropped row would.
    return naive.dt.tz_localize(SHOP_TIMEZONE, ambiguous=True, nonexistent="shift_forward")
