"""The `mlflow` block of params.yaml, apart from the tracking code so that reading it does not load MLflow."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrackingSettings:
    """The `mlflow` block of params.yaml."""

    experiment: str = "churn"
    # Registered model name; None: one per data source (`identity.registered_model_name`), so that two shops sharing
    # a tracking store never share a champion.
    model_name: str | None = None
    # A new version becomes champion only when the lower end of the 95 % interval of its ROC-AUC gain over the
    # champion (paired bootstrap on the same test customers) is above this.
    promote_min_gain: float = 0.0
