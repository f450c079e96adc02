"""The contract is one source of truth: consistent in itself, and what the README and params.yaml say."""

from __future__ import annotations

from dataclasses import asdict

import yaml
from conftest import REPO

from features.contract import TABLES, TABLES_BY_NAME, contract_markdown
from pipelines.sources.synthetic import SyntheticShopParams


def test_readme_embeds_the_generated_contract_table() -> None:
    assert contract_markdown() in (REPO / "README.md").read_text(), "README is stale: paste `churn contract` in"


def test_only_orders_is_required() -> None:
    assert [table.name for table in TABLES if table.required] == ["orders"]


def test_references_point_to_existing_key_columns() -> None:
    for table in TABLES:
        for column in table.columns:
            if column.references:
                target_table, target_column = column.references.split(".")
                target = TABLES_BY_NAME[target_table]
                assert target.column(target_column).unique, column.references
                assert TABLES.index(target) < TABLES.index(table), "referenced tables are validated first"


def test_not_before_points_to_timestamps_reachable_from_the_row() -> None:
    for table in TABLES:
        for column in table.columns:
            if not column.not_before:
                continue
            assert column.dtype == "timestamp"
            if "." in column.not_before:
                other_table, other_column = column.not_before.split(".")
                assert any((c.references or "").startswith(other_table + ".") for c in table.columns)
                assert TABLES_BY_NAME[other_table].column(other_column).dtype == "timestamp"
            else:
                assert table.column(column.not_before).dtype == "timestamp"


def test_agrees_with_points_to_a_table_the_row_refers_to() -> None:
    for table in TABLES:
        for column in table.columns:
            if column.agrees_with:
                other_table, other_column = column.agrees_with.split(".")
                assert any((c.references or "").startswith(other_table + ".") for c in table.columns)
                assert TABLES_BY_NAME[other_table].column(other_column).dtype == column.dtype


def test_keys_are_unique_and_not_null() -> None:
    for table in TABLES:
        if table.key:
            key = table.column(table.key)
            assert key.unique and not key.nullable and key.required


def test_params_yaml_generate_block_matches_the_documented_defaults() -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text())["generate"]
    assert params == asdict(SyntheticShopParams())
