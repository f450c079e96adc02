"""Text cells to numbers, timestamps and ids under explicit conventions: one reading per column, or none.

A cell that does not fit the configured convention becomes null, and the caller quarantines its row with a rule
named after the convention it broke; nothing is re-read under another convention. A date column whose values fit
both day-first and month-first is refused outright, because every row of it would be a guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

# Separators a thousands setting of " " also accepts: exports write a no-break or narrow no-break space.
SPACES = " \u00a0\u202f"
# Day and month as one or two digits, one separator used twice, a two- or four-digit year, then an optional time.
NUMERIC_DATE = re.compile(
    r"^(?P<first>\d{1,2})(?P<sep>[./-])(?P<second>\d{1,2})(?P=sep)(?P<year>\d{4}|\d{2})"
    r"(?:(?:[ T]+|,\s*)(?P<time>.+))?$"
)
TIME_OF_DAY = re.compile(
    r"^(?P<hour>\d{1,2})[:.](?P<minute>\d{2})(?:[:.](?P<second>\d{2})(?:[.,](?P<fraction>\d{1,9}))?)?"
    r"\s*(?P<half>[AaPp][Mm])?$"
)
ISO_LIKE = re.compile(r"^\d{4}[-/]\d{1,2}[-/]\d{1,2}|^\d{8}(?:$|T)")
HAS_LETTERS = re.compile(r"[A-Za-z]{3,}")
EXCEL_FLOAT_ID = re.compile(r"^(?:0|[1-9]\d*)\.0+$")
EXCEL_SCIENTIFIC_ID = re.compile(r"^\d(?:\.\d+)?E\+\d+$")
# (decimal, thousands) pairs the reading code knows, in the order `churn inspect` prefers them when several read a
# column the same; validation names the first that reads every unreadable cell.
NUMBER_CONVENTIONS: tuple[tuple[str, str | None], ...] = (
    (".", None),
    (",", None),
    (",", "."),
    (",", " "),
    (".", ","),
    (".", " "),
    (".", "'"),
    (",", "'"),
)
# Two-digit years as strftime's %y reads them: 69-99 are 1900s, 00-68 are 2000s.
CENTURY_PIVOT = 69


class AmbiguousDates(ValueError):
    """A date column's values read two ways and no setting says which."""


class AmbiguousNumbers(ValueError):
    """Every separator in a number column is followed by exactly three digits: a decimal mark or thousands?"""


def check_grouping_ambiguity(text: pd.Series, decimal: str, where: str) -> None:
    """Refuse a column, read without a thousands separator, whose every value with the decimal mark has exactly
    three digits after it ('4.731', '1.299'): an export grouping thousands writes those too."""
    if not _is_text(text):
        return
    present = text.dropna()
    marked = present[present.str.contains(decimal, regex=False)]
    grouped = marked.str.fullmatch(rf"[+-]?\d{{1,3}}(?:{re.escape(decimal)}\d{{3}})+")
    if len(marked) >= 3 and grouped.all():
        examples = ", ".join(repr(value) for value in marked.unique()[:3])
        raise AmbiguousNumbers(
            f"{where}: every value with a {decimal!r} has three digits after it ({examples}): read as decimals or "
            f"as thousands? set data.csv.thousands {decimal!r} (with the other mark as data.csv.decimal) or "
            "data.csv.thousands 'none'"
        )


@dataclass(frozen=True)
class ParsedTimestamps:
    values: pd.Series  # datetime64[ns], naive UTC; NaT where a cell did not fit
    # Every value is at midnight: the column holds days, not moments.
    date_only: bool


def trim_missing(values: pd.Series, missing_values: tuple[str, ...]) -> pd.Series:
    """Text cells without surrounding spaces, with the configured missing-value words as null. Arrow-backed text
    (a Parquet export) stays Arrow-backed and is trimmed by Arrow, which strips the same characters; other text
    becomes pandas' Python-backed strings (stripping 15M Python strings one by one took a minute at 1M customers)."""
    if not _is_text(values):
        return values
    text = values if is_arrow_text(values) else values.astype("string")
    trimmed = text.str.strip(SPACES + "\t")
    if is_arrow_text(text) and _text_bytes(trimmed) == _text_bytes(text):
        trimmed = text  # nothing was trimmed: keep the source's buffers rather than a copy of them
    missing = trimmed.isin(missing_values)
    return trimmed.mask(missing) if missing.any() else trimmed


