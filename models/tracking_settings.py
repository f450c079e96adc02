"""The `mlflow` block of params.yaml, apart from the tracking code so that reading it does not load MLflow."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrackingSettings:
    """The `mlflow` block of params.yaml."""

    experiment: str = "churn"
    model_name: str = "churn-model"
    # Test metric (of the LightGBM model on the test cutoff) that decides whether a new version becomes champion.
    champion_metric: str = "roc_auc"
