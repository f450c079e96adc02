"""A corpus of messy shop exports made from one clean orders table, each with the outcome it must have.

Every file holds the same orders, written the way real exports write them: Excel's Nordic CSV (`;`, a byte-order
mark, cp1252, decimal comma, `dd.mm.yyyy`), ids that went through Excel, thousands separators, words for missing,
blank and repeated header lines. `tests/test_messy_exports.py` reads each one with its settings and checks the
outcome: read right (value by value against the clean table), refused with a stated message, or rows quarantined
with a stated rule. Run `python tests/messy_exports.py FOLDER` to write the corpus and look at the files.
"""

from __future__ import annotations

import codecs
import csv
import io
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

N_ORDERS = 300
N_CUSTOMERS = 90
EXPORTED_AT = pd.Timestamp("2024-01-01")
COLUMNS = ["order_id", "customer_id", "ordered_at", "order_value", "status", "delivered_at"]
NORDIC_HEADER = ["ordrenr", "kundenr", "dato", "beløp", "status", "levert"]


def clean_orders(seed: int = 7) -> pd.DataFrame:
    """The truth every file is made from: 300 orders of 90 customers in 2023, times to the minute, some values in
    the thousands, cancelled orders undelivered."""
    rng = np.random.default_rng(seed)
    minutes = np.sort(rng.integers(0, 355 * 24 * 60, N_ORDERS))  # delivered by the export at the year's end
    ordered_at = pd.Timestamp("2023-01-01") + pd.to_timedelta(minutes, unit="min")
    cancelled = rng.random(N_ORDERS) < 0.1
    delivered = ordered_at + pd.to_timedelta(rng.integers(20 * 60, 5 * 24 * 60, N_ORDERS), unit="min")
    values = np.round(np.exp(rng.normal(4.5, 1.2, N_ORDERS)), 2)
    values[:12] = [4731.5, 1299.0, 12499.0, 1000.0, 2500.25, 1234.56, 99.9, 49.9, 0.0, 10.0, 15000.0, 3210.0]
    return pd.DataFrame(
        {
            "order_id": [f"{100_000 + i}" for i in range(N_ORDERS)],
            "customer_id": [str(400_000 + int(c)) for c in rng.integers(0, N_CUSTOMERS, N_ORDERS)],
            "ordered_at": ordered_at,
            "order_value": values,
            "status": np.where(cancelled, "cancelled", "delivered"),
            "delivered_at": pd.Series(delivered).where(~cancelled),
        }
    )


@dataclass(frozen=True)
class Outcome:
    """What reading a file with its settings must give."""

    kind: str  # "read": rows accepted and equal to the truth; "refused": a message; "quarantined": some rows
    message: str | None = None  # a regular expression the refusal matches
    rule: str | None = None  # the rule of the quarantined rows
    quarantined: int = 0
    set_aside: int = 0  # lines that are not rows (blank, repeated header)
    rewrites: dict[str, int] = field(default_factory=dict)  # documented rewrites in the validation report


def _same(frame: pd.DataFrame) -> pd.DataFrame:
    return frame


@dataclass(frozen=True)
class Case:
    name: str
    write: Callable[[pd.DataFrame, Path], None]
    settings: dict[str, Any]
    outcome: Outcome
    # the orders this file holds, from the clean table (e.g. other days, other ids)
    truth: Callable[[pd.DataFrame], pd.DataFrame] = _same
    # the accepted rows validation must make of the truth (e.g. a day counted from its end)
    accepted: Callable[[pd.DataFrame], pd.DataFrame] = _same
    # `churn inspect` proposes settings that read it (False: it must say why it cannot)
    inspectable: bool = True


def as_text(
    frame: pd.DataFrame,
    date_format: str = "%Y-%m-%d %H:%M:%S",
    decimal: str = ".",
    thousands: str = "",
    missing: str = "",
) -> pd.DataFrame:
    """Cells as an export writes them."""
    text = frame.copy()
    for column in ("ordered_at", "delivered_at"):
        text[column] = frame[column].dt.strftime(date_format).where(frame[column].notna(), missing)
    text["order_value"] = [_number(value, decimal, thousands) for value in frame["order_value"]]
    return text


def _number(value: float, decimal: str, thousands: str) -> str:
    whole, fraction = f"{value:,.2f}".split(".")
    return whole.replace(",", thousands) + decimal + fraction


