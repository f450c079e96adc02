"""The folder source reads one table at a time, as validation takes it: a table's raw rows are gone before the next
file is read, a file that cannot be read at all fails before any table is validated, and one that turns out bad
further in fails the stage with its message and leaves the earlier outputs as they were."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import pandas as pd
import pytest
from conftest import AS_OF, write_params

from pipelines.sources import files
from pipelines.sources.files import FolderSourceConfig, read_folder
from pipelines.stages import validate as validate_stage
from pipelines.stages.validate import ValidateOutputs
from pipelines.validation.run import validate_tables

CUSTOMERS_CSV = "customer_id,signed_up_at\nc1,2023-01-01\nc2,2023-02-01\n"
ORDERS_CSV = (
    "order_id,customer_id,ordered_at,order_value,status\n"
    "o1,c1,2024-01-05,50.0,delivered\n"
    "o2,c2,2024-03-01,20.5,delivered\n"
)
LINES_HEADER = "order_id,line_id,product_id,quantity,unit_price\n"


def write_shop(folder: Path, lines: str = LINES_HEADER + "o1,l1,p1,1,50.0\no2,l2,p2,1,20.5\n") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "customers.csv").write_text(CUSTOMERS_CSV)
    (folder / "orders.csv").write_text(ORDERS_CSV)
    (folder / "order_lines.csv").write_text(lines)
    return folder


def test_each_raw_table_is_gone_before_the_next_file_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    read_order: list[str] = []
    raw_frames: list[weakref.ref[pd.DataFrame]] = []
    real_read = files._read_file

    def read_and_check(path: Path, options: files.ReadOptions) -> pd.DataFrame:
        gc.collect()
        held = [read_order[i] for i, frame in enumerate(raw_frames) if frame() is not None]
        assert held == [], f"{path.name} read while the raw rows of {held} are still held"
        frame = real_read(path, options)
        read_order.append(path.stem)
        raw_frames.append(weakref.ref(frame))
        return frame

    monkeypatch.setattr(files, "_read_file", read_and_check)
    source = read_folder(FolderSourceConfig(path=write_shop(tmp_path)))
    assert read_order == []  # nothing is read before validation asks for it
    result = validate_tables(source.tables, AS_OF, release=True)
    assert read_order == ["customers", "orders", "order_lines"]
    assert [r.accepted for r in result.reports if r.present] == [2, 2, 2]


def test_the_line_accounting_needs_every_table_read(tmp_path: Path) -> None:
    source = read_folder(FolderSourceConfig(path=write_shop(tmp_path, LINES_HEADER + "o1,l1,p1,1,50.0\n\n")))
    with pytest.raises(RuntimeError, match=r"\['customers', 'order_lines', 'orders'\] are not read yet"):
        _ = source.accounting
    validate_tables(source.tables, AS_OF, release=True)
    assert source.accounting["tables"] == {"customers": 2, "orders": 2, "order_lines": 1}
    assert source.accounting["rows_set_aside"] == 1
    assert source.set_aside is not None and source.set_aside[files.SET_ASIDE_FILE].str.endswith("order_lines.csv").all()


def test_a_later_file_read_with_the_wrong_delimiter_fails_before_any_table_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write_shop(tmp_path, (LINES_HEADER + "o1,l1,p1,1,50.0\n").replace(",", ";"))
    real_read = files.read_csv
    whole_reads: list[str] = []

    def record_whole_reads(path: Path, *args: object, nrows: int | None = None, **kwargs: object) -> pd.DataFrame:
        if nrows is None:
            whole_reads.append(path.name)
        return real_read(path, *args, nrows=nrows, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(files, "read_csv", record_whole_reads)
    with pytest.raises(ValueError, match=r"order_lines.csv has a single column .* looks ';'-delimited"):
        read_folder(FolderSourceConfig(path=folder))
    assert whole_reads == []


def test_a_bad_byte_deep_in_a_later_file_fails_the_stage_and_keeps_the_earlier_outputs(tmp_path: Path) -> None:
    lines = LINES_HEADER + "".join(f"o1,l{i},p1,1,50.0\n" for i in range(5 * files.FIRST_ROWS))
    folder = write_shop(tmp_path / "raw", lines)
    with (folder / "order_lines.csv").open("ab") as handle:
        handle.write("o2,l1,Café,1,20.5\n".encode("latin-1"))
    params = write_params(tmp_path / "params.yaml", data={"path": str(folder), "as_of": "2025-01-01"})
    outputs = ValidateOutputs(tmp_path / "validated", tmp_path / "quarantine", tmp_path / "r.json", tmp_path / "r.md")
    for folder_out in (outputs.validated_dir, outputs.quarantine_dir):
        folder_out.mkdir()
        (folder_out / "orders.parquet").write_bytes(b"an earlier run's rows")

    with pytest.raises(ValueError, match=r"order_lines.csv is not valid utf-8 .*set data.csv.encoding"):
        validate_stage.run(params, outputs)
    for folder_out in (outputs.validated_dir, outputs.quarantine_dir):
        assert [p.name for p in folder_out.iterdir()] == ["orders.parquet"]
        assert (folder_out / "orders.parquet").read_bytes() == b"an earlier run's rows"
    assert not outputs.report_json.exists()
