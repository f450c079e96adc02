"""`churn inspect`: read a sample of each export file and propose the `data` block that reads it.

The sniffing is done by libraries made for it (charset-normalizer for the encoding, the csv module's dialect
sniffer for the delimiter); the number and date conventions are found by trying each one the reading code knows
on the sample and keeping those under which every value reads, so a proposal is never something validation would
read differently. Where the sample allows two readings, the proposal says so instead of choosing.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from features.contract import TABLES, Table
from pipelines.sources.files import (
    SAMPLE_BYTES,
    SET_ASIDE_RULES,
    SUFFIXES,
    detect_encoding,
    read_csv,
    sniff_delimiter,
    split_noise_lines,
)
from pipelines.sources.options import ReadOptions
from pipelines.validation.parse import (
    EXCEL_FLOAT_ID,
    EXCEL_SCIENTIFIC_ID,
    ISO_LIKE,
    NUMBER_CONVENTIONS,
    NUMERIC_DATE,
    AmbiguousDates,
    parse_numbers,
    parse_timestamps,
    trim_missing,
    zero_padded_twins,
)

# Rows read: a whole export for most shops, so that a rare value (the one order above 1,000) is seen.
SAMPLE_ROWS = 1_000_000
NUMBER_LIKE = re.compile(r"^[+-]?[\d.,' \u00a0\u202f]*\d[\d.,' \u00a0\u202f]*$")
# Header words of common exports (English and Nordic), normalised as `_normalise` does, per contract column.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "order_id": ("orderid", "order", "ordernr", "orderno", "ordernumber", "ordrenr", "ordrenummer", "ordernummer",
                 "bestillingsnr", "bestillingsnummer", "tilausnumero", "tilaus", "invoiceno", "invoice"),
    "customer_id": ("customerid", "customer", "customerno", "customernumber", "kund", "kundnr", "kundnummer",
                    "kunde", "kundenr", "kundenummer", "asiakas", "asiakasnumero", "clientid", "userid", "buyerid"),
    "ordered_at": ("orderedat", "orderdate", "orderdatum", "ordredato", "bestillingsdato", "tilauspaiva",
                   "invoicedate", "purchasedate", "createdat", "date", "datum", "dato", "paiva"),
    "order_value": ("ordervalue", "value", "amount", "total", "totalamount", "belopp", "belob", "belop", "summa",
                    "sum", "ordersum", "ordersumma", "revenue", "totalt", "verdi", "vaerdi", "arvo"),
    "status": ("status", "orderstatus", "tila"),
    "cancel_reason": ("cancelreason", "cancellationreason", "orsak", "arsak", "aarsag", "syy"),
    "channel": ("channel", "saleschannel", "kanal", "kanava"),
    "payment_method": ("paymentmethod", "payment", "paymenttype", "betalning", "betalningssatt", "betaling",
                       "betalingsmate", "betalingsmade", "maksutapa"),
    "promised_delivery_at": ("promiseddeliveryat", "promiseddelivery", "promiseddate", "estimateddelivery",
                             "expecteddelivery", "lovadleverans", "lovetlevering", "lovetleveringsdato"),
    "delivered_at": ("deliveredat", "delivered", "deliverydate", "leveransdatum", "levererad", "leveringsdato",
                     "levert", "leveret", "toimitettu", "toimituspaiva"),
    "cancelled_at": ("cancelledat", "cancelled", "cancellationdate", "makulerad", "avbruten", "kansellert",
                     "annulleret", "peruttu"),
    "loyalty_joined_at": ("loyaltyjoinedat", "joinedloyalty", "memberfrom", "membersince", "medlemsedan",
                          "medlemfra"),
    "loyalty_left_at": ("loyaltyleftat", "leftloyalty", "memberuntil", "medlemtill", "medlemtil"),
    "review_score": ("reviewscore", "score", "rating", "betyg", "karakter", "vurdering", "arvosana"),
    "reviewed_at": ("reviewedat", "reviewdate", "ratingdate"),
    "ticket_id": ("ticketid", "ticket", "caseid", "arende", "arendenr", "sak", "saksnr", "sag", "tiketti"),
    "opened_at": ("openedat", "opened", "createdat", "created", "skapad", "opprettet", "oprettet", "avattu"),
    "resolved_at": ("resolvedat", "resolved", "closedat", "closed", "lost", "lukket", "loest", "ratkaistu"),
    "reason": ("reason", "category", "kategori", "orsak", "arsak", "aarsag", "syy"),
    "returned_at": ("returnedat", "returndate", "returned", "returdatum", "returdato", "palautettu"),
    "signed_up_at": ("signedupat", "signupdate", "signedup", "registered", "registreringsdatum", "registrert",
                     "registreret", "rekisteroity"),
    "loyalty_member": ("loyaltymember", "loyalty", "member", "medlem", "klubbmedlem", "kantaasiakas"),
    "country": ("country", "land", "maa", "countrycode"),
    "line_id": ("lineid", "orderlineid", "line", "linenr", "radnr", "rad", "linjenr", "linje", "rivi", "itemid"),
    "product_id": ("productid", "product", "sku", "stockcode", "artikel", "artikelnr", "artikkel", "artikkelnr",
                   "varenr", "varenummer", "tuote", "tuotenumero"),
    "quantity": ("quantity", "qty", "units", "antal", "antall", "maara", "kpl"),
    "unit_price": ("unitprice", "price", "pris", "styckpris", "enhetspris", "enhedspris", "hinta", "yksikkohinta"),
    "category": ("category", "productcategory", "kategori", "varugrupp", "varegruppe", "tuoteryhma"),
}  # fmt: skip
TABLE_SYNONYMS: dict[str, tuple[str, ...]] = {
    "orders": ("orders", "order", "ordrer", "ordrar", "bestillinger", "tilaukset", "sales", "invoices"),
    "customers": ("customers", "customer", "kunder", "kunde", "asiakkaat", "clients"),
    "reviews": ("reviews", "review", "ratings", "omdomen", "anmeldelser", "arvostelut"),
    "tickets": ("tickets", "ticket", "complaints", "cases", "arenden", "saker", "reklamationer", "reklamasjoner"),
    "returns": ("returns", "return", "returer", "retur", "palautukset"),
    "order_lines": (
        "orderlines",
        "orderline",
        "lines",
        "orderitems",
        "items",
        "orderrader",
        "ordrelinjer",
        "ordrelinier",
        "tilausrivit",
    ),
}


@dataclass
class FileInspection:
    """What a sample of one file says about how to read it."""

    path: Path
    table: str | None = None
    # reading options that differ from the defaults
    options: dict[str, Any] = field(default_factory=dict)
    # source column -> contract column, names that already match included
    column_mapping: dict[str, str] = field(default_factory=dict)
    # column -> how its dates read
    dates: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    # why the file cannot be read with any settings (the proposal is then incomplete)
    problems: list[str] = field(default_factory=list)


def inspect_path(path: Path) -> list[FileInspection]:
    """Every CSV or Parquet file at `path` (a file, or a folder's files at its top level)."""
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(item for item in path.iterdir() if item.suffix in SUFFIXES and item.is_file())
        if not files:
            raise ValueError(f"{path} holds no .csv or .parquet files")
    else:
        raise ValueError(f"{path} does not exist")
    return [inspect_file(file) for file in files]


def inspect_file(path: Path) -> FileInspection:
    inspection = FileInspection(path=path)
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path).head(SAMPLE_ROWS)
    else:
        frame = _read_csv_sample(path, inspection)
        if frame is None:
            return inspection
    table, mapping = propose_mapping(path, list(frame.columns), frame)
    inspection.table, inspection.column_mapping = table, mapping
    if table is None:
        inspection.problems.append("no contract table fits its columns; name the file after its table")
        return inspection
    contract = {t.name: t for t in TABLES}[table]
    missing = [name for name in contract.required_columns if name not in mapping.values()]
    if missing:
        inspection.problems.append(f"no column found for the required {table} column(s) {missing}; map them")
    _inspect_cells(frame, contract, inspection)
    return inspection