def write_csv(
    text: pd.DataFrame,
    path: Path,
    delimiter: str = ",",
    encoding: str = "utf-8",
    bom: bytes = b"",
    header: list[str] | None = None,
) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")  # quotes a cell holding the delimiter
    writer.writerow(header or list(text.columns))
    writer.writerows(text.itertuples(index=False))
    path.write_bytes(bom + buffer.getvalue().encode(encoding))


def _clean(frame: pd.DataFrame, path: Path) -> None:
    write_csv(as_text(frame), path)


def _semicolon(frame: pd.DataFrame, path: Path) -> None:
    write_csv(as_text(frame), path, delimiter=";")


def _decimal_comma(frame: pd.DataFrame, path: Path) -> None:
    write_csv(as_text(frame, decimal=","), path, delimiter=";")


def _thousands_dot(frame: pd.DataFrame, path: Path) -> None:
    write_csv(as_text(frame, decimal=",", thousands="."), path, delimiter=";")


def _thousands_space(frame: pd.DataFrame, path: Path) -> None:
    write_csv(as_text(frame, decimal=",", thousands="\u00a0"), path, delimiter=";")


def _day_first(frame: pd.DataFrame, path: Path) -> None:
    write_csv(as_text(frame, date_format="%d.%m.%Y %H:%M"), path)


def _ambiguous_days(frame: pd.DataFrame) -> pd.DataFrame:
    """Every order on a day of the month from 1 to 12, so day-first and month-first both fit every value."""
    days = frame["ordered_at"].dt.day
    shifted = frame["ordered_at"] - pd.to_timedelta(np.where(days > 12, days - 12, 0), unit="D")
    delivered = frame["delivered_at"] - frame["ordered_at"] + shifted
    moved = frame.assign(ordered_at=shifted, delivered_at=delivered)
    return moved.assign(delivered_at=moved["delivered_at"].where(moved["delivered_at"].dt.day <= 12))


def _ambiguous(frame: pd.DataFrame, path: Path) -> None:
    write_csv(as_text(frame, date_format="%d.%m.%Y %H:%M"), path)


def _us_dates(frame: pd.DataFrame, path: Path) -> None:
    write_csv(as_text(frame, date_format="%m/%d/%Y %I:%M %p"), path)


def _excel_float_ids(frame: pd.DataFrame, path: Path) -> None:
    text = as_text(frame)
    text.loc[::3, "customer_id"] = text.loc[::3, "customer_id"] + ".0"
    text.loc[1::4, "order_id"] = text.loc[1::4, "order_id"] + ".0"
    write_csv(text, path)


def _excel_scientific_ids(frame: pd.DataFrame, path: Path) -> None:
    text = as_text(frame)
    text.loc[:4, "customer_id"] = "4.0E+05"
    write_csv(text, path)


def _leading_zero_ids(frame: pd.DataFrame, path: Path) -> None:
    write_csv(as_text(frame), path)


def _with_padded_twins(frame: pd.DataFrame) -> pd.DataFrame:
    """Customer ids '0' + id for every fifth order: other customers than the unpadded ids, never merged."""
    padded = frame.copy()
    padded.loc[::5, "customer_id"] = "0" + padded.loc[::5, "customer_id"]
    return padded


def _bom_utf8(frame: pd.DataFrame, path: Path) -> None:
    write_csv(as_text(frame), path, bom=codecs.BOM_UTF8)


def _nordic_names(frame: pd.DataFrame) -> pd.DataFrame:
    named = frame.copy()
    named.loc[::7, "customer_id"] = "Åsa-" + named.loc[::7, "customer_id"]
    return named


def _cp1252_bom(frame: pd.DataFrame, path: Path) -> None:
    write_csv(as_text(frame), path, encoding="cp1252", bom=codecs.BOM_UTF8)


def _missing_words(frame: pd.DataFrame, path: Path) -> None:
    write_csv(as_text(frame, missing="NULL"), path)


def _date_only_days(frame: pd.DataFrame) -> pd.DataFrame:
    """Delivered on the order's own day for every tenth order, and every delivery known only by its day."""
    same_day = frame["ordered_at"].dt.normalize().where(frame.index % 10 != 0, frame["ordered_at"])
    delivered = frame["delivered_at"].where(frame.index % 10 != 0, same_day)
    return frame.assign(delivered_at=delivered.dt.normalize())


def _date_only(frame: pd.DataFrame, path: Path) -> None:
    text = as_text(frame)
    text["delivered_at"] = frame["delivered_at"].dt.strftime("%Y-%m-%d").fillna("")
    write_csv(text, path)


