"""UCI Online Retail (dataset 352) and Online Retail II (dataset 502): invoice lines to customers, orders, returns.

Both spellings of the columns are read (InvoiceNo/Invoice, UnitPrice/Price, CustomerID/Customer ID). All files in
the folder (the two UCI downloads, or the sheets of one workbook) combine into one history: an invoice is taken from
the earliest file that holds it, so the week the two downloads share (1-9 December 2010) counts once.

Every invoice line is used or set aside with its reason (lines in = lines used + lines set aside):

| line                                                      | becomes                                              |
|-----------------------------------------------------------|------------------------------------------------------|
| product, postage (POST, DOT, C2) or discount (D) line of  | part of that invoice's order, value = sum of         |
| an invoice                                                | quantity * price (postage is paid, so it counts); a  |
|                                                           | product line is also an order line (StockCode is the |
|                                                           | product; the data has no category)                   |
| line of a credit note ('C' prefix) one of whose items the | part of a return of the order the item was last      |
| customer bought earlier                                   | bought in, known from the credit note's time; the    |
|                                                           | return names the line when its items there are one   |
|                                                           | line of that order, else none (the whole order)      |
| credit note none of whose items the customer bought in    | set aside: `credit_note_matches_no_earlier_purchase` |
| the data (bought before the history starts)               |                                                      |
| no customer id                                            | set aside: `no_customer`                             |
| manual entry (M, ADJUST, B), fee (BANK CHARGES,           | set aside: `non_product_<kind>`; bookkeeping, not    |
| AMAZONFEE), samples (S), charity (CRUK), test (TEST...)   | something the customer bought                        |
| bad-debt adjustment ('A' prefix)                          | set aside: `bad_debt_adjustment`                     |
| invoice line with a quantity <= 0, credit note line with  | set aside: `purchase_quantity_not_positive`,         |
| a quantity >= 0, negative price, unreadable cell          | `credit_quantity_not_negative`, `negative_price`,    |
|                                                           | `unreadable_cell`                                    |
| invoice already read from an earlier file                 | set aside: `invoice_in_earlier_file`                 |

A credit note does not say whether goods came back or an order was cancelled before dispatch, nor why; it becomes
a return with no reason. An order carries the country most of its lines name; customers get none, because one
taken over all of a customer's lines would carry later lines into earlier cutoffs. The data has no statuses,
channels, payments, deliveries, reviews or tickets, so the features from them are missing (null), not zero.
Times are UK local time; validation converts them to UTC.
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

SOURCE = "online_retail"
SHOP_TIMEZONE = "Europe/London"
LINE_FILE_SUFFIXES = (".parquet", ".csv", ".xlsx")
# line column -> the spellings the two datasets use
COLUMN_SPELLINGS: dict[str, tuple[str, ...]] = {
    "invoice": ("InvoiceNo", "Invoice"),
    "stock_code": ("StockCode",),
    "description": ("Description",),
    "quantity": ("Quantity",),
    "invoice_date": ("InvoiceDate",),
    "price": ("UnitPrice", "Price"),
    "customer": ("CustomerID", "Customer ID"),
    "country": ("Country",),
}
LINE_COLUMNS = tuple(COLUMN_SPELLINGS)
# Stock codes that are not products (upper-cased); any other code, gift vouchers included, is a product.
NON_PRODUCT_CODES: dict[str, str] = {
    "POST": "postage",
    "DOT": "postage",
    "C2": "postage",
    "D": "discount",
    "M": "manual",
    "ADJUST": "manual",
    "ADJUST2": "manual",
    "B": "manual",
    "BANK CHARGES": "fee",
    "AMAZONFEE": "fee",
    "S": "samples",
    "CRUK": "charity",
}
TEST_CODE = r"^TEST\d*$"
# Line kinds that are part of what a customer pays for an order.
ORDER_KINDS = ("product", "postage", "discount")


def read_online_retail(folder: Path) -> SourceRead:
    lines = combine_files([read_line_file(path) for path in line_files(folder)])
    lines["_rules"] = line_rules(lines)
    lines = set_aside_mixed_invoices(lines)
    orders = orders_from_lines(lines)
    lines["_line_id"] = line_ids(lines)
    order_lines = order_lines_from_lines(lines)
    credited = credit_note_matches(lines)
    unmatched = is_credit_line(lines) & ~lines["_invoice"].isin(credited["credit_note"])
    lines.loc[unmatched, "_rules"] = _add_rule(
        lines.loc[unmatched, "_rules"], "credit_note_matches_no_earlier_purchase"
    )
    returns = returns_from_matches(credited)
    customers = customers_from_lines(lines)
    set_aside = set_aside_lines(lines)
    accounting = line_accounting(lines, orders, returns, customers, order_lines)
    log.info(
        "%s: %d invoice lines in, %d used, %d set aside; %d orders, %d returns, %d customers",
        SOURCE,
        len(lines),
        accounting["rows_used"],
        accounting["rows_set_aside"],
        len(orders),
        len(returns),
        len(customers),
    )
    tables = {
        "customers": SourceTable("customers", customers, f"{folder} ({SOURCE}: customers from invoice lines)"),
        "orders": SourceTable("orders", orders, f"{folder} ({SOURCE}: orders from invoice lines)"),
        "order_lines": SourceTable("order_lines", order_lines, f"{folder} ({SOURCE}: product lines of invoices)"),
        "returns": SourceTable("returns", returns, f"{folder} ({SOURCE}: returns from credit notes)"),
    }
    return SourceRead(tables=tables, set_aside=set_aside, accounting=accounting)


def line_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise ValueError(f"data folder {folder} does not exist; set data.path in params.yaml")
    files = sorted(path for path in folder.rglob("*") if path.suffix in LINE_FILE_SUFFIXES and path.is_file())
    if not files:
        raise ValueError(f"{folder} holds no invoice-line files ({', '.join(LINE_FILE_SUFFIXES)})")
    return files


def read_line_file(path: Path) -> pd.DataFrame:
    """One file's lines with the line columns, plus where each line came from. A workbook gives all its sheets."""
    log.info("%s: reading %s", SOURCE, path)
    if path.suffix == ".xlsx":
        sheets = pd.read_excel(path, sheet_name=None, dtype={"Invoice": str, "InvoiceNo": str, "StockCode": str})
        return pd.concat(
            [normalise_columns(frame, f"{path}#{sheet}") for sheet, frame in sheets.items()], ignore_index=True
        )
    if path.suffix == ".csv":
        return normalise_columns(read_csv(path, ReadOptions(encoding="latin-1")), str(path))
    return normalise_columns(pd.read_parquet(path), str(path))


