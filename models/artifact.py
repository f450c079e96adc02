"""The model of record: LightGBM's text model plus JSON metadata, never a pickle.

`metadata.json` holds what scoring needs to reproduce training exactly (feature list, dtypes, category levels,
calibration) and what an auditor needs (training cutoffs, data hash, params, library versions), plus the SHA-256 of
the model file so a swapped or truncated model is refused.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from functools import cached_property
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from models.calibration import Calibration
from models.dataset import ModelInput, to_matrix

if TYPE_CHECKING:
    from models.treeshap import TreeTables

log = logging.getLogger(__name__)

MODEL_FILE = "model.txt"
# The per-leaf SHAP tables are checked against pred_contrib on this many rows of every call: a few ms.
CHECKED_ROWS = 64
# Table and pred_contrib values differ by float64 summation order only (about 1e-15 in log-odds).
SHAP_TOLERANCE = 1e-9
# The name of the model folder among the artifacts of the logged MLflow scorer.
MLFLOW_ARTIFACT = "churn_model"
METADATA_FILE = "metadata.json"
FORMAT_VERSION = 1
LIBRARIES = ("lightgbm", "scikit-learn", "pandas", "numpy", "pyarrow")


class ModelFileError(ValueError):
    """The model folder is incomplete, or its files disagree with each other."""


@dataclass
class ChurnModel:
    """A fitted booster with what it needs to score: the input spec and the calibration."""

    booster: lgb.Booster
    model_input: ModelInput
    calibration: Calibration
    # Training facts (cutoffs, rows, rounds, params, data hash); saved, never used to predict.
    training: dict[str, Any]

    def matrix(self, frame: pd.DataFrame) -> pd.DataFrame:
        return to_matrix(frame, self.model_input)

    def predict_raw(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.booster.predict(self.matrix(frame)), dtype=np.float64)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated probability of churn."""
        return self.predict_matrix(self.matrix(frame))

    def predict_matrix(self, matrix: pd.DataFrame) -> np.ndarray:
        """Calibrated probability of churn from the model's input matrix (`matrix`), when the caller needs it too."""
        return self.calibration.apply(np.asarray(self.booster.predict(matrix), dtype=np.float64))

    def contributions(self, frame: pd.DataFrame) -> pd.DataFrame:
        """SHAP values (path-dependent TreeSHAP, LightGBM's pred_contrib), in log-odds of the raw model, one column
        per feature plus `bias`. They explain the ranking; calibration is monotone, so it does not reorder
        customers. Computed from per-leaf tables (`models.treeshap`), the same values as pred_contrib at a fraction
        of its cost; by pred_contrib itself for a model the tables are not built for."""
        matrix = self.matrix(frame)
        tables = self.shap_tables
        values = None if tables is None else tables.contributions(model_array(matrix))
        if values is None or not self.agrees_with_pred_contrib(matrix.iloc[:CHECKED_ROWS], values[:CHECKED_ROWS]):
            values = np.asarray(self.booster.predict(matrix, pred_contrib=True))
        return pd.DataFrame(values, columns=[*self.model_input.features, "bias"], index=frame.index)

    def agrees_with_pred_contrib(self, matrix: pd.DataFrame, values: np.ndarray) -> bool:
        """Whether the tables' SHAP values of the first rows are LightGBM's own: a model the tables read wrongly (a
        tree kind or split rule they do not know) is then explained by pred_contrib, with a warning, never wrongly."""
        expected = np.asarray(self.booster.predict(matrix, pred_contrib=True))
        if np.allclose(values, expected, rtol=0.0, atol=SHAP_TOLERANCE):
            return True
        log.warning("SHAP values by pred_contrib: the per-leaf tables disagree with it on this model")
        return False

    @cached_property
    def shap_tables(self) -> TreeTables | None:
        """The booster's TreeSHAP tables, or None (pred_contrib then) when a path is too deep to tabulate or the
        booster would code a categorical other than the model input does."""
        categorical = [name for name in self.model_input.features if name in self.model_input.categories]
        coded_alike = [list(self.model_input.categories[name]) for name in categorical] == (
            self.booster.pandas_categorical or []
        )
        if not coded_alike:
            log.info("SHAP values by pred_contrib: the booster codes the categoricals differently")
            return None
        # Imported here: numba takes a second or more to import, and only explaining needs it.
        from models.treeshap import PathsTooDeep, tree_tables

        try:
            return tree_tables(self.booster)
        except PathsTooDeep as reason:
            log.info("SHAP values by pred_contrib: %s", reason)
            return None


def model_array(matrix: pd.DataFrame) -> np.ndarray:
    """The model input as LightGBM reads it: float64, a categorical as its category code, missing as NaN."""
    columns = []
    for name in matrix.columns:
        values = matrix[name]
        if isinstance(values.dtype, pd.CategoricalDtype):
            codes = values.cat.codes.to_numpy()
            columns.append(np.where(codes < 0, np.nan, codes.astype(np.float64)))
        else:
            columns.append(values.to_numpy(dtype=np.float64, na_value=np.nan))
    return np.column_stack(columns) if columns else np.zeros((len(matrix), 0))


def save_model(model: ChurnModel, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    text = model.booster.model_to_string()
    (folder / MODEL_FILE).write_text(text)
    metadata = {
        "format_version": FORMAT_VERSION,
        "model_sha256": hashlib.sha256(text.encode()).hexdigest(),
        **model.model_input.to_dict(),
        "calibration": model.calibration.to_dict(),
        "training": model.training,
        "libraries": {name: version(name) for name in LIBRARIES},
    }
    (folder / METADATA_FILE).write_text(json.dumps(metadata, indent=2, default=str) + "\n")


def load_model(folder: Path) -> ChurnModel:
    """Load and check a saved model; raises ModelFileError saying what is wrong."""
    metadata = read_metadata(folder)
    text = (folder / MODEL_FILE).read_text()
    if hashlib.sha256(text.encode()).hexdigest() != metadata["model_sha256"]:
        raise ModelFileError(f"{folder / MODEL_FILE} does not match the SHA-256 recorded in its metadata")
    booster = lgb.Booster(model_str=text)
    model_input = ModelInput.from_dict(metadata)
    if booster.feature_name() != list(model_input.features):
        raise ModelFileError(f"{folder}: the booster's features differ from the metadata's feature list")
    return ChurnModel(
        booster=booster,
        model_input=model_input,
        calibration=Calibration.from_dict(metadata["calibration"]),
        training=metadata["training"],
    )


def read_metadata(folder: Path) -> dict[str, Any]:
    for name in (MODEL_FILE, METADATA_FILE):
        if not (folder / name).is_file():
            raise ModelFileError(f"{folder} is not a churn model: {name} is missing")
    try:
        metadata: dict[str, Any] = json.loads((folder / METADATA_FILE).read_text())
    except json.JSONDecodeError as error:
        raise ModelFileError(f"{folder / METADATA_FILE} is not valid JSON: {error}") from error
    if metadata.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(
            f"{folder / METADATA_FILE} has format_version {metadata.get('format_version')!r}; "
            f"this version of churn-pipeline reads {FORMAT_VERSION}"
        )
    missing = {"model_sha256", "features", "categories", "calibration", "training"} - set(metadata)
    if missing:
        raise ModelFileError(f"{folder / METADATA_FILE} lacks {sorted(missing)}")
    return metadata
