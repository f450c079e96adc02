"""Stage `evaluate`: the backtest model and the baselines on the test cutoff, plots, and the MLflow run that logs
and registers the current model with these out-of-time figures."""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from features.blocks import from_block
from features.build import LABEL, feature_groups
from models.artifact import ChurnModel, load_model
from models.baselines import FITTING_FEATURES, Scores, buy_till_you_die, recency_rule, rfm_logistic, warm_up_btyd
from models.bootstrap import bootstrap_roc_auc
from models.dataset import labelled, read_cutoff_rows, read_labelled_rows
from models.evaluate import (
    HEADLINE_MODEL_METRICS,
    METHODS,
    MODEL,
    OBSERVABLE_ORACLE,
    ORACLE,
    EvaluateParams,
    comparison,
    evaluate_methods,
    headline,
    joined_evaluations,
)
from models.plots import (
    calibration_plot_table,
    curve_figure,
    curve_tables,
    feature_importance_figure,
    shap_summary_figure,
)
from models.season_anchor import anchored, logit_shift, thin_months
from models.split import split_for_deployment
from pipelines.params import block, load_params
from pipelines.provenance import dvc_experiment, dvc_output_hash, git_commit, run_name
from pipelines.sources.synthetic import SyntheticShopParams, true_churn_probability
from pipelines.sources.synthetic_oracle import COLUMNS_READ, DROPOUT_DRAWS, observable_churn_probability
from pipelines.stages.generate import TRUTH_CUSTOMERS, TRUTH_PARAMS

if TYPE_CHECKING:  # MLflow loads only when a run is tracked
    from models.tracking import Evidence, RunRecord

log = logging.getLogger(__name__)

SHAP_PLOT_ROWS = 20_000


@dataclass(frozen=True)
class EvaluateOutputs:
    """`metrics`: the headline numbers (DVC metrics); `evaluation`: the full detail (not a DVC metric)."""

    metrics: Path
    evaluation: Path
    plots: Path
    figures: Path


def run(
    params_path: Path,
    features_path: Path,
    models: tuple[Path, Path],
    truth_dir: Path,
    outputs: EvaluateOutputs,
    track: bool = True,
    validated_dir: Path | None = None,
) -> dict[str, Any]:
    """`models` is (backtest, current): the backtest model is evaluated, the current one is logged with its
    figures. `validated_dir` (the validated tables) feeds the observable oracle beside the latent one when
    evaluate.oracle is true. Returns the full evaluation written to `outputs.evaluation`."""
    params = load_params(params_path)
    settings = from_block(EvaluateParams, block(params, "evaluate"), "evaluate")
    with ThreadPoolExecutor(max_workers=1) as background:
        # pymc-marketing takes tens of seconds to import (PyMC, PyTensor, ArviZ): begun now, it overlaps reading
        # the features, whose Parquet decoding releases the GIL. The baselines wait for it if it is not done.
        background.submit(warm_up_btyd)
        metrics, test_rows, backtest, figures = evaluate_backtest(
            settings, features_path, models[0], truth_dir, validated_dir, outputs
        )
    write_json(outputs.evaluation, metrics)
    write_json(outputs.metrics, headline(metrics))
    if track:
        from models.tracking import Evidence

        evidence = Evidence(
            backtest, models[0], test_rows, settings.bootstrap_resamples, backtest.training["params"]["seed"]
        )
        record = track_run(params, evidence, models[1], metrics, outputs, features_path, figures)
        log.info("registered %s as %s: %s", record.model_uri, record.alias, record.promotion.reason)
    return metrics


