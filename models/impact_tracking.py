"""The impact analysis as its own MLflow run in the project's experiment: params, headline metrics, the reports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from models.tracking_settings import TrackingSettings


def impact_metrics(report: dict[str, Any]) -> dict[str, float]:
    """Flat metrics: effect, interval and revenue per month of every estimated kind, and recovery's."""
    metrics: dict[str, float] = {}
    for kind, entry in report["kinds"].items():
        if entry.get("status") != "estimated":
            continue
        metrics[f"{kind}_att"] = entry["att"]
        metrics[f"{kind}_att_low"], metrics[f"{kind}_att_high"] = entry["ci"]
        metrics[f"{kind}_unadjusted"] = entry["unadjusted"]
        metrics[f"{kind}_revenue_lost_per_month"] = entry["money"]["revenue_per_month"]
    recovery = report["recovery"]
    if recovery.get("status") == "estimated":
        metrics["fast_recovery_att"] = recovery["att"]
        metrics["fast_recovery_revenue_won_per_month"] = recovery["money_now"]["revenue_per_month"]
        metrics["all_fast_revenue_added_per_month"] = recovery["money_if_all_fast"]["revenue_per_month"]
    return metrics


def log_impact_run(
    settings: TrackingSettings, params: dict[str, Any], report: dict[str, Any], artifacts: list[Path],
    tags: dict[str, str],
) -> str:  # fmt: skip
    """Log one run named `impact`; returns its id."""
    import mlflow

    experiment_id = _use_experiment(settings)
    with mlflow.start_run(experiment_id=experiment_id, run_name="impact") as run:
        mlflow.set_tags({"stage": "impact", **tags})
        mlflow.log_params({f"impact.{key}": value for key, value in params.items()})
        mlflow.log_metrics(impact_metrics(report))
        for path in artifacts:
            if path.is_file():
                mlflow.log_artifact(str(path))
        return str(run.info.run_id)


def _use_experiment(settings: TrackingSettings) -> str:
    """As models.tracking.use_experiment (the same store and experiment), without importing the model registry's
    code, so that a change there does not rerun this stage."""
    import os

    import mlflow

    uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.get_experiment_by_name(settings.experiment)
    if experiment is not None:
        return str(experiment.experiment_id)
    location = None
    if uri.startswith("sqlite:///"):
        location = (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").as_uri()
    return str(mlflow.create_experiment(settings.experiment, artifact_location=location))