def normalise_columns(frame: pd.DataFrame, origin: str) -> pd.DataFrame:
    renamed = {}
    for column, spellings in COLUMN_SPELLINGS.items():
        found = [spelling for spelling in spellings if spelling in frame.columns]
        if not found:
            raise ValueError(
                f"{origin} is not an Online Retail file: no column {' or '.join(spellings)} "
                f"(found {list(frame.columns)})"
            )
        renamed[found[0]] = column
    lines = frame[list(renamed)].rename(columns=renamed).reset_index(drop=True)
    lines[SET_ASIDE_FILE] = origin
    lines[SET_ASIDE_ROW] = np.arange(len(lines))
    return lines


def combine_files(files: list[pd.DataFrame]) -> pd.DataFrame:
    """All files' lines with parsed working columns (_invoice, _code, _credit, _kind, _customer, _quantity, _price,
    _at); an invoice found in several files is kept from the file whose lines start earliest."""
    lines = pd.concat([_parsed(frame) for frame in files], ignore_index=True)
    first_time = lines.groupby(SET_ASIDE_FILE)["_at"].min()
    file_rank = first_time.rank(method="first", na_option="bottom").astype(int)
    lines["_file_rank"] = lines[SET_ASIDE_FILE].map(file_rank)
    first_rank = lines.groupby("_invoice")["_file_rank"].transform("min")
    lines["_in_earlier_file"] = lines["_file_rank"] > first_rank
    return lines


def _parsed(frame: pd.DataFrame) -> pd.DataFrame:
    lines = frame.copy()
    lines["_invoice"] = lines["invoice"].astype("string").str.strip().str.upper()
    lines["_code"] = lines["stock_code"].astype("string").str.strip().str.upper()
    lines["_credit"] = lines["_invoice"].str.startswith("C").fillna(False).astype(bool)
    lines["_kind"] = line_kind(lines["_code"])
    lines["_customer"] = _customer_ids(lines["customer"])
    lines["_quantity"] = pd.to_numeric(lines["quantity"], errors="coerce")
    lines["_price"] = pd.to_numeric(lines["price"], errors="coerce")
    lines["_at"] = _uk_times(lines["invoice_date"])
    return lines


def _customer_ids(values: pd.Series) -> pd.Series:
    """Customer numbers as text; a CSV or spreadsheet may carry them as floats (17850.0)."""
    if pd.api.types.is_numeric_dtype(values.dtype):
        numbers = pd.to_numeric(values, errors="coerce")
        return numbers.round().astype("Int64").astype("string")
    text = values.astype("string").str.strip()
    return text.str.replace(r"\.0+$", "", regex=True).replace("", pd.NA)


