"""The validation suite itself: a clean shop passes, each kind of bad row is caught by the right rule, rows are
conserved, and fatal problems stop with a message naming table, column and rule."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import AS_OF, as_sources, clean_tables, clean_tables_with_lines

from pipelines.sources.files import SourceTable
from pipelines.validation.run import RULES_COLUMN, SOURCE_ROW_COLUMN, ValidationResult, validate_tables


def validate(tables: dict[str, pd.DataFrame]) -> ValidationResult:
    return validate_tables(as_sources(tables), AS_OF)


def quarantined_rules(result: ValidationResult, table: str) -> dict[int, set[str]]:
    """Source row number -> rules it broke."""
    frame = result.quarantined[table]
    return {
        int(row): set(rules.split("; "))
        for row, rules in zip(frame[SOURCE_ROW_COLUMN], frame[RULES_COLUMN], strict=True)
    }


def test_clean_shop_is_accepted_whole(tables: dict[str, pd.DataFrame]) -> None:
    result = validate(tables)
    for name, frame in tables.items():
        assert len(result.accepted[name]) == len(frame), name
        assert result.quarantined[name].empty, name
    assert not result.over_threshold(0.0)


def test_accepted_tables_have_contract_dtypes(tables: dict[str, pd.DataFrame]) -> None:
    orders = validate(tables).accepted["orders"]
    assert str(orders["order_id"].dtype) == "string"
    assert str(orders["ordered_at"].dtype) == "datetime64[ns]"
    assert str(orders["order_value"].dtype) == "float64"
    assert str(validate(tables).accepted["reviews"]["review_score"].dtype) == "Int64"


# (table, column, bad value, rule it must break), always in the table's first row unless said otherwise
BAD_CELLS = [
    ("orders", "order_value", -5.0, "orders.order_value.range"),
    ("orders", "status", "teleported", "orders.status.allowed"),
    ("orders", "channel", "carrier_pigeon", "orders.channel.allowed"),
    ("orders", "ordered_at", pd.Timestamp("2024-07-02"), "orders.ordered_at.not_after_as_of"),
    ("orders", "delivered_at", pd.Timestamp("2024-01-01"), "orders.delivered_at.not_before"),
    ("orders", "customer_id", None, "orders.customer_id.not_null"),
    ("orders", "customer_id", "c999", "orders.customer_id.references"),
    ("reviews", "order_id", "o999", "reviews.order_id.references"),
    ("reviews", "review_score", 6, "reviews.review_score.range"),
    ("reviews", "review_score", 0, "reviews.review_score.range"),
    ("reviews", "reviewed_at", pd.Timestamp("2023-12-31"), "reviews.reviewed_at.not_before"),
    ("tickets", "resolved_at", pd.Timestamp("2024-03-05"), "tickets.resolved_at.not_before"),
    ("tickets", "customer_id", "c999", "tickets.customer_id.references"),
    ("tickets", "order_id", "o999", "tickets.order_id.references"),
    ("tickets", "reason", "gremlins", "tickets.reason.allowed"),
    ("returns", "order_id", "o999", "returns.order_id.references"),
    ("returns", "returned_at", pd.Timestamp("2030-01-01"), "returns.returned_at.not_after_as_of"),
    ("customers", "signed_up_at", pd.Timestamp("2031-01-01"), "customers.signed_up_at.not_after_as_of"),
]


# The same for order lines and the returns that name them (clean_tables_with_lines).
BAD_LINE_CELLS = [
    ("order_lines", "order_id", "o999", "order_lines.order_id.references"),
    ("order_lines", "order_id", None, "order_lines.order_id.not_null"),
    ("order_lines", "product_id", None, "order_lines.product_id.not_null"),
    ("order_lines", "quantity", 0.0, "order_lines.quantity.range"),
    ("order_lines", "quantity", -2.0, "order_lines.quantity.range"),
    ("order_lines", "unit_price", -0.5, "order_lines.unit_price.range"),
    ("order_lines", "line_id", "l2", "order_lines.line_id.unique"),
    ("returns", "line_id", "l999", "returns.line_id.references"),
    # l1 is a line of o1, but the return is of o2: which was returned is ambiguous.
    ("returns", "line_id", "l1", "returns.order_id.agrees"),
]


# o4 is the one order not delivered yet, so moving it past as-of breaks no delivery rule.
FUTURE_ORDER_ROW = 3


@pytest.mark.parametrize(("table", "column", "value", "rule"), BAD_CELLS)
def test_each_bad_cell_is_quarantined_with_its_rule(table: str, column: str, value: object, rule: str) -> None:
    tables = clean_tables()
    tables[table] = tables[table].astype(object)
    row = FUTURE_ORDER_ROW if rule == "orders.ordered_at.not_after_as_of" else 0
    tables[table].loc[row, column] = value
    result = validate(tables)
    assert quarantined_rules(result, table) == {row: {rule}}
    assert len(result.accepted[table]) == len(tables[table]) - 1


@pytest.mark.parametrize(("table", "column", "value", "rule"), BAD_LINE_CELLS)
def test_each_bad_line_cell_is_quarantined_with_its_rule(table: str, column: str, value: object, rule: str) -> None:
    tables = clean_tables_with_lines()
    tables[table] = tables[table].astype(object)
    tables[table].loc[0, column] = value
    result = validate(tables)
    # A duplicate line id quarantines both copies (as a duplicate order id does).
    expected = {0: {rule}, 1: {rule}} if rule.endswith(".unique") else {0: {rule}}
    assert quarantined_rules(result, table) == expected
    assert len(result.accepted[table]) == len(tables[table]) - len(expected)


def test_clean_shop_with_lines_is_accepted_whole() -> None:
    tables = clean_tables_with_lines()
    result = validate(tables)
    for name, frame in tables.items():
        assert len(result.accepted[name]) == len(frame), name
    lines = result.accepted["order_lines"]
    assert str(lines["quantity"].dtype) == "float64"
    assert str(lines["line_id"].dtype) == "string"
    assert lines["category"].isna().sum() == 1
    assert result.accepted["returns"]["line_id"].tolist() == ["l3"]


def test_lines_of_a_quarantined_order_and_their_returns_are_quarantined_as_orphans() -> None:
    tables = clean_tables_with_lines()
    tables["orders"].loc[1, "order_value"] = -1.0  # o2: its line l3 and the return naming l3 follow it out
    result = validate(tables)
    assert quarantined_rules(result, "order_lines") == {2: {"order_lines.order_id.references"}}
    assert quarantined_rules(result, "returns") == {0: {"returns.order_id.references", "returns.line_id.references"}}
    for report in result.reports:
        if report.present:
            assert report.accepted + report.quarantined == report.rows_in, report.table


def test_a_return_of_a_whole_order_needs_no_line() -> None:
    tables = clean_tables_with_lines()
    tables["returns"] = tables["returns"].assign(line_id=[None])
    assert validate(tables).quarantined["returns"].empty


def test_return_lines_are_unchecked_without_an_order_lines_table() -> None:
    tables = clean_tables_with_lines()
    del tables["order_lines"]
    result = validate(tables)
    assert result.quarantined["returns"].empty
    assert result.accepted["returns"]["line_id"].tolist() == ["l3"]


def test_review_of_a_quarantined_order_is_quarantined_as_orphan(tables: dict[str, pd.DataFrame]) -> None:
    tables["orders"].loc[0, "order_value"] = -1.0  # o1, the reviewed order
    result = validate(tables)
    assert quarantined_rules(result, "reviews") == {0: {"reviews.order_id.references"}}


def test_conflicting_duplicate_ids_quarantine_every_copy(tables: dict[str, pd.DataFrame]) -> None:
    duplicate = tables["orders"].iloc[[0]].assign(order_value=99.0)
    tables["orders"] = pd.concat([tables["orders"], duplicate], ignore_index=True)
    result = validate(tables)
    assert quarantined_rules(result, "orders") == {0: {"orders.order_id.unique"}, 4: {"orders.order_id.unique"}}


def test_exact_duplicate_row_keeps_the_first_copy(tables: dict[str, pd.DataFrame]) -> None:
    tables["orders"] = pd.concat([tables["orders"], tables["orders"].iloc[[1]]], ignore_index=True)
    result = validate(tables)
    assert quarantined_rules(result, "orders") == {4: {"orders.duplicate_row"}}
    assert result.accepted["orders"]["order_id"].tolist() == ["o1", "o2", "o3", "o4"]


def test_a_row_breaking_two_rules_lists_both(tables: dict[str, pd.DataFrame]) -> None:
    tables["orders"] = tables["orders"].astype(object)
    tables["orders"].loc[1, ["order_value", "status"]] = [-3.0, "lost"]
    result = validate(tables)
    assert quarantined_rules(result, "orders") == {1: {"orders.order_value.range", "orders.status.allowed"}}


def test_quarantine_keeps_the_source_row_as_it_was(tables: dict[str, pd.DataFrame]) -> None:
    tables["orders"] = tables["orders"].astype(object)
    tables["orders"].loc[2, "order_value"] = "twelve"
    result = validate(tables)
    row = result.quarantined["orders"].iloc[0]
    assert row["order_value"] == "twelve"
    assert row[RULES_COLUMN] == "orders.order_value.number_format"
    assert row["order_id"] == "o3"


def test_rows_are_conserved_in_every_table() -> None:
    tables = clean_tables()
    tables["orders"] = tables["orders"].astype(object)
    tables["orders"].loc[0, "order_value"] = -1.0
    tables["orders"].loc[3, "status"] = "?"
    result = validate(tables)
    for report in result.reports:
        if report.present:
            assert report.accepted + report.quarantined == report.rows_in
            assert report.accepted == len(result.accepted[report.table])


def test_text_cells_are_cast_to_contract_types(tables: dict[str, pd.DataFrame]) -> None:
    text = {name: frame.astype("string") for name, frame in tables.items()}
    text["customers"]["loyalty_member"] = ["yes", "No"]
    result = validate(text)
    # The orders carry days without a time: each counts from the end of its day.
    assert result.accepted["orders"]["ordered_at"].iloc[0] == pd.Timestamp("2024-01-05 23:59:59.999999")
    assert result.accepted["customers"]["loyalty_member"].tolist() == [True, False]
    assert result.accepted["reviews"]["review_score"].tolist() == [5]


def test_timezone_aware_timestamps_become_naive_utc(tables: dict[str, pd.DataFrame]) -> None:
    tables["orders"]["ordered_at"] = tables["orders"]["ordered_at"].dt.tz_localize("Europe/Stockholm")
    result = validate(tables)
    assert result.accepted["orders"]["ordered_at"].iloc[0] == pd.Timestamp("2024-01-04 23:00")


def test_only_orders_is_required(tables: dict[str, pd.DataFrame]) -> None:
    result = validate({"orders": tables["orders"]})
    assert set(result.accepted) == {"orders"}
    absent = [r.table for r in result.reports if not r.present]
    assert absent == ["customers", "order_lines", "reviews", "tickets", "returns"]


def test_missing_optional_columns_are_null_and_reported(tables: dict[str, pd.DataFrame]) -> None:
    orders = tables["orders"][["order_id", "customer_id", "ordered_at", "order_value"]]
    result = validate({"orders": orders})
    assert result.accepted["orders"]["status"].isna().all()
    report = next(r for r in result.reports if r.table == "orders")
    assert "delivered_at" in report.missing_optional_columns


def test_tickets_reference_customers_from_orders_without_a_customers_table(tables: dict[str, pd.DataFrame]) -> None:
    tables["tickets"].loc[0, "customer_id"] = "c999"
    del tables["customers"]
    result = validate(tables)
    assert quarantined_rules(result, "tickets") == {0: {"tickets.customer_id.references"}}


# Fatal problems: the stage stops and says what is wrong.


def test_missing_orders_table_is_fatal(tables: dict[str, pd.DataFrame]) -> None:
    with pytest.raises(ValueError, match="no orders table"):
        validate({"reviews": tables["reviews"]})


def test_missing_required_column_is_fatal(tables: dict[str, pd.DataFrame]) -> None:
    tables["orders"] = tables["orders"].drop(columns="ordered_at")
    with pytest.raises(ValueError, match=r"orders lacks required column\(s\) \['ordered_at'\]"):
        validate(tables)


def test_uncastable_column_is_fatal(tables: dict[str, pd.DataFrame]) -> None:
    tables["orders"]["ordered_at"] = ["soon", "later", "never", "?"]
    with pytest.raises(ValueError, match=r"orders\.ordered_at cannot be read as timestamp"):
        validate(tables)


def test_empty_orders_table_is_fatal(tables: dict[str, pd.DataFrame]) -> None:
    tables["orders"] = tables["orders"].iloc[0:0]
    with pytest.raises(ValueError, match="orders has no rows"):
        validate(tables)


def test_empty_optional_table_is_fine(tables: dict[str, pd.DataFrame]) -> None:
    tables["reviews"] = tables["reviews"].iloc[0:0]
    assert validate(tables).accepted["reviews"].empty


def test_all_orders_rejected_is_fatal(tables: dict[str, pd.DataFrame]) -> None:
    tables["orders"]["order_value"] = -1.0
    with pytest.raises(ValueError, match="no row passed validation"):
        validate(tables)


def test_column_mapping_onto_unknown_column_is_fatal(tables: dict[str, pd.DataFrame]) -> None:
    source = SourceTable("orders", tables["orders"], "<orders>", column_mapping={"order_value": "revenue"})
    with pytest.raises(ValueError, match=r"maps onto \['revenue'\]"):
        validate_tables({"orders": source}, AS_OF)


def test_value_mapping_translates_before_checks(tables: dict[str, pd.DataFrame]) -> None:
    raw = tables["orders"].rename(columns={"order_value": "Total"})
    raw["status"] = ["Levererad", "Returnerad", "Avbruten", "Skickad"]
    source = SourceTable(
        "orders",
        raw,
        "<orders>",
        column_mapping={"Total": "order_value"},
        value_mapping={
            "status": {
                "Levererad": "delivered",
                "Returnerad": "returned",
                "Avbruten": "cancelled",
                "Skickad": "shipped",
            }
        },
    )
    result = validate_tables({"orders": source}, AS_OF)
    assert result.accepted["orders"]["status"].tolist() == ["delivered", "returned", "cancelled", "shipped"]
