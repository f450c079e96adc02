"""The UCI Online Retail adapter: column spellings, combining files, line accounting and credit-note matching."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from conftest import SHARED_DATA

from features.build import features_at
from features.cutoffs import FeatureParams
from features.inputs import inputs_from_frames
from features.leakage import feature_differences, truncation_differences
from pipelines.sources.online_retail import read_online_retail
from pipelines.sources.read import SET_ASIDE_RULES

# Online Retail II spelling. Customer 100 buys the mug twice, then credits one; customer 200's credit note is for
# something bought before the history starts.
EARLY = pd.DataFrame(
    [
        ("500001", "MUG", "mug", 4, "2010-11-01 10:00", 2.5, 100, "United Kingdom"),
        ("500001", "POST", "postage", 1, "2010-11-01 10:00", 5.0, 100, "United Kingdom"),
        ("500002", "MUG", "mug", 2, "2010-11-20 09:00", 2.5, 100, "United Kingdom"),
        ("500002", "PLATE", "plate", 1, "2010-11-20 09:00", 8.0, 100, "United Kingdom"),
        ("500002", "M", "manual", 1, "2010-11-20 09:00", 1.0, 100, "United Kingdom"),
        ("500003", "PLATE", "plate", 3, "2010-11-21 12:00", 8.0, None, "United Kingdom"),
        ("C500004", "MUG", "mug", -1, "2010-11-25 16:00", 2.5, 100, "United Kingdom"),
        ("C500004", "D", "discount", -1, "2010-11-25 16:00", 1.0, 100, "United Kingdom"),
        ("C500005", "VASE", "vase", -1, "2010-11-26 11:00", 9.0, 200, "France"),
        ("500006", "VASE", "vase", 1, "2010-12-02 08:00", 9.0, 200, "France"),
        ("500007", "DAMAGES", "thrown away", -12, "2010-12-03 08:00", 0.0, None, "United Kingdom"),
    ],
    columns=["Invoice", "StockCode", "Description", "Quantity", "InvoiceDate", "Price", "Customer ID", "Country"],
)
# Online Retail spelling; invoice 500006 is in both files (the downloads overlap).
LATE_CSV = """InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country
500006,VASE,vase,1,12/2/2010 8:00,9.0,200.0,France
500008,PLATE,plate,2,12/5/2010 13:30,8.0,200.0,France
C500009,PLATE,plate,-2,12/6/2010 10:00,8.0,200.0,France
"""


@pytest.fixture
def shop_folder(tmp_path: Path) -> Path:
    early = EARLY.assign(InvoiceDate=pd.to_datetime(EARLY["InvoiceDate"]), **{"Customer ID": EARLY["Customer ID"]})
    early["Customer ID"] = early["Customer ID"].astype("Int64")
    (tmp_path / "ii").mkdir()
    early.to_parquet(tmp_path / "ii" / "online_retail_ii.parquet")
    (tmp_path / "online_retail.csv").write_text(LATE_CSV)
    return tmp_path


def test_every_line_is_used_or_set_aside_with_its_reason(shop_folder: Path) -> None:
    source = read_online_retail(shop_folder)
    accounting = source.accounting
    assert accounting["rows_in"] == len(EARLY) + 3
    assert accounting["rows_used"] + accounting["rows_set_aside"] == accounting["rows_in"]
    assert source.set_aside is not None and len(source.set_aside) == accounting["rows_set_aside"]
    by_row = source.set_aside.set_index(["invoice", "stock_code"])[SET_ASIDE_RULES].to_dict()
    assert by_row == {
        ("500002", "M"): "non_product_manual",
        ("500003", "PLATE"): "no_customer",
        ("C500005", "VASE"): "credit_note_matches_no_earlier_purchase",
        ("500007", "DAMAGES"): "no_customer; purchase_quantity_not_positive",
        ("500006", "VASE"): "invoice_in_earlier_file",
    }
    assert accounting["set_aside_by_rule"]["no_customer"] == 2


def test_orders_sum_products_and_postage_but_not_manual_lines(shop_folder: Path) -> None:
    orders = read_online_retail(shop_folder).tables["orders"].raw.set_index("order_id")
    assert sorted(orders.index) == ["500001", "500002", "500006", "500008"]
    assert orders.loc["500001", "order_value"] == 4 * 2.5 + 5.0
    assert orders.loc["500002", "order_value"] == 2 * 2.5 + 8.0
    assert orders.loc["500008", "customer_id"] == "200"  # 200.0 in the CSV
    assert orders.loc["500008", "ordered_at"] == pd.Timestamp("2010-12-05 13:30", tz="Europe/London")


def test_credit_note_returns_the_latest_earlier_order_with_the_item(shop_folder: Path) -> None:
    returns = read_online_retail(shop_folder).tables["returns"].raw
    assert returns["order_id"].tolist() == ["500002", "500008"]
    assert returns["returned_at"].tolist() == [
        pd.Timestamp("2010-11-25 16:00", tz="Europe/London"),
        pd.Timestamp("2010-12-06 10:00", tz="Europe/London"),
    ]


def test_product_lines_are_order_lines_without_a_category(shop_folder: Path) -> None:
    lines = read_online_retail(shop_folder).tables["order_lines"].raw
    assert lines.to_dict("list") == {
        "line_id": ["500001-1", "500002-1", "500002-2", "500006-1", "500008-1"],
        "order_id": ["500001", "500002", "500002", "500006", "500008"],
        "product_id": ["MUG", "MUG", "PLATE", "VASE", "PLATE"],
        "quantity": [4.0, 2.0, 1.0, 1.0, 2.0],
        "unit_price": [2.5, 2.5, 8.0, 9.0, 8.0],
    }  # postage and the manual line are not products; the invoice read twice counts once


def test_a_credit_note_names_the_line_when_it_is_unambiguous(shop_folder: Path, tmp_path: Path) -> None:
    returns = read_online_retail(shop_folder).tables["returns"].raw
    assert returns["line_id"].tolist() == ["500002-1", "500008-1"]
    # The mug on two lines of one invoice: which came back cannot be told, so the return names the order alone.
    lines = pd.DataFrame(
        [
            ("600001", "MUG", "mug", 1, "2011-01-10 10:00", 2.5, 300, "Spain"),
            ("600001", "MUG", "mug", 1, "2011-01-10 10:00", 2.5, 300, "Spain"),
            ("600001", "PLATE", "plate", 1, "2011-01-10 10:00", 8.0, 300, "Spain"),
            ("C600002", "MUG", "mug", -1, "2011-01-12 10:00", 2.5, 300, "Spain"),
        ],
        columns=["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID",
                 "Country"],
    )  # fmt: skip
    folder = tmp_path / "ambiguous"
    folder.mkdir()
    lines.assign(InvoiceDate=pd.to_datetime(lines["InvoiceDate"])).to_parquet(folder / "online_retail.parquet")
    returns = read_online_retail(folder).tables["returns"].raw
    assert returns["order_id"].tolist() == ["600001"]
    assert returns["line_id"].isna().all()


def test_orders_carry_their_country_and_customers_none(shop_folder: Path) -> None:
    source = read_online_retail(shop_folder)
    orders = source.tables["orders"].raw.set_index("order_id")
    assert orders["country"].to_dict() == {
        "500001": "United Kingdom", "500002": "United Kingdom", "500006": "France", "500008": "France",
    }  # fmt: skip
    assert list(source.tables["customers"].raw.columns) == ["customer_id"]


def test_the_country_at_a_cutoff_is_the_one_of_the_orders_before_it(tmp_path: Path) -> None:
    """Customer 12370 of the real data: Austria at 2010-11-28, Cyprus (most of their lines) in the export."""
    lines = pd.DataFrame(
        [
            ("536001", "MUG", "mug", 1, "2010-11-10 10:00", 2.5, 12370, "Austria"),
            ("536002", "MUG", "mug", 1, "2010-12-05 10:00", 2.5, 12370, "Cyprus"),
            ("536002", "PLATE", "plate", 1, "2010-12-05 10:00", 8.0, 12370, "Cyprus"),
        ],
        columns=["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID",
                 "Country"],
    )  # fmt: skip
    lines.assign(InvoiceDate=pd.to_datetime(lines["InvoiceDate"])).to_parquet(tmp_path / "online_retail.parquet")
    tables = {name: _naive_utc(table.raw) for name, table in read_online_retail(tmp_path).tables.items()}
    inputs = inputs_from_frames(tables, pd.Timestamp("2011-01-01"))
    country = features_at(inputs, pd.Timestamp("2010-11-28"), FeatureParams()).execute().set_index("customer_id")
    assert country.loc["12370", "country"] == "Austria"


def _naive_utc(frame: pd.DataFrame) -> pd.DataFrame:
    """Local times as validation stores them: UTC without a zone."""
    zoned = [name for name, dtype in frame.dtypes.items() if isinstance(dtype, pd.DatetimeTZDtype)]
    return frame.assign(**{name: frame[name].dt.tz_convert("UTC").dt.tz_localize(None) for name in zoned})


def test_a_file_of_another_layout_is_named(tmp_path: Path) -> None:
    pd.DataFrame({"order_id": ["1"], "Quantity": [1]}).to_parquet(tmp_path / "orders.parquet")
    with pytest.raises(
        ValueError, match=r"orders.parquet is not an Online Retail file: no column InvoiceNo or Invoice"
    ):
        read_online_retail(tmp_path)


def test_a_folder_without_line_files_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("nothing here")
    with pytest.raises(ValueError, match="holds no invoice-line files"):
        read_online_retail(tmp_path)


REAL_FILES = {
    "uci-online-retail/online_retail.parquet": "InvoiceNo",
    "uci-online-retail-ii/online_retail_ii_year_2009_2010.parquet": "Invoice",
}


@pytest.fixture(scope="module")
def real_slice(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both real files cut to 15 November - 20 December 2010, the weeks around their overlap."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"the real datasets are not here ({SHARED_DATA} is absent)")
    folder = tmp_path_factory.mktemp("online-retail-slice")
    for name in REAL_FILES:
        lines = pd.read_parquet(SHARED_DATA / name)
        weeks = lines["InvoiceDate"].between(pd.Timestamp("2010-11-15"), pd.Timestamp("2010-12-20"))
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        lines[weeks].to_parquet(folder / name)
    return folder


@pytest.fixture(scope="module")
def year_slice(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both real files cut to 2010 up to 20 December: customer 12370 orders from Austria in February and March,
    then from Cyprus (most of their lines) from 14 December."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"the real datasets are not here ({SHARED_DATA} is absent)")
    return lines_between(
        SHARED_DATA, pd.Timestamp("2010-01-01"), pd.Timestamp("2010-12-20"), tmp_path_factory.mktemp("year")
    )


def lines_between(folder: Path, start: pd.Timestamp, end: pd.Timestamp, out: Path) -> Path:
    """The invoice-line files of `folder` with the lines of [start, end) only."""
    for name in REAL_FILES:
        lines = pd.read_parquet(folder / name)
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        lines[(lines["InvoiceDate"] >= start) & (lines["InvoiceDate"] < end)].to_parquet(out / name)
    return out


def test_real_files_combine_without_the_overlap(real_slice: Path) -> None:
    source = read_online_retail(real_slice)
    accounting = source.accounting
    rows = {name: len(pd.read_parquet(real_slice / name)) for name in REAL_FILES}
    assert accounting["rows_in"] == sum(rows.values())
    assert accounting["rows_used"] + accounting["rows_set_aside"] == accounting["rows_in"]
    # The data's README: the 22,523 rows of 1-9 December 2010 are in both files.
    assert accounting["set_aside_by_rule"]["invoice_in_earlier_file"] == 22_523
    aside = source.set_aside
    assert aside is not None
    assert (
        aside.loc[aside[SET_ASIDE_RULES].str.contains("invoice_in_earlier_file"), "_file"]
        .str.endswith("uci-online-retail/online_retail.parquet")
        .all()
    )
    orders = source.tables["orders"].raw
    assert orders["order_id"].is_unique


def test_real_credit_notes_point_back_to_the_customers_earlier_orders(real_slice: Path) -> None:
    source = read_online_retail(real_slice)
    orders = source.tables["orders"].raw.set_index("order_id")
    returns = source.tables["returns"].raw
    assert len(returns) > 100
    assert (orders.loc[returns["order_id"], "ordered_at"].to_numpy() <= returns["returned_at"].to_numpy()).all()
    lines = pd.concat(pd.read_parquet(real_slice / name) for name in REAL_FILES)
    credit_notes = lines["Invoice"].fillna(lines["InvoiceNo"]).astype(str).str.startswith("C")
    with_customer = lines["Customer ID"].fillna(lines["CustomerID"]).notna()
    # Every credit-note line with a customer either returns an order or is set aside as unmatched.
    assert source.set_aside is not None
    unmatched = source.set_aside[SET_ASIDE_RULES].str.contains("credit_note_matches_no_earlier_purchase").sum()
    assert unmatched < (credit_notes & with_customer).sum()


def test_a_workbook_gives_all_its_sheets(tmp_path: Path) -> None:
    """The Online Retail II download is one workbook with a sheet per year."""
    lines = EARLY.assign(InvoiceDate=pd.to_datetime(EARLY["InvoiceDate"]))
    with pd.ExcelWriter(tmp_path / "online_retail_II.xlsx") as workbook:
        lines.iloc[:5].to_excel(workbook, sheet_name="Year 2009-2010", index=False)
        lines.iloc[5:].to_excel(workbook, sheet_name="Year 2010-2011", index=False)
    source = read_online_retail(tmp_path)
    assert source.accounting["rows_in"] == len(EARLY)
    assert set(source.accounting["files"]) == {
        f"{tmp_path / 'online_retail_II.xlsx'}#Year 2009-2010",
        f"{tmp_path / 'online_retail_II.xlsx'}#Year 2010-2011",
    }
    orders = source.tables["orders"].raw.set_index("order_id")
    assert orders.loc["500001", "order_value"] == 15.0
    assert orders.loc["500001", "customer_id"] == "100"


def contract_tables(folder: Path) -> dict[str, pd.DataFrame]:
    return {name: _naive_utc(table.raw) for name, table in read_online_retail(folder).tables.items()}


def test_the_real_data_at_a_cutoff_is_the_same_from_lines_cut_there(year_slice: Path, tmp_path: Path) -> None:
    """Features at the cutoff from the invoice lines before it, and labels from the lines before the window's end,
    equal those from the whole slice: every column (the country too: a later line must not change it)."""
    cutoff, params = pd.Timestamp("2010-12-05"), FeatureParams(horizon_days=14, active_window_days=365)
    window_end = cutoff + pd.Timedelta(days=params.horizon_days)
    tables = contract_tables(year_slice)
    full = inputs_from_frames(tables, pd.Timestamp("2010-12-20"))
    expected = features_at(full, cutoff, params).execute()
    assert expected.set_index("customer_id").loc["12370", "country"] == "Austria"
    for end, label in ((cutoff, False), (window_end, True)):
        cut = contract_tables(lines_between(year_slice, pd.Timestamp("2010-01-01"), end, tmp_path / str(end.date())))
        actual = features_at(inputs_from_frames(cut, end), cutoff, params).execute()
        differences = feature_differences(expected, actual)
        assert differences.sum() == 0, differences[differences > 0]
        if label:
            pd.testing.assert_series_equal(
                expected.set_index("customer_id")["churned"].sort_index(),
                actual.set_index("customer_id")["churned"].sort_index(),
            )
    # and the contract-level check on the same slice
    assert truncation_differences(tables, cutoff, params, pd.Timestamp("2010-12-20")).sum() == 0
