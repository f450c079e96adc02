"""The `mlflow` block of params.yaml and the store it points to, apart from the registry code: reading the block
loads no MLflow, and the impact stage logs its run without depending on the registry's code."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


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


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def use_experiment(settings: TrackingSettings) -> str:
    """Point MLflow at the store and the experiment (created with its artifacts next to a SQLite store)."""
    import mlflow

    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.get_experiment_by_name(settings.experiment)
    if experiment is not None:
        return str(experiment.experiment_id)
    location = None
    if uri.startswith("sqlite:///"):
        location = (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").as_uri()
    return str(mlflow.create_experiment(settings.experiment, artifact_location=location))