def evaluate_backtest(
    settings: EvaluateParams,
    features_path: Path,
    backtest_folder: Path,
    truth_dir: Path,
    validated_dir: Path | None,
    outputs: EvaluateOutputs,
) -> tuple[dict[str, Any], pd.DataFrame, ChurnModel, list[Path]]:
    """The backtest model and every other method on the test cutoff: the evaluation (metrics, comparison, bootstrap
    intervals), the test rows and the model; the plots (`write_plots`) are written on the way, and their figures'
    paths returned."""
    backtest = load_model(backtest_folder)
    training = backtest.training
    # All of the test cutoff's rows first: the observable oracle needs only their customers, so it starts before
    # the (larger) fitting rows are read.
    test_cutoff = pd.Timestamp(training["deploy_at"])
    test_rows = labelled(read_cutoff_rows(features_path, test_cutoff))
    if test_rows.empty:
        raise ValueError(f"no labelled rows at the backtest model's test cutoff {test_cutoff.date()}")
    log.info("evaluating on the test cutoff %s: %d customers", test_cutoff.date(), len(test_rows))
    with ThreadPoolExecutor(max_workers=1) as background:
        # The observable oracle is numpy work that releases the GIL, the baselines' fits mostly Python (PyTensor's
        # graph rewrites): on two cores they overlap. Its scores join the others after them, in the same place.
        oracle = (
            background.submit(
                observable_oracle,
                truth_dir,
                validated_dir,
                test_rows["customer_id"].to_numpy(),  # the thread's own copy: it shares no frame with this one
                test_cutoff,
                training["horizon_days"],
            )
            if settings.oracle and validated_dir is not None
            else None
        )
        # The rows the backtest model was fitted on (the same sample of customers, if any; only what the baselines
        # fit on).
        frame = read_labelled_rows(
            features_path, training["params"]["max_training_rows"], training["params"]["seed"], FITTING_FEATURES
        )
        methods, skipped = method_scores(backtest, frame, test_rows, truth_dir if settings.oracle else None)
        # While the observable oracle computes: the plots (they show METHODS, which it is not one of) and every
        # other method's metrics; its own join them after, in the same place.
        figures = write_plots(backtest, test_rows, methods, outputs)
        evaluation = evaluate_methods(test_rows, methods, settings.contact_k)
        if oracle is not None:
            methods[OBSERVABLE_ORACLE] = oracle.result()
            evaluation = joined_evaluations(
                evaluation,
                evaluate_methods(test_rows, {OBSERVABLE_ORACLE: methods[OBSERVABLE_ORACLE]}, settings.contact_k),
            )
        elif settings.oracle:
            skipped[OBSERVABLE_ORACLE] = "no validated tables given (churn evaluate --validated)"
    metrics = {
        "test_cutoff": test_cutoff.date().isoformat(),
        "horizon_days": backtest.training["horizon_days"],
        "contact_k": settings.contact_k,
        "comparison": comparison(evaluation["overall"]),
        # Features the model used per group: those the data provides (an orders-only source has no review or
        # ticket features), less any train.exclude_features.
        "features_per_group": {
            group: len(names["available"])
            for group, names in feature_groups(
                set(backtest.training["available_features"]) & set(backtest.model_input.features)
            ).items()
        },
        "skipped": skipped,
        # What each baseline fitted: the RFM regression's chosen C, the BTYD models' parameters.
        "baseline_fits": {name: scores.fitted for name, scores in methods.items() if scores.fitted},
        # Set when the model was trained on too little data (train.too_little_data: warn): the figures mean little.
        "data_warning": training.get("data_warning"),
        **evaluation,
    }
    if settings.bootstrap_resamples > 0:
        log.info("bootstrap: %d paired resamples of %d customers", settings.bootstrap_resamples, len(test_rows))
        metrics["bootstrap"] = bootstrap_roc_auc(
            test_rows[LABEL].to_numpy(),
            {name: scores.ranking for name, scores in methods.items()},
            MODEL,
            settings.bootstrap_resamples,
            training["params"]["seed"],
            gap_from=metrics["comparison"].get("best_baseline"),
            ceilings=(OBSERVABLE_ORACLE, ORACLE),
        )
    return metrics, test_rows, backtest, figures


def method_scores(
    model: ChurnModel, frame: pd.DataFrame, test_rows: pd.DataFrame, truth_dir: Path | None
) -> tuple[dict[str, Scores], dict[str, str]]:
    """Every method's scores on the test rows; baselines are fitted on the model's own fitting rows."""
    training = model.training
    split = split_for_deployment(
        frame,
        pd.Timestamp(training["deploy_at"]),
        training["horizon_days"],
        training["params"]["validation_share"],
        training["params"]["seed"],
    )
    fitting_rows = frame.iloc[split.fitting]
    raw = model.predict_raw(test_rows)
    methods = {
        # The calibrated probability of the same raw scores (`predict`, without predicting twice).
        MODEL: Scores(ranking=raw, probability=model.calibration.apply(raw)),
        "recency_rule": recency_rule(fitting_rows, test_rows),
        "rfm_logistic": rfm_logistic(frame.iloc[split.train], frame.iloc[split.validation], test_rows),
    }
    skipped: dict[str, str] = {}
    for kind in ("bg_nbd", "pareto_nbd"):
        try:
            methods[kind] = buy_till_you_die(test_rows, training["horizon_days"], training["params"]["seed"], kind)
        except ImportError as error:  # BTYDUnavailable, or pymc-marketing missing altogether
            log.warning("skipping the buy-till-you-die baseline %s: %s", kind, error)
            skipped[kind] = str(error)
    methods[MODEL] = with_season_anchor(model, methods)
    if truth_dir is None:
        skipped[ORACLE] = "evaluate.oracle is false"
    else:
        probability = oracle_probability(truth_dir, test_rows, training["horizon_days"])
        methods[ORACLE] = Scores(ranking=probability, probability=probability)
    return methods, skipped


