"""The CSV/Parquet folder source: file discovery, mappings, and clear errors for files that are read wrongly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import AS_OF

from pipelines.sources.files import FolderSourceConfig, read_folder
from pipelines.sources.options import ReadOptions
from pipelines.validation.run import validate_tables

ORDERS_CSV = """order_id,customer_id,ordered_at,order_value,status
o1,c1,2024-01-05 10:00:00,50.0,delivered
o2,c1,2024-03-01 12:30:00,20.5,returned
o3,c2,2024-02-10,0,cancelled
"""


def write(folder: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(text.encode(encoding))
    return path


def test_reads_csv_as_text_and_validates(tmp_path: Path) -> None:
    write(tmp_path, "orders.csv", ORDERS_CSV)
    sources = read_folder(FolderSourceConfig(path=tmp_path)).tables
    assert set(sources) == {"orders"}
    assert sources["orders"].raw["order_value"].tolist() == ["50.0", "20.5", "0"]
    result = validate_tables(sources, AS_OF)
    assert result.accepted["orders"]["order_value"].tolist() == [50.0, 20.5, 0.0]
    assert result.accepted["orders"]["ordered_at"].iloc[2] == pd.Timestamp("2024-02-10")


def test_reads_parquet(tmp_path: Path) -> None:
    frame = pd.read_csv(pd.io.common.StringIO(ORDERS_CSV), dtype=str)
    frame.to_parquet(tmp_path / "orders.parquet")
    assert read_folder(FolderSourceConfig(path=tmp_path)).tables["orders"].raw.shape == (3, 5)


def mapped_export_config(folder: Path) -> FolderSourceConfig:
    return FolderSourceConfig.from_params(
        {
            "path": str(folder),
            "csv": {"delimiter": ";"},
            "files": {"orders": "export.csv"},
            "column_mapping": {
                "orders": {
                    "OrderNo": "order_id",
                    "Kund": "customer_id",
                    "Datum": "ordered_at",
                    "Belopp": "order_value",
                    "Status": "status",
                }
            },
            "value_mapping": {"orders": {"status": {"Levererad": "delivered", "Avbruten": "cancelled"}}},
        }
    )


def test_column_and_value_mapping_from_params(tmp_path: Path) -> None:
    write(
        tmp_path,
        "export.csv",
        "OrderNo;Kund;Datum;Belopp;Status\n1;A;2024-01-05;50.0;Levererad\n2;A;2024-02-05;10,5;Avbruten\n",
    )
    result = validate_tables(read_folder(mapped_export_config(tmp_path)).tables, AS_OF)
    assert result.accepted["orders"]["status"].tolist() == ["delivered"]
    # "10,5" uses a decimal comma: it does not fit the default decimal point, so it is quarantined, not 10 or 105.
    assert result.quarantined["orders"]["_rules"].tolist() == ["orders.order_value.number_format"]
    assert result.quarantined["orders"]["Belopp"].tolist() == ["10,5"]


def test_a_column_nothing_of_which_can_be_read_is_fatal(tmp_path: Path) -> None:
    write(
        tmp_path,
        "export.csv",
        "OrderNo;Kund;Datum;Belopp;Status\n1;A;2024-01-05;50,0;Levererad\n2;A;2024-02-05;10,5;Avbruten\n",
    )
    with pytest.raises(ValueError, match=r"orders.order_value cannot be read as float \(e.g. \['50,0', '10,5'\]\)"):
        validate_tables(read_folder(mapped_export_config(tmp_path)).tables, AS_OF)


def test_value_mapping_accepts_mapped_statuses(tmp_path: Path) -> None:
    write(tmp_path, "orders.csv", "order_id,customer_id,ordered_at,order_value,status\n1,A,2024-01-05,5,Levererad\n")
    config = FolderSourceConfig(path=tmp_path, value_mapping={"orders": {"status": {"Levererad": "delivered"}}})
    result = validate_tables(read_folder(config).tables, AS_OF)
    assert result.accepted["orders"]["status"].tolist() == ["delivered"]


def test_wrong_encoding_says_which_setting_to_change(tmp_path: Path) -> None:
    write(tmp_path, "orders.csv", ORDERS_CSV.replace("c2", "Åsa"), encoding="latin-1")
    with pytest.raises(ValueError, match=r"orders.csv is not valid utf-8 .*set data.csv.encoding"):
        read_folder(FolderSourceConfig(path=tmp_path))


def test_wrong_encoding_reads_with_the_right_setting(tmp_path: Path) -> None:
    write(tmp_path, "orders.csv", ORDERS_CSV.replace("c2", "Åsa"), encoding="latin-1")
    sources = read_folder(FolderSourceConfig(path=tmp_path, csv=ReadOptions(encoding="latin-1"))).tables
    assert "Åsa" in sources["orders"].raw["customer_id"].tolist()


def test_wrong_delimiter_names_the_likely_one(tmp_path: Path) -> None:
    write(tmp_path, "orders.csv", ORDERS_CSV.replace(",", ";"))
    with pytest.raises(ValueError, match=r"looks ';'-delimited: set data.csv.delimiter"):
        read_folder(FolderSourceConfig(path=tmp_path))


def test_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"does not exist; set data.path"):
        read_folder(FolderSourceConfig(path=tmp_path / "nowhere"))


def test_two_files_for_one_table_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "orders.csv", ORDERS_CSV)
    pd.read_csv(tmp_path / "orders.csv").to_parquet(tmp_path / "orders.parquet")
    with pytest.raises(ValueError, match=r"keep one or name it in data.files.orders"):
        read_folder(FolderSourceConfig(path=tmp_path))


def test_params_naming_an_unknown_table_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"not in the contract: \['order'\]"):
        read_folder(FolderSourceConfig(path=tmp_path, column_mapping={"order": {"a": "b"}}))


def test_csv_without_orders_fails_validation(tmp_path: Path) -> None:
    write(tmp_path, "reviews.csv", "order_id,review_score,reviewed_at\no1,5,2024-01-01\n")
    with pytest.raises(ValueError, match="no orders table"):
        validate_tables(read_folder(FolderSourceConfig(path=tmp_path)).tables, AS_OF)


def test_header_only_orders_csv_is_empty_and_fatal(tmp_path: Path) -> None:
    write(tmp_path, "orders.csv", "order_id,customer_id,ordered_at,order_value\n")
    with pytest.raises(ValueError, match="orders has no rows"):
        validate_tables(read_folder(FolderSourceConfig(path=tmp_path)).tables, AS_OF)


def _noise_lines_as_text(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The first implementation of split_noise_lines: every cell written as text, then compared."""
    from pipelines.sources.files import BLANK_LINE, REPEATED_HEADER, SET_ASIDE_ROW, SET_ASIDE_RULES

    cells = frame.astype("string")
    blank = cells.isna().all(axis=1).to_numpy()
    header = np.ones(len(frame), dtype=bool)
    for column in frame.columns:
        header &= (cells[column].str.strip() == str(column).strip()).fillna(False).to_numpy(dtype=bool)
    noise = blank | header
    aside = frame[noise].astype("string")
    aside.insert(0, SET_ASIDE_RULES, np.where(blank[noise], BLANK_LINE, REPEATED_HEADER))
    aside.insert(0, SET_ASIDE_ROW, frame.index[noise])
    return frame[~noise], aside.reset_index(drop=True)