def _text_bytes(values: pd.Series) -> int:
    """The UTF-8 bytes of Arrow-backed text, summed by Arrow: stripping drops characters only, so fewer bytes
    exactly when something was stripped (pandas' `str.len` counted characters into an Int64 array, 0.7
    CPU-seconds per 8.4M ids, twice per text column)."""
    return int(pc.sum(pc.binary_length(pa.array(values))).as_py() or 0)


def python_text(values: pd.Series) -> pd.Series:
    """Text as pandas' Python-backed strings, so regular expressions run on Python's `re` (whose `\\d` also
    matches non-ASCII digits) and not on Arrow's RE2."""
    return values.astype("string") if is_arrow_text(values) else values


def is_arrow_text(values: pd.Series) -> bool:
    return isinstance(values.dtype, pd.StringDtype) and values.dtype.storage in ("pyarrow", "pyarrow_numpy")


def parse_numbers(text: pd.Series, decimal: str, thousands: str | None) -> pd.Series:
    """Numbers written with `decimal` and, optionally, digits grouped by `thousands`; anything else is NaN."""
    if not _is_text(text):
        return pd.to_numeric(text, errors="coerce").astype("float64")
    pattern = re.compile(number_pattern(decimal, thousands))
    fits = text.str.fullmatch(pattern).fillna(False).astype(bool)
    plain = text.where(fits)
    if thousands is not None:
        plain = plain.str.replace(f"[{re.escape(_separator_chars(thousands))}]", "", regex=True)
    if decimal != ".":
        plain = plain.str.replace(decimal, ".", regex=False)
    return pd.to_numeric(plain, errors="coerce").astype("float64")


def number_pattern(decimal: str, thousands: str | None) -> str:
    """The regular expression of one number under the separators: grouped digits only in groups of three."""
    point = re.escape(decimal)
    if thousands is None:
        return rf"[+-]?(?:\d+(?:{point}\d*)?|{point}\d+)(?:[eE][+-]?\d+)?"
    group = f"[{re.escape(_separator_chars(thousands))}]"
    return rf"[+-]?(?:\d{{1,3}}(?:{group}\d{{3}})+|\d+)(?:{point}\d+)?"


def _separator_chars(thousands: str) -> str:
    return SPACES if thousands == " " else thousands


def parse_timestamps(text: pd.Series, date_format: str | None, day_first: bool | None, where: str) -> ParsedTimestamps:
    """Timestamps read with one convention for the whole column, as naive UTC (offsets converted)."""
    if isinstance(text.dtype, pd.DatetimeTZDtype):
        values = text.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[ns]")
    elif pd.api.types.is_datetime64_any_dtype(text.dtype):
        values = text.astype("datetime64[ns]")
    elif not _is_text(text):
        values = pd.to_datetime(text, errors="coerce").astype("datetime64[ns]")
    elif date_format is not None:
        values = _naive_utc(pd.to_datetime(text, format=date_format, errors="coerce", utc=True))
    else:
        values = _parse_unformatted(text, day_first, where)
    present = values.dropna()
    date_only = bool(len(present)) and bool((present == present.dt.normalize()).all())
    return ParsedTimestamps(values=values, date_only=date_only)


def _parse_unformatted(text: pd.Series, day_first: bool | None, where: str) -> pd.Series:
    """ISO 8601, numeric day/month dates in the one order the column allows, or dates with month names: the
    family most cells are written in is the column's format, and cells in another family do not fit it."""
    result = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns]")
    present = text.dropna()
    if present.empty:
        return result
    iso = present.str.match(ISO_LIKE)
    numeric = ~iso & present.str.match(NUMERIC_DATE.pattern)
    named = ~iso & ~numeric & present.str.contains(HAS_LETTERS)
    family = pd.Series({"iso": iso.sum(), "numeric": numeric.sum(), "named": named.sum()}).idxmax()
    if family == "iso":
        chosen = present[iso]
        result[chosen.index] = _naive_utc(pd.to_datetime(chosen, format="ISO8601", errors="coerce", utc=True))
    elif family == "numeric":
        chosen = present[numeric]
        result[chosen.index] = _parse_numeric_dates(chosen, day_first, where)
    else:
        chosen = present[named]
        result[chosen.index] = _naive_utc(pd.to_datetime(chosen, format="mixed", errors="coerce", utc=True))
    return result