def observable_oracle(
    truth_dir: Path, validated_dir: Path, customer_ids: np.ndarray, cutoff: pd.Timestamp, horizon_days: int
) -> Scores:
    """The synthetic shop's observable oracle (pipelines/sources/synthetic_oracle.py) for the test customers at the
    test cutoff, from the validated tables the features were built from."""
    shop_params = SyntheticShopParams.from_dict(json.loads((truth_dir / TRUTH_PARAMS).read_text()))
    tables = read_tables(validated_dir, COLUMNS_READ)
    started = time.perf_counter()
    probability = observable_churn_probability(tables, customer_ids, cutoff, horizon_days, shop_params).to_numpy()
    seconds = time.perf_counter() - started
    log.info("observable oracle: %d customers, %d dropout draws, %.1f s", len(probability), DROPOUT_DRAWS, seconds)
    # (the time goes to the log only: evaluation.json stays the same from run to run)
    return Scores(ranking=probability, probability=probability, fitted={"dropout_draws": DROPOUT_DRAWS})


def read_tables(folder: Path, columns: dict[str, tuple[str, ...]]) -> dict[str, pd.DataFrame]:
    """`columns` of the contract tables in `folder` (Parquet), of those present; `orders` must be."""
    if not (folder / "orders.parquet").is_file():
        raise ValueError(f"no orders.parquet in {folder}: pass the validated tables as --validated")
    return {
        name: pd.read_parquet(folder / f"{name}.parquet", columns=list(names))
        for name, names in columns.items()
        if (folder / f"{name}.parquet").is_file()
    }


def with_season_anchor(model: ChurnModel, methods: dict[str, Scores]) -> Scores:
    """The model's scores, its probabilities anchored to the buy-till-you-die churn rate at the test cutoff when its
    fitting cutoffs hold some calendar month in fewer than two years (train.season_anchor: auto; see
    models/season_anchor.py). The ranking is unchanged; what was done is recorded under `fitted`, as is, with
    last_year, the shift training put into the model's calibration."""
    scores = methods[MODEL]
    assert scores.probability is not None
    setting = model.training["params"].get("season_anchor", "never")
    if setting == "last_year":  # already in the model's calibration: what training found
        return Scores(scores.ranking, scores.probability, {"season_anchor": model.training["season_level"]})
    months = thin_months(model.training["fitting_cutoffs"])
    source = next((name for name in ("pareto_nbd", "bg_nbd") if name in methods), None)
    info: dict[str, Any] = {"setting": setting, "thin_months": months, "applied": False}
    if setting == "never" or not months or source is None:
        info["reason"] = (
            "train.season_anchor is never" if setting == "never"
            else "every month occurs in two or more years of fitting cutoffs" if not months
            else "no buy-till-you-die model ran (pymc-marketing missing)"
        )  # fmt: skip
        return Scores(scores.ranking, scores.probability, {"season_anchor": info})
    anchor_probability = methods[source].probability
    assert anchor_probability is not None
    target = float(np.mean(anchor_probability))
    shift = logit_shift(scores.probability, target)
    info.update(applied=True, anchor=source, target_rate=target, logit_shift=shift,
                mean_before=float(np.mean(scores.probability)))  # fmt: skip
    log.info("season anchor: months %s occur in one year of fitting cutoffs; mean prediction %.3f moved to %s's %.3f",
             months, info["mean_before"], source, target)  # fmt: skip
    return Scores(scores.ranking, anchored(scores.probability, shift), {"season_anchor": info})


def oracle_probability(truth_dir: Path, test_rows: pd.DataFrame, horizon_days: int) -> np.ndarray:
    """The generator's true P(no order in the horizon) for each test customer."""
    paths = (truth_dir / TRUTH_CUSTOMERS, truth_dir / TRUTH_PARAMS)
    if not all(path.is_file() for path in paths):
        raise ValueError(f"evaluate.oracle is true but {truth_dir} holds no ground truth; set it false for own data")
    shop_params = SyntheticShopParams.from_dict(json.loads(paths[1].read_text()))
    cutoff = pd.Timestamp(test_rows["cutoff"].iloc[0])
    truth = true_churn_probability(pd.read_parquet(paths[0]), cutoff, horizon_days, shop_params)
    probability = truth.reindex(test_rows["customer_id"]).to_numpy(dtype=np.float64)
    if np.isnan(probability).any():
        raise ValueError(
            f"the ground truth in {truth_dir} does not cover {int(np.isnan(probability).sum())} test customers: "
            "is the data synthetic? Set evaluate.oracle: false for your own data"
        )
    return probability


