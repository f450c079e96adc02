"""MLflow: one run per train + evaluate, the scorer logged and registered, champion/challenger aliases.

Promotion by evidence: a new version becomes `champion` only when the lower end of the paired 95 % bootstrap
interval of its ROC-AUC gain over the current champion is above `promote_min_gain`. Both are judged by their
backtest models (fitted on labels known at their test cutoff) on the new run's test rows, so the two are measured on
the same customers and neither has seen their labels; every run logs its backtest model for the runs after it.

The tracking URI comes from MLFLOW_TRACKING_URI, else the embedded SQLite store `mlflow.db` in the working directory
(the repository root under `dvc repro`). Nothing here runs at import.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

from features.build import LABEL
from models.artifact import MLFLOW_ARTIFACT, ChurnModel, ModelFileError, load_model
from models.bootstrap import bootstrap_roc_auc
from models.dataset import plain_input
from models.identity import registered_model_name
from models.tracking_settings import TrackingSettings, use_experiment

log = logging.getLogger(__name__)

CHAMPION, CHALLENGER = "champion", "challenger"
BACKTEST_ARTIFACT = "backtest_model"
SCORER_CODE = Path(__file__).with_name("scorer.py")
PACKAGES = Path(__file__).resolve().parents[1]
REQUIREMENTS = ("lightgbm", "pandas", "numpy", "scipy", "scikit-learn", "pyarrow", "ibis-framework", "mlflow")
_BATCH = 1000  # MLflow's limit of metrics per log_batch call


@dataclass(frozen=True)
class Evidence:
    """What a new version is judged on: its backtest model (saved in `backtest_folder`) and the labelled test rows,
    with the bootstrap's resamples and seed."""

    backtest: ChurnModel
    backtest_folder: Path
    test_rows: pd.DataFrame
    resamples: int
    seed: int


@dataclass(frozen=True)
class Promotion:
    """The alias a new version gets and why: the interval of its gain over the champion it was compared with."""

    alias: str
    reason: str
    gain_interval: list[float] | None = None
    compared_with: str | None = None

    def tags(self) -> dict[str, str]:
        tags = {"promotion": self.alias, "promotion_reason": self.reason}
        if self.gain_interval is not None:
            low, high = self.gain_interval
            tags["roc_auc_gain_over_champion_95"] = f"[{low:+.4f}, {high:+.4f}]"
        if self.compared_with is not None:
            tags["compared_with_version"] = self.compared_with
        return tags


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    model_uri: str
    version: str
    alias: str
    promotion: Promotion


def log_run(
    settings: TrackingSettings,
    model: ChurnModel,
    model_folder: Path,
    evidence: Evidence,
    params: dict[str, Any],
    metrics: dict[str, float],
    tags: dict[str, str],
    artifacts: list[Path],
    run_name: str | None = None,
    figures: list[Path] | None = None,
) -> RunRecord:
    """Log one run: params, metrics, the validation curve per round, plots and reports, the backtest model, the
    scorer; register it and give the new version the alias its evidence earns (see the module docstring), with the
    decision and the interval as tags of the version."""
    experiment_id = use_experiment(settings)
    client = MlflowClient()
    model_name = settings.model_name or registered_model_name(model.training["data"])
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
        mlflow.set_tags(tags)
        mlflow.log_params(params)
        mlflow.log_metrics(metrics)
        _log_validation_curve(client, run.info.run_id, model.training["validation_curve"])
        _log_search_trials(experiment_id, model.training.get("search"))
        for path in artifacts:
            if path.is_dir():
                mlflow.log_artifacts(str(path), artifact_path=path.name)
            elif path.is_file():
                mlflow.log_artifact(str(path))
        for figure in figures or []:
            mlflow.log_artifact(str(figure), artifact_path="figures")
        mlflow.log_artifacts(str(evidence.backtest_folder), artifact_path=BACKTEST_ARTIFACT)
        info = log_scorer(model, model_folder, evidence.test_rows.head(5), model_name)
    version = str(info.registered_model_version)
    champion = _version_by_alias(client, model_name, CHAMPION)
    promotion = judge(champion, _champion_backtest(champion), evidence, settings.promote_min_gain)
    client.set_registered_model_alias(model_name, promotion.alias, version)
    for key, value in promotion.tags().items():
        client.set_model_version_tag(model_name, version, key, value)
    log.info("MLflow run %s; %s version %s is %s: %s", run.info.run_id, model_name, version,
             promotion.alias, promotion.reason)  # fmt: skip
    return RunRecord(run.info.run_id, f"models:/{model_name}/{version}", version, promotion.alias, promotion)


