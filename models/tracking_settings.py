"""The `mlflow` block of params.yaml, apart from the tracking code so that reading it does not load MLflow."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrackingSettings:
    """The `mlflow` block of params.yaml."""

    experiment: str = "churn"
    model_name: str = "churn-model"
    # A new version becomes champion only when the lower end of the 95 % interval of its ROC-AUC gain over the
    # champion (paired bootstrap on the same test customers) is above this.
    promote_min_gain: float = 0.0