def _blank_and_repeated_header(frame: pd.DataFrame, path: Path) -> None:
    text = as_text(frame)
    header = ",".join(text.columns)
    rows = [",".join(str(cell) for cell in row) for row in text.itertuples(index=False)]
    lines = [header, *rows[:100], "", header, *rows[100:200], ",,,,,", "", *rows[200:]]
    path.write_text("\n".join(lines) + "\n")


def _excel_nordic(frame: pd.DataFrame, path: Path) -> None:
    text = as_text(frame, date_format="%d.%m.%Y %H:%M", decimal=",", thousands=".")
    text.loc[::3, "customer_id"] = text.loc[::3, "customer_id"] + ".0"
    write_csv(text, path, delimiter=";", encoding="cp1252", bom=codecs.BOM_UTF8, header=NORDIC_HEADER)


def _bad_numbers(frame: pd.DataFrame, path: Path) -> None:
    text = as_text(frame)
    text.loc[[20, 40, 60], "order_value"] = ["12,5", "1 299.00", "n/a"]
    write_csv(text, path)


def _whole_amounts(frame: pd.DataFrame) -> pd.DataFrame:
    """Amounts in whole kroner, as many shops export them."""
    return frame.assign(order_value=frame["order_value"].round(0))


def _grouped_integers(frame: pd.DataFrame, path: Path) -> None:
    text = as_text(frame)
    text["order_value"] = [f"{int(value):,}".replace(",", ".") for value in frame["order_value"]]
    write_csv(text, path, delimiter=";")


def _utf16(frame: pd.DataFrame, path: Path) -> None:
    write_csv(as_text(frame), path, encoding="utf-16")


def _end_of_day(frame: pd.DataFrame) -> pd.DataFrame:
    end = pd.Timedelta(days=1) - pd.Timedelta(1, unit="us")
    return frame.assign(delivered_at=frame["delivered_at"] + end)


NORDIC = {"delimiter": ";", "encoding": "cp1252", "decimal": ",", "thousands": ".", "day_first": True}
NORDIC_MAPPING = {"orders": dict(zip(NORDIC_HEADER, COLUMNS, strict=True))}

