"""The model's view of the feature table: which columns it reads and how, fixed at training time.

Strings become pandas categoricals with the levels seen in training (LightGBM splits on them natively); everything
else becomes float32, so booleans and counts with missing values need no special case. A level the model never saw
is missing at scoring time, not a new category.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from features.build import FEATURE_SPECS, KEY_COLUMNS, LABEL

log = logging.getLogger(__name__)

_MODEL_COLUMNS = [*KEY_COLUMNS, *(spec.name for spec in FEATURE_SPECS), LABEL]
_BATCH_ROWS = 1 << 18


@dataclass(frozen=True)
class ModelInput:
    """The feature columns in model order; categorical ones with their levels."""

    features: tuple[str, ...]
    categories: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "features": list(self.features),
            "dtypes": {name: "category" if name in self.categories else "float32" for name in self.features},
            "categories": {name: list(levels) for name, levels in self.categories.items()},
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelInput:
        return cls(
            features=tuple(values["features"]),
            categories={name: tuple(levels) for name, levels in values["categories"].items()},
        )


def model_input_from(training_rows: pd.DataFrame, exclude: Collection[str] = ()) -> ModelInput:
    """Every feature of the dictionary but those excluded (names or whole groups), with the category levels found
    in the training rows."""
    excluded = excluded_features(exclude)
    specs = [spec for spec in FEATURE_SPECS if spec.name not in excluded]
    missing = [spec.name for spec in specs if spec.name not in training_rows.columns]
    if missing:
        raise ValueError(f"the feature table lacks features the model needs: {missing}")
    categories = {
        spec.name: tuple(sorted(training_rows[spec.name].dropna().astype(str).unique()))
        for spec in specs
        if spec.dtype == "string"
    }
    return ModelInput(features=tuple(spec.name for spec in specs), categories=categories)


def excluded_features(names: Collection[str]) -> set[str]:
    """Feature names, with a group name standing for all its features (e.g. `returns`, for an ablation)."""
    groups = {spec.group for spec in FEATURE_SPECS}
    known = {spec.name for spec in FEATURE_SPECS} | groups
    unknown = sorted(set(names) - known)
    if unknown:
        raise ValueError(f"train.exclude_features names no feature or group: {unknown} (groups: {sorted(groups)})")
    return {spec.name for spec in FEATURE_SPECS if spec.name in names or spec.group in names}


def to_matrix(frame: pd.DataFrame, model_input: ModelInput) -> pd.DataFrame:
    """The model's input matrix: the features in model order, as float64 or categoricals with the saved levels."""
    missing = [name for name in model_input.features if name not in frame.columns]
    if missing:
        raise ValueError(f"the input lacks model features: {missing}")
    columns = {}
    for name in model_input.features:
        values = frame[name]
        if name in model_input.categories:
            columns[name] = pd.Categorical(
                values.astype("string").to_numpy(dtype=object, na_value=None),
                categories=list(model_input.categories[name]),
            )
        else:
            columns[name] = _as_float(values)
    return _order_never_with_long_ago(pd.DataFrame(columns, index=frame.index))


def _order_never_with_long_ago(matrix: pd.DataFrame) -> pd.DataFrame:
    """A customer who never had a bad experience gets, instead of "missing", the least risky value on each scale:
    days since the last one = days since the first order, and "recovered" = yes (nothing to recover from); one
    without a late delivery in the last 365 days is 0 days late. Then "a bad experience never lowers the risk" can be
    a monotone constraint; a learned direction for missing values could otherwise rank "never" above "long ago" (or
    a first late delivery below none). Where the satisfaction sources are absent the count is missing too, and so
    are these."""
    if "late_days_max_365d" in matrix and "late_delivery_365d" in matrix:
        matrix.loc[matrix["late_delivery_365d"] == 0, "late_days_max_365d"] = 0.0
    never = matrix.get("bad_experiences_total", pd.Series(np.nan, index=matrix.index)) == 0
    if "days_since_last_bad_experience" in matrix and "days_since_first_order" in matrix:
        matrix.loc[never, "days_since_last_bad_experience"] = matrix.loc[never, "days_since_first_order"]
    if "last_bad_experience_recovered" in matrix:
        matrix.loc[never, "last_bad_experience_recovered"] = 1.0
    return matrix