def _read_csv_sample(path: Path, inspection: FileInspection) -> pd.DataFrame | None:
    sample = path.read_bytes()[:SAMPLE_BYTES]
    encoding, others = detect_encoding(sample)
    if others:
        inspection.warnings.append(
            f"encoding: {encoding} proposed; {', '.join(others)} would read some characters differently: check "
            "names with letters like å, ø, ä in the validated data"
        )
    if encoding is None:
        inspection.problems.append("its encoding could not be recognised: not text, or too mixed to read")
        return None
    if encoding != "utf-8":
        inspection.options["encoding"] = encoding
    if sample.startswith(codecs.BOM_UTF8):
        inspection.warnings.append("starts with a UTF-8 byte-order mark (dropped when read)")
    delimiter = sniff_delimiter(path, encoding) or ","
    if delimiter != ",":
        inspection.options["delimiter"] = delimiter
    try:
        frame = read_csv(path, ReadOptions(delimiter=delimiter, encoding=encoding), keep_blank_lines=True)
    except ValueError as error:
        inspection.problems.append(str(error))
        return None
    rows, noise = split_noise_lines(frame.head(SAMPLE_ROWS))
    if not noise.empty:
        counts = noise[SET_ASIDE_RULES].value_counts()
        inspection.warnings.append(
            "lines that are not rows are set aside and counted: "
            + ", ".join(f"{count} {rule.replace('_', ' ')}" for rule, count in counts.items())
        )
    return rows


