"""Which rows of a unique column hold equal values, hashed once for both rules that ask.

Two rules compare a table's unique columns across rows: the exact-duplicate rows (whose candidates share the key) and
"unique". Each used to hash the column's text on its own (pandas' `duplicated` factorizes every value: 5.2 CPU-seconds
for 15M order-line ids). The column is factorized once instead; both rules then compare integers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.contract import Table
from pipelines.validation.parse import is_arrow_text
from pipelines.validation.suite import equality_column


def equality_classes(values: pd.Series) -> pd.Series:
    """An integer per row, the same for two rows exactly when they hold the same value; missing where the value is
    missing (every kind of missing value alike)."""
    codes = arrow_codes(values) if is_arrow_text(values) else None
    if codes is None:
        codes, _ = pd.factorize(values, use_na_sentinel=True)
    classes = pd.array(codes, dtype="Int64")
    classes[codes < 0] = pd.NA
    return pd.Series(classes, index=values.index)


def arrow_codes(values: pd.Series) -> np.ndarray | None:
    """Arrow-backed values' dictionary codes (-1 where missing), or None when Arrow gave the chunks different
    dictionaries. Arrow encodes a chunked column with one dictionary for all its chunks, so their codes are read as
    they are; pandas' `factorize` concatenates the encoded chunks, which compares every chunk's dictionary of
    millions of ids again (a third of its 3.6 CPU-seconds on 15M line ids)."""
    column = pa.array(values)
    chunks = (
        pc.dictionary_encode(column).chunks if isinstance(column, pa.ChunkedArray) else [pc.dictionary_encode(column)]
    )
    dictionaries = {tuple(buffer.address for buffer in chunk.dictionary.buffers() if buffer) for chunk in chunks}
    if len(dictionaries) > 1:
        return None
    codes = [chunk.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64) for chunk in chunks]
    return np.concatenate(codes) if codes else np.zeros(0, dtype=np.int64)


def unique_column_classes(typed: pd.DataFrame, table: Table) -> dict[str, pd.Series]:
    """`equality_column(name)` -> its equality classes, for each unique column of `table` in `typed`."""
    return {equality_column(c.name): equality_classes(typed[c.name]) for c in table.columns if c.unique}


def repeated(classes: pd.Series) -> np.ndarray:
    """Rows whose value another row holds; missing values count as equal to each other (as in pandas' `duplicated`)."""
    codes = classes.to_numpy(dtype=np.int64, na_value=-1) + 1
    return np.bincount(codes, minlength=1)[codes] > 1