CASES: tuple[Case, ...] = (
    Case("clean", _clean, {}, Outcome("read")),
    Case("semicolon", _semicolon, {"csv": {"delimiter": ";"}}, Outcome("read")),
    Case(
        "semicolon_unset",
        _semicolon,
        {},
        Outcome("refused", message=r"looks ';'-delimited: set data\.csv\.delimiter"),
        inspectable=True,
    ),
    Case("decimal_comma", _decimal_comma, {"csv": {"delimiter": ";", "decimal": ","}}, Outcome("read")),
    Case(
        "decimal_comma_unset",
        _decimal_comma,
        {"csv": {"delimiter": ";"}},
        Outcome("refused", message=r"read as numbers with data\.csv\.decimal ','"),
    ),
    Case(
        "thousands_dot",
        _thousands_dot,
        {"per_table": {"orders": {"delimiter": ";", "decimal": ",", "thousands": "."}}},
        Outcome("read"),
    ),
    Case(
        "thousands_dot_without_thousands",
        _thousands_dot,
        {"csv": {"delimiter": ";", "decimal": ","}},
        Outcome("refused", message=r"orders\.order_value\.number_format .*data\.csv\.thousands '\.'"),
    ),
    Case(
        "thousands_space",
        _thousands_space,
        {"csv": {"delimiter": ";", "decimal": ",", "thousands": " "}},
        Outcome("read"),
    ),
    Case("day_first_inferred", _day_first, {}, Outcome("read")),
    Case(
        "ambiguous_dates",
        _ambiguous,
        {},
        Outcome("refused", message=r"read both day-first and month-first; set data\.csv\.day_first"),
        truth=_ambiguous_days,
        inspectable=False,
    ),
    Case(
        "ambiguous_dates_day_first",
        _ambiguous,
        {"csv": {"day_first": True}},
        Outcome("read"),
        truth=_ambiguous_days,
        inspectable=False,
    ),
    Case(
        "ambiguous_dates_format",
        _ambiguous,
        {"csv": {"date_format": "%d.%m.%Y %H:%M"}},
        Outcome("read"),
        truth=_ambiguous_days,
        inspectable=False,
    ),
    Case("us_dates", _us_dates, {}, Outcome("read")),
    Case(
        "excel_float_ids",
        _excel_float_ids,
        {},
        Outcome("read", rewrites={"orders.customer_id.excel_float_id": 100, "orders.order_id.excel_float_id": 75}),
    ),
    Case(
        "excel_scientific_ids",
        _excel_scientific_ids,
        {},
        Outcome("quarantined", rule="orders.customer_id.excel_scientific_id", quarantined=5),
    ),
    Case("leading_zero_ids", _leading_zero_ids, {}, Outcome("read"), truth=_with_padded_twins),
    Case("bom_utf8", _bom_utf8, {}, Outcome("read")),
    Case("cp1252_bom", _cp1252_bom, {"csv": {"encoding": "cp1252"}}, Outcome("read"), truth=_nordic_names),
    Case(
        "cp1252_bom_unset",
        _cp1252_bom,
        {},
        Outcome("refused", message=r"is not valid utf-8 .*set data\.csv\.encoding .*cp1252"),
        truth=_nordic_names,
    ),
    Case("missing_words", _missing_words, {"csv": {"missing_values": ["", "NULL"]}}, Outcome("read")),
    Case(
        "missing_words_unset",
        _missing_words,
        {},
        Outcome("refused", message=r"orders\.delivered_at\.date_format"),
    ),
    Case(
        "date_only_delivery",
        _date_only,
        {},
        Outcome("read"),
        truth=_date_only_days,
        accepted=_end_of_day,
    ),
    Case("blank_and_repeated_header", _blank_and_repeated_header, {}, Outcome("read", set_aside=4)),
    Case(
        "excel_nordic",
        _excel_nordic,
        {"csv": NORDIC, "files": {"orders": "export.csv"}, "column_mapping": NORDIC_MAPPING},
        Outcome("read"),
    ),
    Case(
        "bad_numbers",
        _bad_numbers,
        {},
        Outcome("quarantined", rule="orders.order_value.number_format", quarantined=3),
        inspectable=False,
    ),
    Case(
        "grouped_whole_amounts",
        _grouped_integers,
        {"csv": {"delimiter": ";"}},
        Outcome("refused", message=r"three digits after it \('\d\.\d{3}'.*set data\.csv\.thousands '\.'"),
        truth=_whole_amounts,
        inspectable=False,
    ),
    Case(
        "grouped_whole_amounts_set",
        _grouped_integers,
        {"csv": {"delimiter": ";", "decimal": ",", "thousands": "."}},
        Outcome("read"),
        truth=_whole_amounts,
        inspectable=False,
    ),
    Case("utf16", _utf16, {"csv": {"encoding": "utf-16"}}, Outcome("read")),
    Case("utf16_unset", _utf16, {}, Outcome("refused", message=r"UTF-16 .*set data\.csv\.encoding: utf-16")),
)  # fmt: skip


def write_case(case: Case, clean: pd.DataFrame, folder: Path) -> Path:
    """The case's file in its own folder; returns the folder (data.path)."""
    folder.mkdir(parents=True, exist_ok=True)
    name = (case.settings.get("files") or {}).get("orders", "orders.csv")
    case.write(case.truth(clean), folder / name)
    return folder


NORDIC_NAMES = {
    "order_id": "ordrenr",
    "customer_id": "kundenr",
    "ordered_at": "dato",
    "order_value": "beløp",
    "status": "status",
    "cancel_reason": "årsak",
    "channel": "kanal",
    "payment_method": "betaling",
    "promised_delivery_at": "lovet levering",
    "delivered_at": "levert",
    "cancelled_at": "kansellert",
    "country": "land",
}


def write_nordic_export(orders: pd.DataFrame, path: Path) -> None:
    """Contract orders as Excel saves them on a Norwegian desktop: `;`, a UTF-8 byte-order mark on cp1252 text,
    decimal comma with a thousands dot, dd.mm.yyyy dates and Norwegian headers."""
    text = orders.copy()
    for column in ("ordered_at", "promised_delivery_at", "delivered_at"):
        if column in text.columns:
            text[column] = orders[column].dt.strftime("%d.%m.%Y %H:%M:%S").where(orders[column].notna(), "")
    text["order_value"] = [_number(value, ",", ".") for value in orders["order_value"]]
    text = text.fillna("")
    write_csv(text, path, delimiter=";", encoding="cp1252", bom=codecs.BOM_UTF8,
              header=[NORDIC_NAMES[column] for column in text.columns])  # fmt: skip


def main(folder: Path) -> None:
    clean = clean_orders()
    for case in CASES:
        write_case(case, clean, folder / case.name)
    print(f"{len(CASES)} exports in {folder}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