def judge(champion: Any, champion_backtest: ChurnModel | None, evidence: Evidence, min_gain: float) -> Promotion:
    """The alias a new version earns against the current champion (a registered version, or None)."""
    if champion is None:
        return Promotion(CHAMPION, "no champion yet")
    version = str(champion.version)
    if champion_backtest is None:
        return Promotion(CHALLENGER, f"version {version}'s run has no backtest model to compare with", None, version)
    new_cutoff = pd.Timestamp(evidence.backtest.training["deploy_at"])
    if pd.Timestamp(champion_backtest.training["deploy_at"]) > new_cutoff:
        return Promotion(CHALLENGER, f"version {version} was fitted after this test cutoff {new_cutoff.date()}",
                         None, version)  # fmt: skip
    if evidence.resamples <= 0:
        return Promotion(CHALLENGER, "no bootstrap interval (evaluate.bootstrap_resamples is 0)", None, version)
    try:
        champion_ranking = champion_backtest.predict_raw(evidence.test_rows)
    except (KeyError, ValueError) as error:
        return Promotion(CHALLENGER, f"version {version} cannot score these test rows: {error}", None, version)
    interval = gain_interval(evidence, champion_ranking)
    if promotes(interval, min_gain):
        return Promotion(CHAMPION, f"ROC-AUC gain over version {version} above {min_gain}", interval, version)
    return Promotion(CHALLENGER, f"ROC-AUC gain over version {version} not above {min_gain}", interval, version)


def gain_interval(evidence: Evidence, champion_ranking: np.ndarray) -> list[float]:
    """The 95 % paired bootstrap interval of the new backtest model's ROC-AUC minus the champion's."""
    scores = {"new": evidence.backtest.predict_raw(evidence.test_rows), "champion": champion_ranking}
    labels = evidence.test_rows[LABEL].to_numpy(dtype=np.float64)
    result = bootstrap_roc_auc(labels, scores, "new", evidence.resamples, evidence.seed)
    return [float(value) for value in result["gain_over"]["champion"]]


def promotes(interval: list[float], min_gain: float) -> bool:
    """Only a gain whose whole interval lies above `min_gain` is evidence; an interval that reaches it is noise."""
    return interval[0] > min_gain


def _champion_backtest(champion: Any) -> ChurnModel | None:
    """The backtest model logged by the champion's run, or None when it has none (or it cannot be loaded)."""
    if champion is None or champion.run_id is None:
        return None
    try:
        folder = mlflow.artifacts.download_artifacts(run_id=champion.run_id, artifact_path=BACKTEST_ARTIFACT)
        return load_model(Path(folder))
    except (MlflowException, OSError, ModelFileError) as error:
        log.warning("the champion's backtest model cannot be read: %s", error)
        return None


def _log_search_trials(experiment_id: str, search: dict[str, Any] | None) -> None:
    """Each trial of the model's hyperparameter search (train.search_trials) as a run nested in the active one."""
    for trial in (search or {}).get("trials", []):
        name = f"search trial {trial['number']}"
        with mlflow.start_run(experiment_id=experiment_id, run_name=name, nested=True):
            mlflow.set_tag("best_trial", str(trial["number"] == search["best_trial"]).lower())  # type: ignore[index]
            mlflow.log_params(trial["params"])
            mlflow.log_metrics(
                {"validation_log_loss": trial["validation_log_loss"], "best_iteration": trial["best_iteration"]}
            )


def _log_validation_curve(client: MlflowClient, run_id: str, curve: dict[str, list[float]]) -> None:
    points = [
        Metric(key=f"validation/{name}", value=float(value), timestamp=0, step=step)
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


def _version_by_alias(client: MlflowClient, model_name: str, alias: str) -> Any:
    try:
        return client.get_model_version_by_alias(model_name, alias)
    except MlflowException:
        return None
