"""Every block of params.yaml against its stage's schema (the block's dataclass), before any stage does work:
unknown blocks and keys (with the nearest valid one), wrong types, and combinations that cannot work.

Not a DVC dependency of the stages, although every stage runs it: it decides whether a stage starts, never what a
stage writes, and listing the schemas it imports would rerun every stage whenever any stage's code changed.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd

from features.blocks import from_block

BLOCKS = (
    "engine",
    "spark",
    "data",
    "validate",
    "features",
    "train",
    "evaluate",
    "mlflow",
    "score",
    "impact",
    "generate",
)
FEATURE_STRATEGIES = ("per_cutoff", "one_query")


@dataclass(frozen=True)
class DataParams:
    """The `data` block: where the source is and how its files are read (`pipelines.sources.options`)."""

    source: Literal["files", "online_retail", "olist"] = "files"
    path: str | None = None
    # The export time: nothing may be timestamped after it; null = the time validation runs.
    as_of: str | None = None
    csv: dict[str, Any] | None = None
    per_table: dict[str, dict[str, Any]] | None = None
    files: dict[str, str] | None = None
    column_mapping: dict[str, dict[str, str]] | None = None
    value_mapping: dict[str, dict[str, dict[Any, Any]]] | None = None


@dataclass(frozen=True)
class ValidateParams:
    max_quarantine_share: float = 0.05

    def __post_init__(self) -> None:
        if not 0.0 <= self.max_quarantine_share <= 1.0:
            raise ValueError(
                f"validate.max_quarantine_share must be a share in [0, 1], not {self.max_quarantine_share}"
            )


def check_params(params: dict[str, Any]) -> None:
    """Raise ValueError naming the first param that is unknown, of the wrong type, or impossible with another."""
    for name in params:
        if name not in BLOCKS:
            nearest = difflib.get_close_matches(name, BLOCKS, n=1, cutoff=0.5)
            hint = f"did you mean {nearest[0]}?" if nearest else f"the blocks are {list(BLOCKS)}"
            raise ValueError(f"params.yaml has an unknown block {name!r}; {hint}")
    for name, check in _block_checks().items():
        if name == "engine" and name in params:  # a value, not a block
            check(params[name])
        elif name in params:
            check(params[name] or {})
    _check_combinations(params)


def _block_checks() -> dict[str, Any]:
    # Imported here: the models' modules load LightGBM and scikit-learn, which `churn --help` does without.
    from features.cutoffs import FeatureParams
    from models.evaluate import EvaluateParams
    from models.impact import ImpactParams
    from models.risk import RiskParams
    from models.tracking_settings import TrackingSettings
    from models.train import TrainParams
    from pipelines.engine import SparkSettings, check_engine
    from pipelines.sources.options import table_options
    from pipelines.sources.synthetic import SyntheticShopParams

    def data(values: dict[str, Any]) -> None:
        settings = from_block(DataParams, values, "data")
        _timestamp(settings.as_of, "data.as_of")
        for table in ["orders", *(settings.per_table or {})]:
            table_options(values, table)

    def features(values: dict[str, Any]) -> None:
        values = dict(values)
        strategy = values.pop("strategy", "per_cutoff")
        if strategy not in FEATURE_STRATEGIES:
            raise ValueError(f"features.strategy = {strategy!r}: choose one of {list(FEATURE_STRATEGIES)}")
        _timestamp(FeatureParams.from_dict(values).first_cutoff, "features.first_cutoff")

    def score(values: dict[str, Any]) -> None:
        _timestamp(RiskParams.from_dict(values).as_of, "score.as_of")

    return {
        "engine": check_engine,
        "spark": SparkSettings.from_dict,
        "data": data,
        "validate": lambda values: from_block(ValidateParams, values, "validate"),
        "features": features,
        "train": TrainParams.from_dict,
        "evaluate": lambda values: from_block(EvaluateParams, values, "evaluate"),
        "mlflow": lambda values: from_block(TrackingSettings, values, "mlflow"),
        "score": score,
        "impact": ImpactParams.from_dict,
        "generate": SyntheticShopParams.from_dict,
    }


def _check_combinations(params: dict[str, Any]) -> None:
    as_of = _timestamp((params.get("data") or {}).get("as_of"), "data.as_of")
    first_cutoff = _timestamp((params.get("features") or {}).get("first_cutoff"), "features.first_cutoff")
    score_as_of = _timestamp((params.get("score") or {}).get("as_of"), "score.as_of")
    if as_of is not None and first_cutoff is not None and first_cutoff > as_of:
        raise ValueError(
            f"features.first_cutoff {first_cutoff.date()} is after data.as_of {as_of.date()}: no cutoff can see "
            "any data; set features.first_cutoff to a date inside the data's history"
        )
    if as_of is not None and score_as_of is not None and score_as_of > as_of:
        raise ValueError(
            f"score.as_of {score_as_of} is after data.as_of {as_of}: the data cannot say who is active then; "
            "set score.as_of to null or to a time by the export"
        )


def _timestamp(value: object, name: str) -> pd.Timestamp | None:
    if value is None:
        return None
    try:
        return pd.Timestamp(str(value))
    except ValueError:
        raise ValueError(f"{name} = {value!r} is not a date or time; write it like '2024-07-01'") from None
