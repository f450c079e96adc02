"""How a source's files and text cells are read: `data.csv` for every table, `data.per_table.<table>` to override.

The defaults read a clean export (UTF-8, comma-delimited, decimal point, ISO dates); every other convention is a
setting, never a guess: a value that reads two ways under the settings is refused or quarantined, not interpreted.
"""

from __future__ import annotations

import codecs
from dataclasses import asdict, dataclass
from typing import Any

from features.blocks import from_block

# `thousands: none`: the export never groups digits, so '4.731' is four point seven three one.
NO_GROUPING = "none"


@dataclass(frozen=True)
class ReadOptions:
    """File-level options (delimiter, encoding) and how text cells become numbers, dates, ids and missing values."""

    delimiter: str = ","
    encoding: str = "utf-8"
    # Numbers: "." or ","; the thousands separator, if the export groups digits ("." , "," , " " or "'"), or
    # "none" to say it never does (null refuses a column whose every separator is followed by three digits).
    decimal: str = "."
    thousands: str | None = None
    # Dates: an explicit strftime format for every row of a column (e.g. "%d.%m.%Y %H:%M"), or the order of day
    # and month in numeric dates (true: 05.07.2023 is 5 July). Unset: ISO 8601, or the one order the values allow.
    date_format: str | None = None
    day_first: bool | None = None
    # Cells (after trimming spaces) that mean "no value".
    missing_values: tuple[str, ...] = ("",)
    # Undo Excel's number formatting of ids: "42.0" is the id "42"; "4.2E+05" lost digits and is quarantined.
    excel_ids: bool = True

    @property
    def grouping(self) -> str | None:
        """The thousands separator numbers are parsed with (None: digits are not grouped)."""
        return None if self.thousands == NO_GROUPING else self.thousands

    def __post_init__(self) -> None:
        try:
            codecs.lookup(self.encoding)
        except LookupError:
            raise ValueError(
                f"data.csv.encoding {self.encoding!r} is not an encoding Python knows (e.g. utf-8, cp1252, latin-1)"
            ) from None
        if self.decimal not in (".", ","):
            raise ValueError(f"data.csv.decimal must be '.' or ',', not {self.decimal!r}")
        if self.thousands is not None and self.thousands not in (".", ",", " ", "'", NO_GROUPING):
            raise ValueError(f"data.csv.thousands must be '.', ',', ' ', \"'\", 'none' or null, not {self.thousands!r}")
        if self.thousands == self.decimal:
            raise ValueError(f"data.csv.thousands and data.csv.decimal are both {self.decimal!r}; they must differ")
        if self.date_format is not None and self.day_first is not None:
            raise ValueError("set data.csv.date_format or data.csv.day_first, not both (the format says the order)")
        if self.date_format is not None and "%" not in self.date_format:
            raise ValueError(
                f"data.csv.date_format {self.date_format!r} has no % directive; write it like '%d.%m.%Y %H:%M'"
            )

    @classmethod
    def from_params(
        cls, values: dict[str, Any], base: ReadOptions | None = None, where: str = "data.csv"
    ) -> ReadOptions:
        """Options from a params mapping, on top of `base`; unknown keys and wrong types are refused."""
        if not isinstance(values, dict):
            raise ValueError(f"{where} must be a mapping of reading options, not {values!r}")
        settings = dict(values)
        if isinstance(settings.get("missing_values"), list):
            # YAML reads an unquoted NULL or NA as text, but a bare null or 0 as other types: all are words here.
            settings["missing_values"] = ["" if value is None else str(value) for value in settings["missing_values"]]
        return from_block(cls, {**asdict(base or cls()), **settings}, where)


def table_options(data_params: dict[str, Any], table: str) -> ReadOptions:
    """The options for one table: `data.csv`, overridden by `data.per_table.<table>`."""
    shared = ReadOptions.from_params(data_params.get("csv") or {})
    own = (data_params.get("per_table") or {}).get(table) or {}
    return ReadOptions.from_params(own, base=shared, where=f"data.per_table.{table}")