def _parse_numeric_dates(text: pd.Series, day_first: bool | None, where: str) -> pd.Series:
    parts = text.str.extract(NUMERIC_DATE)
    first = parts["first"].astype(int)
    second = parts["second"].astype(int)
    if day_first is None:
        day_first = _day_order(text, first, second, where)
    day, month = (first, second) if day_first else (second, first)
    year = parts["year"].astype(int)
    short = parts["year"].str.len() == 2
    year = year.where(~short, year + np.where(year < CENTURY_PIVOT, 2000, 1900))
    days = pd.to_datetime(pd.DataFrame({"year": year, "month": month, "day": day}), errors="coerce")
    return days + _time_of_day(parts["time"])


def _day_order(text: pd.Series, first: pd.Series, second: pd.Series, where: str) -> bool:
    """True for day first: the one order every value allows; refused when both (or neither) fit every value."""
    fits_day_first = (second <= 12) & (first <= 31)
    fits_month_first = (first <= 12) & (second <= 31)
    readable = fits_day_first | fits_month_first
    if fits_day_first[readable].all() and not fits_month_first[readable].all():
        return True
    if fits_month_first[readable].all() and not fits_day_first[readable].all():
        return False
    if fits_day_first[readable].all():  # both fit every value: the same date only where day and month agree
        differing = text[readable & (first != second)]
        if differing.empty:
            return True
        examples = ", ".join(repr(value) for value in differing.unique()[:3])
        raise AmbiguousDates(
            f"{where}: dates such as {examples} read both day-first and month-first; set data.csv.day_first "
            "(true: 05.07.2023 is 5 July) or data.csv.date_format (e.g. '%d.%m.%Y'), under data.per_table for "
            "one table"
        )
    day_only = text[~fits_month_first & fits_day_first].unique()[:2]
    month_only = text[~fits_day_first & fits_month_first].unique()[:2]
    raise AmbiguousDates(
        f"{where}: dates are written in both orders, day first ({', '.join(map(repr, day_only))}) and month "
        f"first ({', '.join(map(repr, month_only))}); set data.csv.day_first or data.csv.date_format, and rows "
        "in the other order are quarantined"
    )


def _time_of_day(text: pd.Series) -> pd.Series:
    """Offsets from midnight for the time part ('16:15', '4:15 PM', '16.15.30'); a date alone is midnight, and a
    time that cannot be read makes the whole value unreadable (NaT)."""
    # Plain object cells: numpy booleans and NaN below, not pandas' three-valued NA.
    parts = text.astype(object).str.extract(TIME_OF_DAY)
    hour = pd.to_numeric(parts["hour"], errors="coerce")
    half = parts["half"].str.lower()
    twelve_hour = half.notna().to_numpy(dtype=bool)
    afternoon = (half == "pm").to_numpy(dtype=bool)
    valid_hour = np.where(twelve_hour, (hour >= 1) & (hour <= 12), hour <= 23)
    hour = hour.where(~twelve_hour, hour % 12 + np.where(afternoon, 12, 0))
    minute = pd.to_numeric(parts["minute"], errors="coerce")
    second = pd.to_numeric(parts["second"], errors="coerce").fillna(0)
    fraction = pd.to_numeric(("0." + parts["fraction"]).where(parts["fraction"].notna()), errors="coerce").fillna(0)
    offset = pd.to_timedelta(hour * 3600 + minute * 60 + second + fraction, unit="s")
    offset = offset.where(valid_hour & (minute < 60) & (second < 60))
    return offset.where(text.notna(), pd.Timedelta(0))


def _naive_utc(values: pd.Series) -> pd.Series:
    return values.dt.tz_localize(None).astype("datetime64[ns]")


