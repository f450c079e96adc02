"""MLflow: one run per train + evaluate, the scorer logged and registered, champion/challenger aliases.

The tracking URI comes from MLFLOW_TRACKING_URI, else the embedded SQLite store `mlflow.db` in the working directory
(the repository root under `dvc repro`). Nothing here runs at import.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

from models.artifact import MLFLOW_ARTIFACT, ChurnModel
from models.dataset import plain_input
from models.identity import registered_model_name

log = logging.getLogger(__name__)

CHAMPION, CHALLENGER = "champion", "challenger"
# Metrics where lower is better; any other champion metric is higher-is-better.
LOWER_IS_BETTER = frozenset({"brier", "log_loss", "ece"})
SCORER_CODE = Path(__file__).with_name("scorer.py")
PACKAGES = Path(__file__).resolve().parents[1]
REQUIREMENTS = ("lightgbm", "pandas", "numpy", "scipy", "scikit-learn", "pyarrow", "ibis-framework", "mlflow")
_BATCH = 1000  # MLflow's limit of metrics per log_batch call


@dataclass(frozen=True)
class TrackingSettings:
    """The `mlflow` block of params.yaml."""

    experiment: str = "churn"
    # Registered model name; None: one per data source (`identity.registered_model_name`), so that two shops sharing
    # a tracking store never share a champion.
    model_name: str | None = None
    # Test metric (of the LightGBM model on the test cutoff) that decides whether a new version becomes champion.
    champion_metric: str = "roc_auc"


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    model_uri: str
    version: str
    alias: str


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def use_experiment(settings: TrackingSettings) -> str:
    """Point MLflow at the store and the experiment (created with its artifacts next to a SQLite store)."""
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.get_experiment_by_name(settings.experiment)
    if experiment is not None:
        return str(experiment.experiment_id)
    location = None
    if uri.startswith("sqlite:///"):
        location = (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").as_uri()
    return str(mlflow.create_experiment(settings.experiment, artifact_location=location))


def log_run(
    settings: TrackingSettings,
    model: ChurnModel,
    model_folder: Path,
    example_rows: pd.DataFrame,
    params: dict[str, Any],
    metrics: dict[str, float],
    tags: dict[str, str],
    artifacts: list[Path],
) -> RunRecord:
    """Log one run: params, metrics, the validation curve per round, plots and reports, the scorer; register it
    and give the new version the champion alias if it beats the current champion, else challenger."""
    experiment_id = use_experiment(settings)
    client = MlflowClient()
    model_name = settings.model_name or registered_model_name(model.training["data"])
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.set_tags(tags)
        mlflow.log_params(params)
        mlflow.log_metrics(metrics)
        _log_validation_curve(client, run.info.run_id, model.training["validation_curve"])
        for path in artifacts:
            if path.is_dir():
                mlflow.log_artifacts(str(path), artifact_path=path.name)
            elif path.is_file():
                mlflow.log_artifact(str(path))
        info = log_scorer(model, model_folder, example_rows, model_name)
    version = str(info.registered_model_version)
    metric = f"test_{settings.champion_metric}"
    alias = assign_alias(client, model_name, version, metric)
    log.info("MLflow run %s; %s version %s is %s", run.info.run_id, model_name, version, alias)
    return RunRecord(run.info.run_id, f"models:/{model_name}/{version}", version, alias)


def _log_validation_curve(client: MlflowClient, run_id: str, curve: dict[str, list[float]]) -> None:
    points = [
        Metric(key=f"validation_{name}", value=float(value), timestamp=0, step=step)
        for name, values in curve.items()
        for step, value in enumerate(values, start=1)
    ]
    for start in range(0, len(points), _BATCH):
        client.log_batch(run_id, metrics=points[start : start + _BATCH])


def log_scorer(model: ChurnModel, model_folder: Path, example_rows: pd.DataFrame, model_name: str) -> Any:
    """The scorer as a pyfunc model from code, with its signature (plain floats and strings) and an example."""
    example = plain_input(example_rows, model.model_input)
    signature = infer_signature(example, model.predict(example))
    # The two packages the scorer imports travel with the model, so it loads without this repository.
    return mlflow.pyfunc.log_model(
        name="scorer",
        python_model=str(SCORER_CODE),
        artifacts={MLFLOW_ARTIFACT: str(model_folder)},
        code_paths=[str(PACKAGES / "models"), str(PACKAGES / "features")],
        signature=signature,
        input_example=example,
        pip_requirements=[f"{name}=={version(name)}" for name in REQUIREMENTS],
        registered_model_name=model_name,
    )


def assign_alias(client: MlflowClient, model_name: str, new_version: str, metric: str) -> str:
    """champion if there is none or the new version's run beats it on `metric`, else challenger."""
    champion = _version_by_alias(client, model_name, CHAMPION)
    new_value = _run_metric(client, client.get_model_version(model_name, new_version).run_id, metric)
    if champion is None or _beats(new_value, _run_metric(client, champion.run_id, metric), metric):
        client.set_registered_model_alias(model_name, CHAMPION, new_version)
        return CHAMPION
    client.set_registered_model_alias(model_name, CHALLENGER, new_version)
    return CHALLENGER


def _version_by_alias(client: MlflowClient, model_name: str, alias: str) -> Any:
    try:
        return client.get_model_version_by_alias(model_name, alias)
    except MlflowException:
        return None


def _run_metric(client: MlflowClient, run_id: str | None, metric: str) -> float | None:
    if run_id is None:
        return None
    return client.get_run(run_id).data.metrics.get(metric)


def _beats(new: float | None, current: float | None, metric: str) -> bool:
    if new is None:
        return False
    if current is None:
        return True
    base = metric.removeprefix("test_")
    return new < current if base in LOWER_IS_BETTER else new > current