@pytest.mark.parametrize("storage", ["python", "pyarrow"])
def test_noise_lines_are_those_of_comparing_every_cell_as_text(storage: str) -> None:
    from pipelines.sources.files import split_noise_lines

    text = pd.StringDtype(storage)
    frames = {
        # CSV: all text, blank lines and repeated headers (padded), a near-header that is a row.
        "csv": pd.DataFrame(
            {
                "order_id": ["o1", None, "order_id", " order_id ", "order_id", "o2"],
                "order_value": ["5", None, "order_value", "order_value", "5", None],
                "1": ["x", None, "1", "1 ", "1", None],
            },
            dtype=text,
        ),
        # Parquet: typed columns; a row empty in every column, one with only the text empty, a "header" in text.
        "parquet": pd.DataFrame(
            {
                "order_id": pd.array(["o1", None, None, "order_id"], dtype=text),
                "ordered_at": pd.to_datetime(["2024-01-01", None, "2024-01-02", None]),
                "order_value": [1.5, np.nan, np.nan, np.nan],
                "flag": pd.array([True, None, None, None], dtype="boolean"),
                "count": pd.array([1, None, None, None], dtype="Int64"),
            }
        ),
        # A numeric column whose name reads like a number can hold the header; an object column too.
        "numeric_names": pd.DataFrame({"1": [1, 2, 1], "note": pd.array(["1", "note", "note"], dtype=object)}),
        "empty": pd.DataFrame({"order_id": pd.array([], dtype=text), "value": pd.Series([], dtype=float)}),
    }
    for name, frame in frames.items():
        rows, aside = split_noise_lines(frame)
        expected_rows, expected_aside = _noise_lines_as_text(frame)
        pd.testing.assert_frame_equal(rows, expected_rows, obj=name)
        pd.testing.assert_frame_equal(aside, expected_aside, obj=name)
    assert len(split_noise_lines(frames["csv"])[1]) == 3
    assert len(split_noise_lines(frames["parquet"])[1]) == 1
    assert len(split_noise_lines(frames["numeric_names"])[1]) == 1
    clean = frames["parquet"].iloc[[0]]
    assert split_noise_lines(clean)[0] is clean  # nothing set aside: the rows as read, not a copy of them


@pytest.mark.parametrize("dtype", ["object", "string[python]", "string[pyarrow]"])
def test_excel_ids_are_undone_as_by_splitting_every_id(dtype: str) -> None:
    """parse_ids splits only the ids that look like Excel's floats; the first implementation split every id."""
    from pipelines.validation.parse import EXCEL_FLOAT_ID, EXCEL_SCIENTIFIC_ID, parse_ids

    text = pd.Series(["42.0", "0042", "7.00", "4.2E+05", None, "a.b", "0.0", "1.5", "12", "01.0", ""], dtype=dtype)
    values = text.astype("string[pyarrow]")
    floats = values.str.fullmatch(EXCEL_FLOAT_ID).fillna(False).astype(bool)
    scientific = values.str.fullmatch(EXCEL_SCIENTIFIC_ID).fillna(False).astype(bool).to_numpy()
    first = values.where(~floats, values.str.split(".", n=1).str[0]).mask(scientific).astype("string[pyarrow]")
    parsed = parse_ids(text, excel_ids=True)
    pd.testing.assert_series_equal(parsed.values, first)
    assert parsed.values.tolist()[:4] == ["42", "0042", "7", pd.NA] and parsed.excel_floats_undone == 3
    assert parse_ids(text.iloc[:0], excel_ids=True).values.empty
