"""The Olist adapter on hand-written files in the exact layout of the Kaggle download."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from pipelines.sources.olist import read_olist
from pipelines.sources.read import SET_ASIDE_RULES
from pipelines.validation.run import validate_tables

FIXTURES = Path(__file__).parent / "fixtures" / "olist"
AS_OF = pd.Timestamp("2018-10-18")
PERSON_A = "7c396fd4830fd04220f754e42b4e5bff"


def local(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="America/Sao_Paulo")


@pytest.fixture
def orders() -> pd.DataFrame:
    return read_olist(FIXTURES).tables["orders"].raw.set_index("order_id")


def test_orders_belong_to_the_person_not_the_per_order_customer_id(orders: pd.DataFrame) -> None:
    assert orders.loc["e481f51cbdc54678b7cc49136f2d6af7", "customer_id"] == PERSON_A
    assert orders.loc["53cdb2fc8bc7dce0b6741e2150273451", "customer_id"] == PERSON_A
    customers = read_olist(FIXTURES).tables["customers"].raw
    assert customers["customer_id"].is_unique and len(customers) == 3


def test_order_value_status_and_payment(orders: pd.DataFrame) -> None:
    first = orders.loc["e481f51cbdc54678b7cc49136f2d6af7"]
    assert first["order_value"] == pytest.approx(29.99 + 8.72)
    assert first["payment_method"] == "other"  # vouchers paid 20.59 of 38.71
    assert orders.loc["53cdb2fc8bc7dce0b6741e2150273451", "payment_method"] == "invoice"  # boleto
    assert orders.loc["ad21c59c0840e6cb83a9ceb5573f8159", "payment_method"] == "card"  # debit card
    unavailable = orders.loc["47770eb9100c2d0c44946d9cf07ec65d"]
    assert (unavailable["status"], unavailable["cancel_reason"]) == ("cancelled", "out_of_stock")
    assert unavailable["order_value"] == pytest.approx(179.12)  # no items: what was paid
    cancelled = orders.loc["949d5b44dbf5de918fe9c16f97b45f8a"]
    assert (cancelled["status"], cancelled["order_value"]) == ("cancelled", 0.0)
    assert pd.isna(cancelled["cancel_reason"])  # Olist does not say who cancelled
    assert orders.loc["136cce7faa42fdb2cefd53fdc79a6098", "status"] == "placed"  # invoiced


def test_delivery_is_late_only_after_the_estimated_day(orders: pd.DataFrame) -> None:
    on_the_day = orders.loc["53cdb2fc8bc7dce0b6741e2150273451"]
    assert on_the_day["promised_delivery_at"] == local("2018-08-08 00:00")
    assert on_the_day["delivered_at"] <= on_the_day["promised_delivery_at"]
    late = orders.loc["ad21c59c0840e6cb83a9ceb5573f8159"]
    assert late["delivered_at"] > late["promised_delivery_at"]


def test_a_review_is_known_when_answered() -> None:
    reviews = read_olist(FIXTURES).tables["reviews"].raw.set_index("order_id")
    assert reviews.loc["ad21c59c0840e6cb83a9ceb5573f8159", "reviewed_at"] == local("2018-03-07 11:23:10")
    # No answer time: the day the survey was sent.
    assert reviews.loc["949d5b44dbf5de918fe9c16f97b45f8a", "reviewed_at"] == local("2017-12-20 00:00")


def test_validation_accepts_the_mapped_tables_and_accounts_for_every_row() -> None:
    source = read_olist(FIXTURES)
    assert source.set_aside is not None
    assert source.set_aside[SET_ASIDE_RULES].tolist() == ["item_of_unknown_order"]
    assert source.accounting["rows_used"] + source.accounting["rows_set_aside"] == source.accounting["rows_in"]
    result = validate_tables(source.tables, AS_OF)
    # The invoiced order's customer_id is in no customers row, so validation quarantines it.
    assert result.quarantined["orders"]["order_id"].tolist() == ["136cce7faa42fdb2cefd53fdc79a6098"]
    assert len(result.accepted["orders"]) == 5
    assert len(result.accepted["reviews"]) == 4
    accepted = result.accepted["orders"].set_index("order_id")
    # Stored as UTC: 10:56 in São Paulo (UTC-3 in October 2017, before summer time began).
    assert accepted.loc["e481f51cbdc54678b7cc49136f2d6af7", "ordered_at"] == pd.Timestamp("2017-10-02 13:56:33")


def test_items_become_order_lines_with_the_product_s_category() -> None:
    lines = read_olist(FIXTURES).tables["order_lines"].raw.set_index("line_id")
    # Two units of one product at one price in one order are one line.
    two = lines.loc["ad21c59c0840e6cb83a9ceb5573f8159-1"]
    assert (two["product_id"], two["quantity"], two["unit_price"]) == ("65266b2da20d04dbe00c5c2d3bb7859e", 2.0, 19.90)
    assert pd.isna(two["category"])  # the products file leaves it empty
    assert lines.loc["e481f51cbdc54678b7cc49136f2d6af7-1", "category"] == "utilidades_domesticas"
    assert pd.isna(lines.loc["136cce7faa42fdb2cefd53fdc79a6098-1", "category"])  # a product the file lacks
    assert len(lines) == 4  # the item of an order not in the orders file is set aside
    result = validate_tables(read_olist(FIXTURES).tables, AS_OF)
    # The line of the quarantined (invoiced) order follows it; the unknown order's item never became a line.
    assert result.quarantined["order_lines"]["order_id"].tolist() == ["136cce7faa42fdb2cefd53fdc79a6098"]
    assert len(result.accepted["order_lines"]) == 3


def test_missing_required_files_are_named(tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "olist_orders_dataset.csv", tmp_path)
    with pytest.raises(ValueError, match=r"lacks the Olist file\(s\) olist_customers_dataset\.csv, olist_order_items"):
        read_olist(tmp_path)


def test_optional_files_may_be_absent(tmp_path: Path) -> None:
    for name in ("olist_customers_dataset.csv", "olist_orders_dataset.csv", "olist_order_items_dataset.csv"):
        shutil.copy(FIXTURES / name, tmp_path)
    source = read_olist(tmp_path)
    assert set(source.tables) == {"customers", "orders", "order_lines"}
    assert source.tables["order_lines"].raw["category"].isna().all()  # no products file: no categories
    assert source.tables["orders"].raw["payment_method"].isna().all()