def propose_mapping(path: Path, columns: list[str], frame: pd.DataFrame) -> tuple[str | None, dict[str, str]]:
    """The contract table the file holds and {source column: contract column}, by name first, then (for the
    required columns no name matched) by content."""
    by_table = {table.name: _mapping_by_name(columns, table) for table in TABLES}
    stem = _normalise(path.stem)
    named = [name for name, words in TABLE_SYNONYMS.items() if stem in words or stem.startswith(name)]
    if named:
        table_name = named[0]
    else:
        table_name = max(by_table, key=lambda name: _table_fit(by_table[name], {t.name: t for t in TABLES}[name]))
        if _table_fit(by_table[table_name], {t.name: t for t in TABLES}[table_name]) <= 0:
            return None, {}
    mapping = by_table[table_name]
    table = {t.name: t for t in TABLES}[table_name]
    mapping.update(_mapping_by_content(frame, table, mapping))
    return table_name, mapping


def _mapping_by_name(columns: list[str], table: Table) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for column in columns:
        word = _normalise(column)
        for target in table.column_names:
            if target in mapping.values():
                continue
            if word == _normalise(target) or word in SYNONYMS.get(target, ()):
                mapping[column] = target
                break
    return mapping


def _table_fit(mapping: dict[str, str], table: Table) -> int:
    """How well named columns fit a table: its required columns found, and nothing if one is missing."""
    found = set(mapping.values())
    if not set(table.required_columns) <= found:
        return 0
    return len(found)


def _mapping_by_content(frame: pd.DataFrame, table: Table, mapping: dict[str, str]) -> dict[str, str]:
    """Required columns no name matched: the one remaining column whose values look like the contract type."""
    found: dict[str, str] = {}
    free = [column for column in frame.columns if column not in mapping]
    for target in table.required_columns:
        if target in mapping.values():
            continue
        dtype = table.column(target).dtype
        fitting = [column for column in free if _looks_like(frame[column], dtype, target)]
        if len(fitting) == 1:
            found[fitting[0]] = target
            free.remove(fitting[0])
    return found