def _uk_times(values: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        naive = values.astype("datetime64[ns]")
    else:
        naive = pd.to_datetime(values, errors="coerce", format="mixed")
    # The hour the clocks go back is read as summer time and the hour they skip moves forward: an hour does not
    # matter to churn, a dropped line would.
    return naive.dt.tz_localize(SHOP_TIMEZONE, ambiguous=True, nonexistent="shift_forward")


def is_credit_line(lines: pd.DataFrame) -> pd.Series:
    return lines["_credit"] & (lines["_rules"] == "")


def is_order_line(lines: pd.DataFrame) -> pd.Series:
    return ~lines["_credit"] & (lines["_rules"] == "")


def line_kind(codes: pd.Series) -> pd.Series:
    kinds = codes.map(NON_PRODUCT_CODES).fillna("product")
    return kinds.mask(codes.str.match(TEST_CODE).fillna(False), "test")


def line_rules(lines: pd.DataFrame) -> pd.Series:
    """Why each line cannot be used ('' when it can), several reasons joined by '; '."""
    credit, kind = lines["_credit"], lines["_kind"]
    unreadable = lines["_invoice"].isna() | lines["_quantity"].isna() | lines["_price"].isna() | lines["_at"].isna()
    checks = {
        "invoice_in_earlier_file": lines["_in_earlier_file"],
        "unreadable_cell": unreadable,
        "no_customer": lines["_customer"].isna(),
        "bad_debt_adjustment": lines["_invoice"].str.startswith("A").fillna(False),
        "negative_price": lines["_price"] < 0,
        "purchase_quantity_not_positive": ~credit & (lines["_quantity"] <= 0),
        "credit_quantity_not_negative": credit & (lines["_quantity"] >= 0),
    }
    for non_product in sorted((set(NON_PRODUCT_CODES.values()) | {"test"}) - set(ORDER_KINDS)):
        checks[f"non_product_{non_product}"] = kind == non_product
    rules = pd.Series("", index=lines.index, dtype="string")
    for rule, broken in checks.items():
        mask = broken.fillna(False).to_numpy(dtype=bool)
        rules[mask] = _add_rule(rules[mask], rule)
    return rules


def _add_rule(rules: pd.Series, rule: str) -> pd.Series:
    return rules.where(rules == "", rules + "; ") + rule


def set_aside_mixed_invoices(lines: pd.DataFrame) -> pd.DataFrame:
    """An invoice whose usable lines name more than one customer cannot be one customer's order."""
    usable = lines[lines["_rules"] == ""]
    customers_per_invoice = usable.groupby("_invoice")["_customer"].nunique()
    mixed = lines["_invoice"].isin(customers_per_invoice.index[customers_per_invoice > 1]) & (lines["_rules"] == "")
    lines.loc[mixed, "_rules"] = "invoice_with_several_customers"
    return lines


def orders_from_lines(lines: pd.DataFrame) -> pd.DataFrame:
    """One order per invoice: its customer, time, value and country (the one most of its lines name)."""
    order_lines = lines[is_order_line(lines)]
    grouped = order_lines.assign(_value=order_lines["_quantity"] * order_lines["_price"]).groupby("_invoice", sort=True)
    orders = grouped.agg(customer_id=("_customer", "first"), ordered_at=("_at", "min"), order_value=("_value", "sum"))
    orders["order_value"] = orders["order_value"].round(2)
    orders["country"] = most_common(order_lines, "_invoice", "country")
    return orders.rename_axis("order_id").reset_index()


def most_common(lines: pd.DataFrame, key: str, column: str) -> pd.Series:
    """Per `key`, the value of `column` most lines name (ties: alphabetical)."""
    counts = lines.groupby([key, column], dropna=False).size().rename("lines").reset_index()
    counts = counts.sort_values([key, "lines", column], ascending=[True, False, True])
    return counts.drop_duplicates(key).set_index(key)[column]


def is_product_line(lines: pd.DataFrame) -> pd.Series:
    return is_order_line(lines) & (lines["_kind"] == "product")


def line_ids(lines: pd.DataFrame) -> pd.Series:
    """`<invoice>-<n>` for the n-th product line of an invoice as its file lists them (postage and discounts are
    part of the order's value, not something bought); missing for every other line."""
    products = is_product_line(lines)
    number = lines[products].groupby("_invoice", sort=False).cumcount() + 1
    ids = pd.Series(pd.NA, index=lines.index, dtype="string")
    ids[products] = lines.loc[products, "_invoice"] + "-" + number.astype("string")
    return ids


def order_lines_from_lines(lines: pd.DataFrame) -> pd.DataFrame:
    """The product lines of the orders: StockCode is the product; the data names no category (left empty)."""
    products = lines[is_product_line(lines)]
    return pd.DataFrame(
        {
            "line_id": products["_line_id"].to_numpy(),
            "order_id": products["_invoice"].to_numpy(),
            "product_id": products["_code"].to_numpy(),
            "quantity": products["_quantity"].astype(float).to_numpy(),
            "unit_price": products["_price"].astype(float).to_numpy(),
        }
    )


def credit_note_matches(lines: pd.DataFrame) -> pd.DataFrame:
    """credit_note, order_id, returned_at, line_id: for every credit-note line, the customer's latest order at or
    before the credit note holding the same item; only earlier orders can be matched, so a return never points
    forward. `line_id` names the order's line when the credit note's items in that order are one line of it
    (unambiguous), else it is empty."""
    credit = lines.loc[is_credit_line(lines), ["_invoice", "_customer", "_code", "_at"]]
    bought = lines.loc[is_product_line(lines)]
    bought = bought[["_invoice", "_customer", "_code", "_at"]].rename(columns={"_invoice": "order_id"})
    matched = pd.merge_asof(
        credit.rename(columns={"_invoice": "credit_note"}).sort_values("_at"),
        bought.sort_values("_at"),
        on="_at",
        by=["_customer", "_code"],
        direction="backward",
        allow_exact_matches=True,
    ).dropna(subset=["order_id"])
    returned_at = credit.groupby("_invoice")["_at"].min()
    pairs = matched[["credit_note", "order_id"]].drop_duplicates()
    pairs = pairs.merge(_single_lines(matched, lines), on=["credit_note", "order_id"], how="left")
    return pairs.assign(returned_at=pairs["credit_note"].map(returned_at).to_numpy())


def _single_lines(matched: pd.DataFrame, lines: pd.DataFrame) -> pd.DataFrame:
    """credit_note, order_id, line_id where the items a credit note returns from an order are one line of it."""
    products = lines.loc[is_product_line(lines), ["_invoice", "_code", "_line_id"]]
    products = products.rename(columns={"_invoice": "order_id"})
    codes = matched[["credit_note", "order_id", "_code"]].drop_duplicates()
    candidates = codes.merge(products, on=["order_id", "_code"])
    per_pair = candidates.groupby(["credit_note", "order_id"])["_line_id"].agg(["nunique", "first"]).reset_index()
    single = per_pair[per_pair["nunique"] == 1]
    return single[["credit_note", "order_id"]].assign(line_id=single["first"].astype("string"))


def returns_from_matches(matches: pd.DataFrame) -> pd.DataFrame:
    """One return per order and credit-note time (two credit notes at the same minute are one return), naming its
    line where every credit note of it names the same one line."""
    grouped = matches.groupby(["order_id", "returned_at"], sort=False)["line_id"]
    lines = grouped.agg(lambda ids: ids.iloc[0] if ids.notna().all() and ids.nunique() == 1 else pd.NA)
    returns = lines.astype("string").reset_index()[["order_id", "returned_at", "line_id"]]
    return returns.sort_values(["returned_at", "order_id"]).reset_index(drop=True)


def customers_from_lines(lines: pd.DataFrame) -> pd.DataFrame:
    """Every customer with an order. No country: one taken over all their lines would carry later lines into
    earlier cutoffs, so the country as known at a cutoff comes from the orders placed before it."""
    customers = pd.Series(lines.loc[is_order_line(lines), "_customer"].unique(), name="customer_id")
    return customers.sort_values().to_frame().reset_index(drop=True)


def set_aside_lines(lines: pd.DataFrame) -> pd.DataFrame:
    """The lines not used, as the files had them (as text), with their file, row and reasons."""
    aside = lines[lines["_rules"] != ""]
    frame = aside[list(LINE_COLUMNS)].astype("string")
    frame.insert(0, SET_ASIDE_RULES, aside["_rules"].astype("string"))
    frame.insert(0, SET_ASIDE_ROW, aside[SET_ASIDE_ROW])
    frame.insert(0, SET_ASIDE_FILE, aside[SET_ASIDE_FILE].astype("string"))
    return frame.reset_index(drop=True)


def line_accounting(
    lines: pd.DataFrame,
    orders: pd.DataFrame,
    returns: pd.DataFrame,
    customers: pd.DataFrame,
    order_lines: pd.DataFrame,
) -> dict[str, object]:
    used = int((lines["_rules"] == "").sum())
    aside = lines.loc[lines["_rules"] != "", "_rules"]
    by_rule = aside.str.split("; ").explode().value_counts().sort_index()
    accounting: dict[str, object] = {
        "source": SOURCE,
        "unit": "invoice lines",
        "files": {str(name): int(count) for name, count in lines.groupby(SET_ASIDE_FILE).size().items()},
        "rows_in": len(lines),
        "rows_used": used,
        "rows_set_aside": len(aside),
        "set_aside_by_rule": {str(rule): int(count) for rule, count in by_rule.items()},
        "tables": {
            "customers": len(customers),
            "orders": len(orders),
            "order_lines": len(order_lines),
            "returns": len(returns),
        },
    }
    if used + len(aside) != len(lines):
        raise RuntimeError(f"{SOURCE}: {len(lines)} lines in but {used} used + {len(aside)} set aside")
    return accounting