def plain_input(frame: pd.DataFrame, model_input: ModelInput) -> pd.DataFrame:
    """The model input as plain columns (float64, and strings with None for missing): the MLflow model's
    signature, which any client can build without pandas categoricals."""
    matrix = to_matrix(frame, model_input)
    for name in model_input.categories:
        matrix[name] = matrix[name].astype(object).where(matrix[name].notna(), None)
    return matrix


def _as_float(values: pd.Series) -> np.ndarray:
    if isinstance(values.dtype, pd.CategoricalDtype) or values.dtype == object:
        # Nullable booleans read from Parquet arrive as objects holding True/False/None.
        values = values.astype("boolean") if _looks_boolean(values) else pd.to_numeric(values)
    # float32 halves the matrix LightGBM copies; its histogram bins are far coarser than float32 precision.
    return values.astype("Float64").to_numpy(dtype=np.float32, na_value=np.nan)


def _looks_boolean(values: pd.Series) -> bool:
    return bool(values.dropna().map(type).isin([bool, np.bool_]).all())


def labelled(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows whose label window was fully observed, with the label as int8."""
    rows = frame[frame[LABEL].notna()].copy()
    rows[LABEL] = rows[LABEL].astype("int8")
    return rows


def read_labelled_rows(
    path: Path, max_rows: int | None, seed: int, features: Collection[str] | None = None
) -> pd.DataFrame:
    """The feature table's labelled rows (keys, features, label) for fitting, sorted by cutoff and customer so the
    model never depends on the order the engine wrote them in. `features` reads only those (e.g. the baselines'
    few), every feature of the dictionary by default.

    With more than `max_rows` labelled rows, a stable random share of customers is kept, with all their rows, so
    the fitting set stays near `max_rows` and memory stays bounded; the file is read in batches and never whole."""
    source = pq.ParquetFile(path)
    total, customers = _labelled_customers(source)
    share = 1.0 if max_rows is None or total <= max_rows else max_rows / total
    # Whether a customer is kept depends on the id alone: decided once per customer, not once per row.
    kept = customers.filter(pa.array(_customer_share(customers, share, seed))) if share < 1.0 else None
    columns = _MODEL_COLUMNS if features is None else [*KEY_COLUMNS, *features, LABEL]
    batches = []
    for batch in source.iter_batches(batch_size=_BATCH_ROWS, columns=columns):
        keep = pc.is_valid(batch.column(LABEL)).to_numpy(zero_copy_only=False)
        if kept is not None:
            keep &= pc.is_in(batch.column("customer_id"), value_set=kept).to_numpy(zero_copy_only=False)
        batches.append(batch.filter(pa.array(keep)))
    if share < 1.0:
        log.info("kept %.1f%% of customers: %d of %d labelled rows (train.max_training_rows)",
                 100 * share, sum(len(b) for b in batches), total)  # fmt: skip
    schema = pa.schema([source.schema_arrow.field(name) for name in columns])
    return _sorted_frame(pa.Table.from_batches(batches, schema=schema))


def read_cutoff_rows(path: Path, cutoff: pd.Timestamp) -> pd.DataFrame:
    """Every row of one cutoff (keys, features, label)."""
    table = pq.read_table(path, columns=_MODEL_COLUMNS, filters=[("cutoff", "=", cutoff.to_pydatetime())])
    return _sorted_frame(table)


def _labelled_customers(source: pq.ParquetFile) -> tuple[int, pa.Array]:
    """The number of labelled rows and the distinct customers among them."""
    total = 0
    customers = []
    for batch in source.iter_batches(batch_size=_BATCH_ROWS, columns=[LABEL, "customer_id"]):
        labelled_ids = batch.column("customer_id").filter(pc.is_valid(batch.column(LABEL)))
        total += len(labelled_ids)
        customers.append(pc.unique(labelled_ids))
    if not customers:
        return 0, pa.array([], type=pa.string())
    return total, pc.unique(pa.chunked_array(customers))


def _customer_share(customer_ids: pa.Array, share: float, seed: int) -> np.ndarray:
    """The same customers in every batch and every run: a hash of the id, independent of the validation split's."""
    ids = customer_ids.to_numpy(zero_copy_only=False).astype(str).astype(object)
    hashes = pd.util.hash_array(ids, hash_key=f"sample{seed:010d}"[:16])
    return np.asarray((hashes % 1_000_000) < share * 1_000_000)


def _sorted_frame(table: pa.Table) -> pd.DataFrame:
    frame = table.to_pandas()
    return frame.sort_values(["cutoff", "customer_id"], kind="stable", ignore_index=True)