def _looks_like(values: pd.Series, dtype: str, target: str) -> bool:
    text = values.dropna().astype(str).str.strip()
    if text.empty:
        return False
    if dtype == "timestamp":
        return bool((text.str.match(ISO_LIKE) | text.str.match(NUMERIC_DATE.pattern)).mean() > 0.9)
    if dtype in ("float", "int"):
        return bool(text.str.fullmatch(NUMBER_LIKE).mean() > 0.9) and not text.str.match(NUMERIC_DATE.pattern).any()
    if target.endswith("_id"):
        return bool(text.str.fullmatch(r"[\w.+-]+").mean() > 0.99)
    return False


def _inspect_cells(frame: pd.DataFrame, table: Table, inspection: FileInspection) -> None:
    renamed = frame.rename(columns=inspection.column_mapping)
    missing = _missing_words(renamed, table)
    if missing:
        inspection.options["missing_values"] = ["", *missing]
    numbers: dict[str, pd.Series] = {}
    day_first_votes: set[bool] = set()
    for column in table.columns:
        if column.name not in renamed.columns:
            continue
        values = trim_missing(renamed[column.name].astype("string"), ("", *missing)).dropna()
        if column.identifier:
            inspection.warnings += _id_warnings(values, f"{table.name}.{column.name}")
        elif column.dtype == "timestamp":
            reading = _date_reading(values, f"{table.name}.{column.name}")
            inspection.dates[column.name] = reading
            if reading.startswith("day first"):
                day_first_votes.add(True)
            elif reading.startswith("month first"):
                day_first_votes.add(False)
            elif reading.startswith("ambiguous"):
                inspection.problems.append(f"{column.name}: {reading}")
        elif column.dtype in ("float", "int"):
            numbers[column.name] = values
        elif column.allowed:
            unknown = sorted(set(values.unique()) - set(column.allowed))[:5]
            if unknown:
                inspection.warnings.append(
                    f"{table.name}.{column.name}: values {unknown} are not contract values {list(column.allowed)}; "
                    f"map them with data.value_mapping.{table.name}.{column.name}, or those rows are quarantined"
                )
    if len(day_first_votes) > 1:
        inspection.problems.append("one column's dates are day first and another's month first: read them apart")
    elif day_first_votes:
        inspection.options["day_first"] = day_first_votes.pop()
    _choose_number_convention(numbers, inspection)


def _missing_words(frame: pd.DataFrame, table: Table) -> list[str]:
    """Words without a digit in number and date columns ('NULL', '-', 'n/a'): what the export writes for none."""
    words: set[str] = set()
    for column in table.columns:
        if column.dtype in ("float", "int", "timestamp") and column.name in frame.columns:
            values = trim_missing(frame[column.name].astype("string"), ("",)).dropna()
            words |= set(values[~values.str.contains(r"\d")].unique())
    return sorted(words)


def _date_reading(values: pd.Series, where: str) -> str:
    if values.empty:
        return "empty"
    if values.str.match(ISO_LIKE).all():
        return "ISO 8601"
    numeric = values.str.match(NUMERIC_DATE.pattern)
    if not numeric.all():
        return f"not one format (e.g. {values[~numeric].unique()[:2].tolist()}): those rows will be quarantined"
    try:
        parse_timestamps(values, None, None, where)
    except AmbiguousDates as error:
        return f"ambiguous: {str(error).split(': ', 2)[-1]}"
    day_first = parse_timestamps(values, None, True, where).values.notna().all()
    month_first = parse_timestamps(values, None, False, where).values.notna().all()
    if day_first and not month_first:
        return f"day first (e.g. {values.iloc[0]!r})"
    if month_first and not day_first:
        return f"month first (e.g. {values.iloc[0]!r})"
    return "day and month agree in every value"