def write_plots(
    model: ChurnModel, test_rows: pd.DataFrame, methods: dict[str, Scores], outputs: EvaluateOutputs
) -> list[Path]:
    """The plot tables (DVC plots) and the figures; returns the figures' paths (the folder is shared with
    `impact`'s chart)."""
    labels = test_rows[LABEL].to_numpy()
    outputs.plots.mkdir(parents=True, exist_ok=True)
    tables = {**curve_tables(labels, methods, METHODS), "calibration": calibration_plot_table(labels, methods, METHODS)}
    for name, table in tables.items():
        table.to_csv(outputs.plots / f"{name}.csv", index=False)
        curve_figure(name, table, outputs.figures / f"{name}.png")
    importance = pd.Series(model.booster.feature_importance("gain"), index=model.booster.feature_name())
    feature_importance_figure(importance, outputs.figures / "feature_importance.png")
    # A summary plot reads the same from 20,000 customers as from a million; SHAP values cost ~10 predictions each.
    shown = test_rows.sample(min(len(test_rows), SHAP_PLOT_ROWS), random_state=0)
    shap_summary_figure(model.contributions(shown), model.matrix(shown), outputs.figures / "shap_summary.png")
    return [outputs.figures / f"{name}.png" for name in (*tables, "feature_importance", "shap_summary")]


def track_run(
    params: dict[str, Any],
    evidence: Evidence,
    current_folder: Path,
    metrics: dict[str, Any],
    outputs: EvaluateOutputs,
    features_path: Path,
    figures: list[Path],
) -> RunRecord:
    from models.tracking import log_run
    from models.tracking_settings import TrackingSettings

    settings = from_block(TrackingSettings, block(params, "mlflow"), "mlflow")
    current = load_model(current_folder)
    repo = Path.cwd()
    tags = {
        "git_commit": git_commit(repo),
        "dvc_features_md5": dvc_output_hash(repo / "dvc.lock", features_path.parent.as_posix()),
        "features_sha256": current.training["data_sha256"],
        "test_cutoff": metrics["test_cutoff"],
    }
    experiment = dvc_experiment()
    if experiment is not None:
        tags["dvc_experiment"] = experiment
    return log_run(
        settings,
        current,
        current_folder,
        evidence,
        params=run_params(params, evidence.backtest, current),
        metrics=mlflow_metrics(metrics),
        tags=tags,
        artifacts=[
            outputs.metrics,
            outputs.evaluation,
            outputs.plots,
            current_folder / "metadata.json",
        ],
        figures=figures,
        run_name=run_name("evaluate", datetime.now(UTC)),
    )


def run_params(params: dict[str, Any], backtest: ChurnModel, current: ChurnModel) -> dict[str, Any]:
    values = {f"train.{key}": value for key, value in backtest.training["params"].items()}
    values.update({f"features.{key}": value for key, value in block(params, "features").items()})
    values.update({f"evaluate.{key}": value for key, value in block(params, "evaluate").items()})
    values["backtest.best_iteration"] = backtest.training["best_iteration"]
    values["current.best_iteration"] = current.training["best_iteration"]
    values["current.calibration"] = current.calibration.method
    return values


def mlflow_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The headline numbers under their own names (MLflow's "Model metrics"), the rest in sections by prefix:
    model/<metric>, <method>/<metric> for the baselines and the oracle, cohort_<cohort>/<metric> for the model,
    bootstrap/<interval>_low|high and comparison/<value>."""
    flat: dict[str, Any] = dict(headline(metrics))
    model = metrics["overall"][MODEL]
    flat.update({f"model/{key}": value for key, value in model.items() if key not in HEADLINE_MODEL_METRICS})
    for method, values in metrics["overall"].items():
        if method != MODEL:
            flat.update({f"{method}/{key}": value for key, value in values.items()})
    for cohort, by_method in metrics["cohorts"].items():
        flat.update({f"cohort_{cohort}/{key}": value for key, value in by_method.get(MODEL, {}).items()})
    flat.update({f"comparison/{key}": value for key, value in metrics["comparison"].items()})
    bootstrap = metrics.get("bootstrap", {})
    intervals = {
        **{f"{method}_roc_auc": interval for method, interval in bootstrap.get("roc_auc", {}).items()},
        **{f"gain_over_{method}": interval for method, interval in bootstrap.get("gain_over", {}).items()},
        **{f"{oracle}_gap_closed": interval for oracle, interval in bootstrap.get("gap_closed", {}).items()},
    }
    for name, (low, high) in intervals.items():
        flat.update({f"bootstrap/{name}_low": low, f"bootstrap/{name}_high": high})
    return {
        key: float(value)
        for key, value in flat.items()
        if isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value)
    }


def write_json(path: Path, values: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_finite(values), indent=2, allow_nan=False) + "\n")


def _finite(value: Any) -> Any:
    """JSON has no NaN: an undefined metric (e.g. AUC of a cohort with one class) is written as null."""
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value
