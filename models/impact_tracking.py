"""The impact analysis as its own MLflow run in the project's experiment: params, headline metrics, the reports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from models.tracking_settings import TrackingSettings, use_experiment


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

    experiment_id = use_experiment(settings)
    with mlflow.start_run(experiment_id=experiment_id, run_name="impact") as run:
        mlflow.set_tags({"stage": "impact", **tags})
        mlflow.log_params({f"impact.{key}": value for key, value in params.items()})
        mlflow.log_metrics(impact_metrics(report))
        for path in artifacts:
            if path.is_file():
                mlflow.log_artifact(str(path))
        return str(run.info.run_id)
