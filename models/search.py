"""A hyperparameter search on the deployment-faithful split: Optuna's TPE sampler, seeded, scoring each candidate by
the validation customers' log loss at its early-stopping round.

The validation customers are those `fit_recipe` holds out of the fitting cutoffs, so the search sees no label the
deployment could not have seen and never the test cutoff. The first trial is the params as given, so the chosen
params are never worse on the validation customers than the defaults. Off by default (`train.search_trials: 0`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from models.train import TrainParams

log = logging.getLogger(__name__)

# The LightGBM params searched, and their ranges: (low, high, on a log scale).
SEARCH_SPACE: dict[str, tuple[float, float, bool]] = {
    "num_leaves": (8, 256, True),
    "learning_rate": (0.01, 0.2, True),
    "min_child_samples": (10, 2000, True),
    "feature_fraction": (0.4, 1.0, False),
    "bagging_fraction": (0.4, 1.0, False),
    "lambda_l2": (0.001, 100.0, True),
}
INTEGER_PARAMS = ("num_leaves", "min_child_samples")

# A candidate's (validation log loss at its best round, best round).
Objective = Callable[["TrainParams"], tuple[float, int]]


def search_params(params: TrainParams, objective: Objective) -> tuple[TrainParams, dict[str, Any]]:
    """`params.search_trials` trials of TPE (seeded with `params.seed`) over SEARCH_SPACE, the first being `params`
    itself; returns the params of the trial with the lowest validation log loss (the earliest of equal ones) and the
    record of every trial, for the model's metadata."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=params.seed))
    study.enqueue_trial({name: getattr(params, name) for name in SEARCH_SPACE})
    trials: list[dict[str, Any]] = []

    def run_trial(trial: optuna.Trial) -> float:
        suggested: dict[str, Any] = {name: _suggest(trial, name) for name in SEARCH_SPACE}
        candidate = replace(params, **suggested)
        loss, best_round = objective(candidate)
        trials.append(
            {
                "number": trial.number,
                "params": {name: getattr(candidate, name) for name in SEARCH_SPACE},
                "validation_log_loss": loss,
                "best_iteration": best_round,
            }
        )
        log.info("search trial %d: validation log loss %.5f at round %d, %s", trial.number, loss, best_round,
                 trials[-1]["params"])  # fmt: skip
        return loss

    study.optimize(run_trial, n_trials=params.search_trials, n_jobs=1)
    best: dict[str, Any] = min(trials, key=lambda trial: (trial["validation_log_loss"], trial["number"]))
    record = {
        "sampler": "TPE",
        "seed": params.seed,
        "objective": "validation_log_loss",
        "best_trial": best["number"],
        "best_params": best["params"],
        "trials": trials,
    }
    return replace(params, **best["params"]), record


def _suggest(trial: Any, name: str) -> float | int:
    low, high, log_scale = SEARCH_SPACE[name]
    if name in INTEGER_PARAMS:
        return int(trial.suggest_int(name, int(low), int(high), log=log_scale))
    return float(trial.suggest_float(name, low, high, log=log_scale))