@dataclass(frozen=True)
class ParsedIds:
    values: pd.Series  # string ids
    excel_floats_undone: int  # "42.0" read as "42"
    excel_scientific: np.ndarray  # rows whose id Excel wrote as 4.2E+05: digits lost, unreadable


def parse_ids(text: pd.Series, excel_ids: bool) -> ParsedIds:
    """Ids stay text; leading zeros are kept. With `excel_ids`, Excel's "42.0" is "42" again, and its "4.2E+05"
    (digits already lost) is unreadable."""
    if pd.api.types.is_float_dtype(text.dtype):
        # A numeric column in Parquet: integral floats are the ids Excel or pandas turned into numbers.
        present = text.dropna()
        if (present == np.round(present)).all():
            return ParsedIds(text.astype("Int64").astype("string[pyarrow]"), len(present), _no_rows(text))
    values = text.astype("string[pyarrow]")
    if not excel_ids:
        return ParsedIds(values, 0, _no_rows(text))
    floats = fullmatches(values, EXCEL_FLOAT_ID, holding=".")
    scientific = fullmatches(values, EXCEL_SCIENTIFIC_ID, holding="E+")
    undone = values
    if floats.any():
        # Assigning through a mask rewrites the whole Arrow column (seconds at 1M), even when the mask is all False.
        undone = values.copy()
        # Split only the float-looking ids: splitting every id ran in Python, cell by cell (minutes at 1M customers).
        undone[floats] = values[floats].str.split(".", n=1).str[0]
    # Masking copies every id even where nothing is masked (15M line ids: their text once more in memory).
    unreadable = undone.mask(scientific) if scientific.any() else undone
    return ParsedIds(unreadable.astype("string[pyarrow]"), int(floats.sum()), scientific)


def fullmatches(values: pd.Series, pattern: re.Pattern[str], holding: str) -> np.ndarray:
    """Where `values` (Arrow-backed text) fully match `pattern`, a regular expression every match of which holds the
    text `holding`: the expression runs only on the values holding it, found by a plain substring search (a fraction
    of the expression's cost on 15M ids, nearly none of which look like Excel's numbers)."""
    candidates = values.str.contains(holding, regex=False).fillna(False).astype(bool).to_numpy()
    matches = np.zeros(len(values), dtype=bool)
    if candidates.any():
        matches[candidates] = values[candidates].str.fullmatch(pattern).fillna(False).astype(bool).to_numpy()
    return matches


def zero_padded_twins(ids: pd.Series) -> list[tuple[str, str]]:
    """Pairs of distinct ids that differ only by leading zeros ('0042', '42'): kept apart, but worth a look."""
    present = pd.Series(_twin_candidates(ids), dtype="string")
    digits = present[present.str.fullmatch(r"\d+").fillna(False).astype(bool)]
    unpadded = digits.str.lstrip("0")
    twins = digits[unpadded.duplicated(keep=False)]
    pairs = []
    for _, group in twins.groupby(unpadded[twins.index]):
        first, second = sorted(group.tolist())[:2]
        pairs.append((str(first), str(second)))
    return pairs


def _twin_candidates(ids: pd.Series) -> np.ndarray:
    """The distinct ids that can have a twin: those starting with '0' and those equal to one of them without its
    leading zeros. Of two twins at least one starts with '0', so no pair is lost, and the regular expressions
    below run on a few ids instead of every one (19 s for the orders and lines at 250k customers)."""
    present = pa.array(ids.dropna(), type=pa.large_string())
    padded = pc.unique(pc.filter(present, pc.starts_with(present, "0")))
    if len(padded) == 0:
        return np.array([], dtype=object)
    unpadded = pa.array([value.lstrip("0") for value in padded.to_pylist()], type=pa.large_string())
    return np.asarray(pc.unique(pc.filter(present, pc.is_in(present, value_set=pa.concat_arrays([padded, unpadded])))))


def _no_rows(values: pd.Series) -> np.ndarray:
    return np.zeros(len(values), dtype=bool)


def _is_text(values: pd.Series) -> bool:
    return pd.api.types.is_string_dtype(values.dtype) or pd.api.types.is_object_dtype(values.dtype)
