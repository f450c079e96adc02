"""The messy-export corpus (tests/messy_exports.py): each file is read right with its settings (value by value),
refused with its message, or has its rows quarantined with its rule; rows are always conserved; and `churn inspect`
proposes settings that read each file, or says why it cannot."""

from __future__ import annotations

import codecs
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import write_params
from messy_exports import CASES, EXPORTED_AT, Case, clean_orders, write_case

from pipelines.sources.inspect import inspect_path, proposed_data_block
from pipelines.stages import validate as stage

# Low enough that a column read under the wrong convention stops the stage; a few dirty rows do not.
MAX_QUARANTINE_SHARE = 0.02


@pytest.fixture(scope="module")
def clean() -> pd.DataFrame:
    return clean_orders()


def run_validation(folder: Path, data: dict[str, Any], work: Path) -> dict[str, Any]:
    """The validate stage on `folder` with the `data` settings; returns the report."""
    params = write_params(
        work / "params.yaml",
        data={"source": "files", "path": str(folder), "as_of": EXPORTED_AT.isoformat(), "csv": {}, **data},
        validate={"max_quarantine_share": MAX_QUARANTINE_SHARE},
    )
    outputs = stage.ValidateOutputs(work / "validated", work / "quarantine", work / "v.json", work / "v.md")
    stage.run(params, outputs)
    return dict(json.loads(outputs.report_json.read_text()))


def data_lines(path: Path) -> int:
    """Lines after the header, blank ones included (a final line break ends the last line, it adds none)."""
    raw = path.read_bytes()
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        text = raw.decode("utf-16")
    else:
        text = raw.decode("cp1252", errors="replace")  # line breaks are the same bytes in UTF-8 and cp1252
    return len(text.splitlines()) - 1


def assert_read_right(work: Path, truth: pd.DataFrame, quarantined_rows: int = 0) -> None:
    accepted = pd.read_parquet(work / "validated" / "orders.parquet").set_index("order_id").sort_index()
    expected = truth.set_index("order_id").sort_index()
    if quarantined_rows:
        expected = expected.loc[accepted.index]
    assert len(accepted) == len(truth) - quarantined_rows
    assert accepted.index.tolist() == expected.index.tolist()
    assert accepted["customer_id"].tolist() == expected["customer_id"].tolist()
    assert accepted["ordered_at"].tolist() == expected["ordered_at"].tolist()
    assert np.allclose(accepted["order_value"], expected["order_value"], rtol=0, atol=1e-9)
    assert accepted["status"].tolist() == expected["status"].tolist()
    assert accepted["delivered_at"].isna().tolist() == expected["delivered_at"].isna().tolist()
    assert accepted["delivered_at"].dropna().tolist() == expected["delivered_at"].dropna().tolist()


def orders_file(case: Case, folder: Path) -> Path:
    return folder / (case.settings.get("files") or {}).get("orders", "orders.csv")


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_each_export_has_its_outcome(case: Case, clean: pd.DataFrame, tmp_path: Path) -> None:
    folder = write_case(case, clean, tmp_path / "export")
    outcome = case.outcome
    if outcome.kind == "refused":
        with pytest.raises(ValueError, match=outcome.message):
            run_validation(folder, case.settings, tmp_path)
        return
    report = run_validation(folder, case.settings, tmp_path)
    orders = report["tables"]["orders"]
    set_aside = report.get("source", {}).get("rows_set_aside", 0)
    assert data_lines(orders_file(case, folder)) == orders["accepted"] + orders["quarantined"] + set_aside
    assert set_aside == outcome.set_aside
    assert orders["quarantined"] == outcome.quarantined
    if outcome.rule:
        assert orders["rule_counts"] == {outcome.rule: outcome.quarantined}
    for rewrite, count in outcome.rewrites.items():
        assert orders["rewrites"][rewrite] == count
    assert_read_right(tmp_path, case.accepted(case.truth(clean)), outcome.quarantined)


def test_the_corpus_covers_every_kind_of_mess() -> None:
    assert len(CASES) >= 15
    assert {case.outcome.kind for case in CASES} == {"read", "refused", "quarantined"}


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_inspect_proposes_settings_that_read_the_export(case: Case, clean: pd.DataFrame, tmp_path: Path) -> None:
    folder = write_case(case, clean, tmp_path / "export")
    inspections = inspect_path(folder)
    problems = [problem for inspection in inspections for problem in inspection.problems]
    if not case.inspectable:
        assert problems, "inspect must say why it cannot propose settings"
        return
    assert not problems
    proposed = proposed_data_block(inspections, folder)
    settings = {key: value for key, value in proposed.items() if key not in ("source", "path")}
    report = run_validation(folder, settings, tmp_path)
    quarantined = case.outcome.quarantined if case.outcome.kind == "quarantined" else 0
    assert report["tables"]["orders"]["quarantined"] == quarantined
    assert_read_right(tmp_path, case.accepted(case.truth(clean)), quarantined)


def test_ambiguous_dates_message_shows_examples(clean: pd.DataFrame, tmp_path: Path) -> None:
    case = next(case for case in CASES if case.name == "ambiguous_dates")
    folder = write_case(case, clean, tmp_path / "export")
    with pytest.raises(ValueError) as refused:
        run_validation(folder, {}, tmp_path)
    assert re.search(r"dates such as '\d\d\.\d\d\.2023 \d\d:\d\d'", str(refused.value))
    assert "\n" not in str(refused.value)