def _choose_number_convention(numbers: dict[str, pd.Series], inspection: FileInspection) -> None:
    """The separators under which every number of every numeric column reads; if two such read some value
    differently ('1.299': 1.299 or 1299), the sample cannot tell and the proposal says so."""
    columns = {name: values for name, values in numbers.items() if not values.empty}
    if not columns:
        return
    readings = {
        convention: {name: parse_numbers(values, *convention) for name, values in columns.items()}
        for convention in NUMBER_CONVENTIONS
    }
    fitting = [c for c, parsed in readings.items() if all(series.notna().all() for series in parsed.values())]
    if not fitting:
        examples = {name: values.iloc[:2].tolist() for name, values in columns.items()}
        inspection.problems.append(f"numbers fit no decimal/thousands separators (e.g. {examples})")
        return
    chosen = fitting[0]
    for other in fitting[1:]:
        for name, parsed in readings[other].items():
            differs = ~parsed.eq(readings[chosen][name])
            if differs.any():
                example = columns[name][differs].iloc[0]
                inspection.problems.append(
                    f"{name}: values like {example!r} read as {readings[chosen][name][differs].iloc[0]:g} "
                    f"(decimal {chosen[0]!r}) or {parsed[differs].iloc[0]:g} (decimal {other[0]!r}, thousands "
                    f"{other[1]!r}); set data.csv.decimal and data.csv.thousands yourself"
                )
                break
        else:
            continue
        break
    decimal, thousands = chosen
    if decimal != ".":
        inspection.options["decimal"] = decimal
    if thousands is not None:
        inspection.options["thousands"] = thousands
    elif not any((parsed.abs() >= 1000).any() for parsed in readings[chosen].values()):
        inspection.warnings.append(
            "no number of 1,000 or more was read, so whether the export groups thousands ('1 299' or '1.299') "
            "is unknown; set data.csv.thousands if it does"
        )


def _id_warnings(values: pd.Series, where: str) -> list[str]:
    warnings = []
    floats = int(values.str.fullmatch(EXCEL_FLOAT_ID).sum())
    if floats:
        warnings.append(f"{where}: {floats} ids like '42.0' (Excel numbers); read as '42' (data.csv.excel_ids)")
    scientific = int(values.str.fullmatch(EXCEL_SCIENTIFIC_ID).sum())
    if scientific:
        warnings.append(
            f"{where}: {scientific} ids like '4.2E+05' lost digits in Excel and will be quarantined; export the ids "
            "as text"
        )
    twins = zero_padded_twins(values)
    if twins:
        warnings.append(f"{where}: ids differing only by leading zeros ({twins[0][0]!r}, {twins[0][1]!r}) stay apart")
    return warnings


def _normalise(name: str) -> str:
    """Lower case, Nordic letters folded (å→a, ø→o, æ→ae), only letters and digits."""
    folded = name.lower().replace("æ", "ae").replace("ø", "o").replace("ß", "ss")
    folded = unicodedata.normalize("NFKD", folded)
    return re.sub(r"[^a-z0-9]", "", folded)


def proposed_data_block(inspections: list[FileInspection], folder: Path) -> dict[str, Any]:
    """The `data` block that reads these files: shared options under `csv`, a table's own under `per_table`."""
    tables = [i for i in inspections if i.table]
    shared: dict[str, Any] = {}
    if tables:
        first = tables[0].options
        shared = {key: value for key, value in first.items() if all(i.options.get(key) == value for i in tables)}
    block: dict[str, Any] = {"source": "files", "path": str(folder)}
    if shared:
        block["csv"] = shared
    per_table = {
        i.table: {key: value for key, value in i.options.items() if shared.get(key) != value}
        for i in tables
        if any(shared.get(key) != value for key, value in i.options.items())
    }
    if per_table:
        block["per_table"] = per_table
    files = {i.table: i.path.name for i in tables if i.path.stem != i.table}
    if files:
        block["files"] = files
    mappings = {
        i.table: {source: target for source, target in i.column_mapping.items() if source != target} for i in tables
    }
    mappings = {table: mapping for table, mapping in mappings.items() if mapping}
    if mappings:
        block["column_mapping"] = mappings
    return block
