"""The training recipe: LightGBM with early stopping on held-out customers, then calibration on them.

`fit_recipe(frame, deploy_at, ...)` fits what could have been fitted at `deploy_at`. The train stage runs it twice:
at the test cutoff T (the backtest model, evaluated on T's rows it never saw) and at the data's as-of time (the
current model, fitted on every cutoff whose label is known by then, that scores today).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.blocks import from_block
from features.build import LABEL
from models.artifact import ChurnModel
from models.calibration import choose_calibration
from models.dataset import ModelInput, model_input_from, to_matrix
from models.drift import feature_profile
from models.season_anchor import logit_shift, outside_season, season_to_learn
from models.split import Split, held_out_customers, label_known_by, split_for_deployment

log = logging.getLogger(__name__)

# More bad experiences, worse reviews or an open complaint never lower the predicted risk: the synthetic shop and
# the studies behind it agree on the direction, and a model that says otherwise cannot be explained to the service
# team. Directions: +1 risk rises with the feature, -1 it falls.
BAD_EXPERIENCE_DIRECTIONS: dict[str, int] = {
    **{
        f"{kind}_{window}": 1
        for kind in (
            "late_delivery",
            "retailer_cancellation",
            "retailer_return",
            "low_review",
            "complaint",
            "bad_experiences",
        )
        for window in ("90d", "365d", "total")
    },
    "late_days_max_365d": 1,
    "bad_order_share": 1,
    "last_order_went_wrong": 1,
    "tickets_open": 1,
    "review_score_mean": -1,
    "review_score_min": -1,
    "review_score_last": -1,
    # "Never" is encoded as the least risky value of these two (models.dataset), so they can be constrained too.
    "days_since_last_bad_experience": -1,
    "last_bad_experience_recovered": -1,
}


@dataclass(frozen=True)
class TrainParams:
    """The `train` block of params.yaml."""

    num_leaves: int = 31
    learning_rate: float = 0.1
    min_child_samples: int = 200
    feature_fraction: float = 0.8
    bagging_fraction: float = 0.8
    lambda_l2: float = 1.0
    max_rounds: int = 2000
    early_stopping_rounds: int = 20
    # Share of customers held out from training for early stopping and calibration.
    validation_share: float = 0.2
    # Above this many labelled rows, fit on a stable sample of customers (all their cutoffs); null = no limit.
    max_training_rows: int | None = 1_000_000
    calibration: Literal["auto", "isotonic", "sigmoid"] = "auto"
    monotone_bad_experience: bool = True
    # Features (or whole groups) left out of the model, e.g. for an ablation; the default uses every feature.
    exclude_features: tuple[str, ...] = ()
    # Export-time snapshots (e.g. "orders.status", "customers.loyalty_member") the model may read undated. A
    # cancellation is mostly decided within days of the order, so an undated status misplaces only orders placed
    # just before a cutoff; a loyalty flag or an address can be years younger than the cutoff, and members churn
    # less, so the model would learn the future: left out unless named here.
    allowed_snapshots: tuple[str, ...] = ("orders.status",)
    num_threads: int = 2
    seed: int = 42
    # The backtest's test cutoff (a labelled cutoff of the feature table, "YYYY-MM-DD"); null = the last labelled
    # one. Set it to compare schedules (weekly or monthly fitting cutoffs) on the same test customers, or to backtest
    # at an earlier cutoff, so that nothing is tuned to one.
    test_cutoff: str | None = None
    # Where the fitting cutoffs hold the deployment's calendar month in fewer than two years (models/season_anchor.py),
    # the probabilities' level (log-odds, ranking unchanged) is moved. last_year (default): by the miss, at the
    # fitting cutoffs a year before deployment, of the same recipe fitted without their labels, when the cutoffs
    # left for that fit lie on both sides of them; the shift is part of the model's calibration, so scoring applies
    # it too. auto: evaluate moves the backtest's mean at the test cutoff to the buy-till-you-die churn rate there.
    # never: no move.
    season_anchor: Literal["last_year", "auto", "never"] = "last_year"
    # Trials of a hyperparameter search (Optuna TPE, seeded; models/search.py) scored on the validation customers of
    # the fitting cutoffs, never the test cutoff; the chosen params replace those above. 0 = off.
    search_trials: int = 0
    # Too little data: below these the out-of-time numbers mean nothing. `stop` refuses to train; `warn` trains and
    # every report and risk list from the model says so.
    min_fit_rows: int = 1000
    min_test_customers: int = 300
    min_test_churners: int = 50
    min_test_non_churners: int = 50
    too_little_data: Literal["stop", "warn"] = "stop"

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainParams:
        lists = {name: tuple(values.get(name) or ()) for name in ("exclude_features", "allowed_snapshots")}
        params = from_block(cls, {**values, **lists}, "train")
        if params.calibration not in ("auto", "isotonic", "sigmoid"):
            raise ValueError(f"train.calibration must be auto, isotonic or sigmoid, not {params.calibration!r}")
        if params.max_rounds <= 0 or params.early_stopping_rounds <= 0 or params.num_threads <= 0:
            raise ValueError("train.max_rounds, early_stopping_rounds and num_threads must be positive")
        if params.season_anchor not in ("last_year", "auto", "never"):
            raise ValueError(f"train.season_anchor must be last_year, auto or never, not {params.season_anchor!r}")
        if params.search_trials < 0:
            raise ValueError(f"train.search_trials must be 0 (no search) or more, not {params.search_trials}")
        return params


def data_shortfalls(
    frame: pd.DataFrame, test_cutoff: pd.Timestamp, horizon_days: int, params: TrainParams
) -> list[str]:
    """What the labelled rows lack for a meaningful model: rows to fit (labels known at the test cutoff), and
    customers, churners and non-churners at the test cutoff; each said with the param that sets its minimum."""
    fit_rows = int(label_known_by(frame["cutoff"], horizon_days, test_cutoff).sum())
    test_labels = frame.loc[frame["cutoff"] == test_cutoff, LABEL]
    counts = {
        "min_fit_rows": (fit_rows, "rows to fit"),
        "min_test_customers": (len(test_labels), "customers at the test cutoff"),
        "min_test_churners": (int((test_labels == 1).sum()), "churners at the test cutoff"),
        "min_test_non_churners": (int((test_labels == 0).sum()), "customers who stayed at the test cutoff"),
    }
    return [
        f"{count:,} {what} (train.{name} = {getattr(params, name):,})"
        for name, (count, what) in counts.items()
        if count < getattr(params, name)
    ]


def lightgbm_params(params: TrainParams, features: tuple[str, ...]) -> dict[str, Any]:
    """Booster params; deterministic (fixed threads and seeds, one histogram layout) so a rerun is byte-identical."""
    booster_params: dict[str, Any] = {
        "objective": "binary",
        "metric": ["binary_logloss", "auc"],
        "learning_rate": params.learning_rate,
        "num_leaves": params.num_leaves,
        "min_child_samples": params.min_child_samples,
        "feature_fraction": params.feature_fraction,
        "bagging_fraction": params.bagging_fraction,
        "bagging_freq": 1,
        "lambda_l2": params.lambda_l2,
        "num_threads": params.num_threads,
        "seed": params.seed,
        "deterministic": True,
        # Column-wise histograms: the same trees as row-wise on these features at about 60 % of the time on two
        # cores (benchmarks/README.md, issue 16); forcing one layout keeps deterministic runs deterministic.
        "force_col_wise": True,
        "verbosity": -1,
    }
    if params.monotone_bad_experience:
        booster_params["monotone_constraints"] = [BAD_EXPERIENCE_DIRECTIONS.get(name, 0) for name in features]
        booster_params["monotone_constraints_method"] = "intermediate"
    return booster_params


def fit_recipe(
    frame: pd.DataFrame,
    deploy_at: pd.Timestamp,
    horizon_days: int,
    params: TrainParams,
    data_hash: str,
    available_features: tuple[str, ...],
    data_warning: str | None = None,
) -> tuple[ChurnModel, Split]:
    """The model that could have been fitted at deploy_at, with the split it was fitted on.

    `available_features` are those whose source the data provided (the others are all missing); scoring refuses
    data that lacks one of them. `data_warning` (too little data) travels with the model into every report."""
    split = split_for_deployment(frame, deploy_at, horizon_days, params.validation_share, params.seed)
    train_rows, validation_rows = frame.iloc[split.train], frame.iloc[split.validation]
    model_input = model_input_from(train_rows, params.exclude_features)
    log.info(
        "fitting for deployment at %s: %d training rows, %d validation rows, %d features",
        deploy_at.date(),
        len(train_rows),
        len(validation_rows),
        len(model_input.features),
    )
    train_matrix = to_matrix(train_rows, model_input)
    params, search = searched_params(params, train_matrix, train_rows, validation_rows, model_input)
    booster, curve = fit_booster(
        train_matrix,
        train_rows[LABEL].to_numpy(),
        to_matrix(validation_rows, model_input),
        validation_rows[LABEL].to_numpy(),
        params,
    )
    raw = np.asarray(booster.predict(to_matrix(validation_rows, model_input)), dtype=np.float64)
    halves = held_out_customers(validation_rows["customer_id"], 0.5, params.seed + 1)
    calibration, calibration_losses = choose_calibration(
        raw, validation_rows[LABEL].to_numpy(), halves, params.calibration
    )
    log.info("best iteration %d; calibration %s (cross-fitted log loss %s)", booster.best_iteration,
             calibration.method, {k: round(v, 5) for k, v in calibration_losses.items()})  # fmt: skip
    season_level: dict[str, Any] | None = None
    if params.season_anchor == "last_year":
        season_level = last_year_level(frame, split, params, data_hash, available_features)
        calibration = replace(calibration, shift=season_level.get("logit_shift", 0.0))
    training = {
        "deploy_at": deploy_at.isoformat(),
        "horizon_days": horizon_days,
        "fitting_cutoffs": sorted({c.date().isoformat() for c in frame["cutoff"].iloc[split.fitting]}),
        "train_rows": len(train_rows),
        "validation_rows": len(validation_rows),
        "train_churn_rate": float(train_rows[LABEL].mean()),
        "best_iteration": booster.best_iteration,
        "validation_curve": curve,
        "calibration_log_loss": calibration_losses,
        "data_sha256": data_hash,
        "available_features": sorted(available_features),
        "feature_profile": feature_profile(train_matrix, train_rows["cutoff"]),
        "params": asdict(params),
        "data_warning": data_warning,
        **({"search": search} if search is not None else {}),
        **({"season_level": season_level} if season_level is not None else {}),
    }
    return ChurnModel(booster, model_input, calibration, training), split


def last_year_level(
    frame: pd.DataFrame, split: Split, params: TrainParams, data_hash: str, available_features: tuple[str, ...]
) -> dict[str, Any]:
    """train.season_anchor: last_year (models/season_anchor.py): the log-odds shift, and how it was found, or why
    none applies. `params` are those the deployed model was fitted with (a search's choice, if any), used as they
    are for the second fit."""
    deploy_at, horizon_days = split.deploy_at, split.horizon_days
    fitting = frame.iloc[split.fitting]
    season, reason = season_to_learn(fitting["cutoff"].unique(), deploy_at, horizon_days)
    info: dict[str, Any] = {"setting": "last_year", "applied": False}
    if not season:
        return {**info, "reason": reason}
    # season_to_learn found fitting cutoffs on both sides of the season outside its label windows: this fit has rows.
    unseen = frame[outside_season(frame["cutoff"], season, horizon_days)].reset_index(drop=True)
    held_out, _ = fit_recipe(unseen, deploy_at, horizon_days, replace(params, season_anchor="never", search_trials=0),
                             data_hash, available_features)  # fmt: skip
    season_rows = fitting[fitting["cutoff"].isin(season)]
    observed = float(season_rows[LABEL].mean())
    predicted = held_out.predict(season_rows)
    shift = logit_shift(predicted, observed)
    log.info("season level: a year before, the recipe without that season predicted %.3f against %.3f observed; "
             "shift %+.3f in log-odds", float(np.mean(predicted)), observed, shift)  # fmt: skip
    return {
        **info,
        "applied": True,
        "season_cutoffs": [c.date().isoformat() for c in season],
        "season_rows": len(season_rows),
        "held_out_fitting_cutoffs": len(held_out.training["fitting_cutoffs"]),
        "observed": observed,
        "predicted": float(np.mean(predicted)),
        "logit_shift": shift,
    }


def searched_params(
    params: TrainParams,
    train_matrix: pd.DataFrame,
    train_rows: pd.DataFrame,
    validation_rows: pd.DataFrame,
    model_input: ModelInput,
) -> tuple[TrainParams, dict[str, Any] | None]:
    """`params` as given, or with train.search_trials > 0 the params the search chose on the validation customers
    (models/search.py) and the record of its trials."""
    if params.search_trials == 0:
        return params, None
    from models.search import search_params

    valid_matrix = to_matrix(validation_rows, model_input)
    train_y, valid_y = train_rows[LABEL].to_numpy(), validation_rows[LABEL].to_numpy()

    def validation_loss(candidate: TrainParams) -> tuple[float, int]:
        booster, curve = fit_booster(train_matrix, train_y, valid_matrix, valid_y, candidate)
        return float(curve["binary_logloss"][booster.best_iteration - 1]), int(booster.best_iteration)

    return search_params(params, validation_loss)


def fit_booster(
    train_x: pd.DataFrame, train_y: np.ndarray, valid_x: pd.DataFrame, valid_y: np.ndarray, params: TrainParams
) -> tuple[lgb.Booster, dict[str, list[float]]]:
    """Boost until the validation log loss stops improving; returns the booster (trimmed to its best round) and
    the validation curve per round."""
    booster_params = lightgbm_params(params, tuple(train_x.columns))
    train_set = lgb.Dataset(train_x, train_y, free_raw_data=True)
    valid_set = lgb.Dataset(valid_x, valid_y, reference=train_set, free_raw_data=True)
    history: dict[str, Any] = {}
    booster = lgb.train(
        booster_params,
        train_set,
        num_boost_round=params.max_rounds,
        valid_sets=[valid_set],
        valid_names=["validation"],
        callbacks=[
            lgb.early_stopping(params.early_stopping_rounds, first_metric_only=True, verbose=False),
            lgb.record_evaluation(history),
            lgb.log_evaluation(period=100),
        ],
    )
    # The saved text model holds the best round only, so predictions need no num_iteration argument.
    trimmed = lgb.Booster(model_str=booster.model_to_string(num_iteration=booster.best_iteration))
    trimmed.best_iteration = booster.best_iteration
    return trimmed, {metric: list(values) for metric, values in history["validation"].items()}
