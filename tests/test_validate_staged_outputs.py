"""The validate stage's outputs, written table by table on a background thread while validation goes on: what
reaches the output folders is what `write_outputs` wrote after the last table (the accepted tables only when
validation passed, no table of an earlier run left behind), an error leaves the earlier outputs untouched, and a
failed background write is the stage's error."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.sources.read import SET_ASIDE_PARQUET
from pipelines.stages import validate as validate_stage
from pipelines.stages.validate import StagedOutputs, ValidateOutputs


def outputs_in(root: Path) -> ValidateOutputs:
    return ValidateOutputs(root / "data" / "validated", root / "data" / "quarantine", root / "r.json", root / "r.md")


def an_earlier_run(outputs: ValidateOutputs) -> None:
    """Outputs of an earlier run on another source: a table this run does not have, in both folders."""
    for folder in (outputs.validated_dir, outputs.quarantine_dir):
        folder.mkdir(parents=True)
        (folder / "tickets.parquet").write_bytes(b"an earlier run's rows")


def frames(size: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Accepted rows with sub-microsecond times (written in microseconds) and quarantined rows."""
    moments = pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(size) * 1_500, unit="ns")
    accepted = pd.DataFrame({"id": pd.array([f"x{i}" for i in range(size)], dtype="string[pyarrow]"), "at": moments})
    quarantined = pd.DataFrame({"_source_row": np.arange(size), "_rules": ["t.id.unique"] * size})
    return accepted, quarantined


def scratch_folders(outputs: ValidateOutputs) -> list[Path]:
    return [path for path in outputs.validated_dir.parent.iterdir() if path.name.startswith(".")]


def test_published_tables_hold_their_frames_and_replace_the_earlier_run(tmp_path: Path) -> None:
    outputs = outputs_in(tmp_path)
    an_earlier_run(outputs)
    tables = {"customers": frames(0), "orders": frames(1), "order_lines": frames(300)}
    set_aside = pd.DataFrame({"_file": ["orders.csv"], "_source_row": [7], "_rules": ["blank_line"]})
    with StagedOutputs(outputs) as staged:
        staged.set_aside(set_aside)
        for name, (accepted, quarantined) in tables.items():
            staged.table_validated(name, accepted, quarantined)
        assert list(outputs.validated_dir.iterdir()) == [outputs.validated_dir / "tickets.parquet"]  # not yet
        staged.publish(passed=True)
    assert sorted(p.name for p in outputs.validated_dir.iterdir()) == sorted(f"{name}.parquet" for name in tables)
    assert sorted(p.name for p in outputs.quarantine_dir.iterdir()) == sorted(
        [SET_ASIDE_PARQUET, *(f"{name}.parquet" for name in tables)]
    )
    for name, (accepted, quarantined) in tables.items():
        path = outputs.validated_dir / f"{name}.parquet"
        assert pq.read_schema(path).field("at").type == pa.timestamp("us")
        expected = accepted.assign(at=accepted["at"].dt.floor("us"))
        pd.testing.assert_frame_equal(pd.read_parquet(path), expected, check_dtype=False)
        written = pd.read_parquet(outputs.quarantine_dir / f"{name}.parquet")
        pd.testing.assert_frame_equal(written, quarantined, check_dtype=False)
    pd.testing.assert_frame_equal(pd.read_parquet(outputs.quarantine_dir / SET_ASIDE_PARQUET), set_aside)
    assert scratch_folders(outputs) == []


def test_a_failed_validation_publishes_the_quarantine_and_no_accepted_table(tmp_path: Path) -> None:
    outputs = outputs_in(tmp_path)
    an_earlier_run(outputs)
    with StagedOutputs(outputs) as staged:
        staged.table_validated("orders", *frames(5))
        staged.publish(passed=False)
    assert list(outputs.validated_dir.iterdir()) == []
    assert [p.name for p in outputs.quarantine_dir.iterdir()] == ["orders.parquet"]
    assert scratch_folders(outputs) == []


def test_an_error_during_validation_leaves_the_earlier_outputs_untouched(tmp_path: Path) -> None:
    outputs = outputs_in(tmp_path)
    an_earlier_run(outputs)
    with pytest.raises(ValueError, match="no row passed"), StagedOutputs(outputs) as staged:
        staged.table_validated("customers", *frames(3))
        raise ValueError("orders: no row passed validation")
    for folder in (outputs.validated_dir, outputs.quarantine_dir):
        assert [p.name for p in folder.iterdir()] == ["tickets.parquet"]
        assert (folder / "tickets.parquet").read_bytes() == b"an earlier run's rows"
    assert scratch_folders(outputs) == []


def test_a_failed_background_write_is_raised_by_publish(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outputs = outputs_in(tmp_path)
    an_earlier_run(outputs)

    def full_disk(frame: pd.DataFrame, path: Path, options: dict[str, Any]) -> None:
        raise OSError(f"no space left on device: {path.name}")

    monkeypatch.setattr(validate_stage, "write_parquet", full_disk)
    with pytest.raises(OSError, match="no space left on device"), StagedOutputs(outputs) as staged:
        staged.table_validated("orders", *frames(2))
        staged.publish(passed=True)
    assert [p.name for p in outputs.validated_dir.iterdir()] == ["tickets.parquet"]  # nothing was published
    assert scratch_folders(outputs) == []


def test_a_failed_background_write_stops_the_next_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write that failed while a table validated is raised when the next table is done, not after the last."""
    failed = threading.Event()

    def full_disk(frame: pd.DataFrame, path: Path, options: dict[str, Any]) -> None:
        failed.set()
        raise OSError("no space left on device")

    monkeypatch.setattr(validate_stage, "write_parquet", full_disk)
    with pytest.raises(OSError, match="no space left on device"), StagedOutputs(outputs_in(tmp_path)) as staged:
        staged.table_validated("customers", *frames(2))
        assert failed.wait(timeout=30)
        staged._writer.submit(lambda: None).result()  # the failed writes are done before the next table
        staged.table_validated("orders", *frames(2))
        pytest.fail("the failed write should have been raised by the next table")


def test_the_stage_raises_a_failed_write(
    shop: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the stage: the write's error is the stage's, and the outputs of the earlier run stay as they were."""
    outputs = outputs_in(tmp_path)
    an_earlier_run(outputs)
    real_write = validate_stage.write_parquet

    def full_disk_on_lines(frame: pd.DataFrame, path: Path, options: dict[str, Any]) -> None:
        if path.name == "order_lines.parquet":
            raise OSError("no space left on device")
        real_write(frame, path, options)

    monkeypatch.setattr(validate_stage, "write_parquet", full_disk_on_lines)
    with pytest.raises(OSError, match="no space left on device"):
        validate_stage.run(shop["params"], outputs)
    for folder in (outputs.validated_dir, outputs.quarantine_dir):
        assert [p.name for p in folder.iterdir()] == ["tickets.parquet"]
    assert scratch_folders(outputs) == []
    assert not outputs.report_json.exists()
