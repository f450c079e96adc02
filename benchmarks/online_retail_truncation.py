"""Left-truncated history on UCI Online Retail: does telling the model how much history the export holds, or
weighting the fitting rows, move the ranking at the spring test cutoff (issue 15)?

The export starts on 2009-12-01; a customer whose first order in the file falls in its first months was often a
customer before it (953 first orders in December 2009 against about 300 a month later on), so at the early fitting
cutoffs tenure and the all-history counts are cut short by the export's start. This script refits the backtest
model in process (models.train.fit_recipe, every default of params.yaml) on the feature tables an earlier
`benchmarks/online_retail.py --work FOLDER` run wrote, once per variant, and scores it on the same test customers:

- full: the recipe as it stands (the record's `full` run);
- history: + `export_history_days`, days from the first order in the data before the cutoff to the cutoff (one
  value per cutoff, known at it);
- history_offset: + that and `first_order_offset_days`, days from the export's first order to the customer's
  (history minus tenure: near 0, the customer's tenure is probably censored by the export's start);
- censored_flag: + `tenure_censored`, the customer's first order within CENSOR_DAYS of the export's first order;
- weight_history: fitting rows weighted min(1, history / 365): cutoffs with less than a year of export history count
  less;
- weight_recent: fitting rows weighted 0.5 ** (age / 180 days), age = deployment minus cutoff;
- weight_history_censored: weight_history and censored_flag together;
- drop_short_history: fitting rows at cutoffs with less than a year of export history weigh 0 (left out of the
  booster's fit; early stopping and calibration still see them);
- weight_history_table: weight_history with the history read from the feature table alone, as a train param
  would have to (at each cutoff, the cutoff minus the largest days_since_first_order of its rows, the earliest of
  those at it and before it: first orders to the minute, 0.32 days less history than from midnight). It was built as
  `train.short_history_weight_days` (branch issue-15-spring, commit cecdc09) and reverted: its gain is the
  booster's seed noise (--seeds).

The decision rule, fixed before any test number was read: a variant is kept only if the validation customers' log
loss (held-out customers of the fitting cutoffs, calibrated probabilities) is lower than `full`'s at both the spring
and the autumn backtest, over all fitting cutoffs and over the last 26 weeks of them. The test cutoffs' numbers are
reported for every variant, never used to choose.

`--seeds N` refits every variant with N other LightGBM seeds (bagging and feature fraction; the validation customers
stay those of train.seed): each fit's test ROC-AUC and its difference from `full` with the same seed (how far the
fitting noise alone moves them), and the seed average (the mean raw score of all the fits) against the best
baseline. Variants run into an existing `--out` are added to it.

    .venv/bin/python benchmarks/online_retail_truncation.py --work FOLDER --variants full weight_history --seeds 4
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import yaml
from generate_validate import REPO, machine_info
from sklearn.metrics import log_loss, roc_auc_score

sys.path.insert(0, str(REPO))
import models.train as training
from features.build import LABEL
from models.baselines import buy_till_you_die, recency_rule, rfm_logistic
from models.bootstrap import bootstrap_roc_auc
from models.dataset import ModelInput, labelled, read_cutoff_rows, read_labelled_rows
from models.metrics import score_metrics
from models.split import split_for_deployment

# test cutoff -> the weekly grid folder of the online_retail.py run that holds it
CUTOFFS = {"2011-05-27": "grid_7_2010-03-05", "2011-08-25": "grid_7_2010-03-04", "2011-02-24": "grid_7_2010-03-04"}
CENSOR_DAYS = 30
YEAR_DAYS = 365.0
HALF_LIFE_DAYS = 180.0
RECENT_WEEKS = 26
RESAMPLES = 1000
PACKAGES = ("pandas", "lightgbm", "scikit-learn", "pymc-marketing")
VARIANTS: dict[str, tuple[tuple[str, ...], str | None]] = {
    "full": ((), None),
    "history": (("export_history_days",), None),
    "history_offset": (("export_history_days", "first_order_offset_days"), None),
    "censored_flag": (("tenure_censored",), None),
    "weight_history": ((), "history"),
    "weight_recent": ((), "recent"),
    "weight_history_censored": (("tenure_censored",), "history"),
    "drop_short_history": ((), "drop"),
    "weight_history_table": ((), "table"),
}


def with_truncation_features(frame: pd.DataFrame, export_start: pd.Timestamp) -> pd.DataFrame:
    """The candidate columns, from the cutoff and the customer's tenure (days since the first order) alone."""
    history = (frame["cutoff"] - export_start).dt.days.astype("float64")
    offset = history - frame["days_since_first_order"].astype("float64")
    return frame.assign(
        export_history_days=history,
        first_order_offset_days=offset,
        tenure_censored=(offset <= CENSOR_DAYS).astype("float64"),
    )


def row_weights(kind: str | None, cutoffs: np.ndarray, export_start: pd.Timestamp, deploy_at: pd.Timestamp) -> Any:
    if kind is None:
        return None
    cutoffs = pd.DatetimeIndex(cutoffs)
    if kind == "history":
        return np.minimum(1.0, (cutoffs - export_start).days.to_numpy() / YEAR_DAYS)
    if kind == "table":
        history = pd.Series(cutoffs).map(TABLE_HISTORY_DAYS).to_numpy(dtype=np.float64)
        return np.minimum(1.0, history / YEAR_DAYS)
    if kind == "drop":
        return ((cutoffs - export_start).days.to_numpy() >= YEAR_DAYS).astype("float64")
    return 0.5 ** ((deploy_at - cutoffs).days.to_numpy() / HALF_LIFE_DAYS)


def patched(extra: tuple[str, ...], weight: str | None, export_start: pd.Timestamp) -> Callable[[], None]:
    """Point models.train at a model input with `extra` columns and a booster fit with row weights; returns the undo."""
    originals = (training.model_input_from, training.to_matrix, training.fit_booster)
    model_input_from, to_matrix, fit_booster = originals

    def input_with_extra(rows: pd.DataFrame, exclude: Any = ()) -> ModelInput:
        base = model_input_from(rows, exclude)
        return ModelInput(features=(*base.features, *extra), categories=base.categories)

    def matrix_with_cutoffs(rows: pd.DataFrame, model_input: ModelInput) -> pd.DataFrame:
        matrix = to_matrix(rows, model_input)
        matrix.attrs["cutoff"] = rows["cutoff"].to_numpy()
        matrix.attrs["deploy_at"] = DEPLOY_AT[0]
        return matrix

    def weighted_booster(train_x: pd.DataFrame, train_y: np.ndarray, valid_x: pd.DataFrame, valid_y: np.ndarray,
                         params: training.TrainParams) -> tuple[lgb.Booster, dict[str, list[float]]]:  # fmt: skip
        weights = row_weights(weight, train_x.attrs["cutoff"], export_start, train_x.attrs["deploy_at"])
        if weights is None:
            return fit_booster(train_x, train_y, valid_x, valid_y, params)
        original_dataset = lgb.Dataset

        def dataset(data: Any, label: Any = None, **kwargs: Any) -> lgb.Dataset:
            if data is train_x:  # the training rows get their weights; the validation set stays unweighted
                kwargs["weight"] = weights
            return original_dataset(data, label, **kwargs)

        lgb.Dataset = dataset  # type: ignore[misc,assignment]
        try:
            return fit_booster(train_x, train_y, valid_x, valid_y, params)
        finally:
            lgb.Dataset = original_dataset  # type: ignore[misc]

    training.model_input_from = input_with_extra  # type: ignore[assignment]
    training.to_matrix = matrix_with_cutoffs  # type: ignore[assignment]
    training.fit_booster = weighted_booster

    def undo() -> None:
        training.model_input_from, training.to_matrix, training.fit_booster = originals

    return undo


DEPLOY_AT: list[pd.Timestamp] = [pd.Timestamp("1970-01-01")]
# cutoff -> days of history before it, read from the feature table (weight_history_table)
TABLE_HISTORY_DAYS: dict[pd.Timestamp, float] = {}


def table_history_days(frame: pd.DataFrame) -> dict[pd.Timestamp, float]:
    """Per cutoff, the cutoff minus the earliest first order seen at it or any earlier cutoff (point in time)."""
    tenure = pd.to_timedelta(frame["days_since_first_order"].astype("float64"), unit="D")
    earliest = (frame["cutoff"] - tenure).groupby(frame["cutoff"]).min().sort_index().cummin()
    return {cutoff: (cutoff - start).total_seconds() / 86_400.0 for cutoff, start in earliest.items()}


def baseline_scores(frame: pd.DataFrame, test_rows: pd.DataFrame, deploy_at: pd.Timestamp, horizon: int,
                    params: training.TrainParams) -> dict[str, np.ndarray]:  # fmt: skip
    split = split_for_deployment(frame, deploy_at, horizon, params.validation_share, params.seed)
    scores = {
        "recency_rule": recency_rule(frame.iloc[split.fitting], test_rows).ranking,
        "rfm_logistic": rfm_logistic(frame.iloc[split.train], frame.iloc[split.validation], test_rows).ranking,
    }
    for kind in ("bg_nbd", "pareto_nbd"):
        scores[kind] = buy_till_you_die(test_rows, horizon, params.seed, kind).ranking
    return scores


def validation_losses(model: Any, frame: pd.DataFrame, split: Any) -> dict[str, float]:
    rows = frame.iloc[split.validation]
    probability = model.predict(rows)
    labels = rows[LABEL].to_numpy()
    last = rows["cutoff"] >= rows["cutoff"].max() - pd.Timedelta(weeks=RECENT_WEEKS)
    return {
        "valid_log_loss": float(log_loss(labels, probability)),
        "valid_auc": float(roc_auc_score(labels, probability)),
        "valid_recent_log_loss": float(log_loss(labels[last], probability[last])),
        "valid_recent_auc": float(roc_auc_score(labels[last], probability[last])),
    }


def booster_seed(offset: int) -> Callable[[], None]:
    """LightGBM's own seed (bagging, feature fraction) moved by `offset`; the validation customers, drawn with
    train.seed, stay the same. Returns the undo."""
    original = training.lightgbm_params

    def seeded(params: training.TrainParams, features: tuple[str, ...]) -> dict[str, Any]:
        return {**original(params, features), "seed": params.seed + offset}

    training.lightgbm_params = seeded

    def undo() -> None:
        training.lightgbm_params = original

    return undo


def seed_spread(frame: pd.DataFrame, test_rows: pd.DataFrame, deploy_at: pd.Timestamp, horizon: int,
                params: training.TrainParams, variants: list[str], seeds: int, export_start: pd.Timestamp,
                first_raw: dict[str, np.ndarray], best: tuple[str, np.ndarray]) -> dict[str, Any]:  # fmt: skip
    """Each variant's test ROC-AUC, and its difference from `full` fitted with the same booster seed, for booster
    seeds 1..seeds: how far the fitting noise alone moves them. And the seed average: the mean raw score over the
    train.seed fit (`first_raw`) and these, against the best baseline (`best`: name, ranking)."""
    labels = test_rows[LABEL].to_numpy()
    aucs: dict[str, list[float]] = {name: [] for name in variants}
    raws: dict[str, list[np.ndarray]] = {name: [first_raw[name]] for name in variants}
    for offset in range(1, seeds + 1):
        for name in variants:
            undo_seed = booster_seed(offset)
            extra, weight = VARIANTS[name]
            try:
                undo = patched(extra, weight, export_start)
                try:
                    model, _ = training.fit_recipe(frame, deploy_at, horizon, params, "explore", ())
                finally:
                    undo()
            finally:
                undo_seed()
            raws[name].append(model.predict_raw(test_rows))
            aucs[name].append(float(roc_auc_score(labels, raws[name][-1])))
            print(deploy_at.date(), "seed offset", offset, name, round(aucs[name][-1], 4), flush=True)
    result: dict[str, Any] = {"booster_seed_offsets": list(range(1, seeds + 1))}
    for name, values in aucs.items():
        spread = round(float(np.std(values, ddof=1)), 4) if len(values) > 1 else None
        entry: dict[str, Any] = {"roc_auc": [round(v, 4) for v in values], "mean": round(float(np.mean(values)), 4),
                                 "sd": spread}  # fmt: skip
        if name != "full":
            gaps = np.subtract(values, aucs["full"])
            entry.update(minus_full=[round(float(g), 4) for g in gaps], minus_full_mean=round(float(gaps.mean()), 4))
        average = np.mean(raws[name], axis=0)
        intervals = bootstrap_roc_auc(labels, {"average": average, best[0]: best[1]}, "average", RESAMPLES, params.seed)
        entry["seed_average"] = {
            "fits": len(raws[name]),
            "roc_auc": round(float(roc_auc_score(labels, average)), 4),
            "gain_over_best": round(float(roc_auc_score(labels, average) - roc_auc_score(labels, best[1])), 4),
            "gain_over_best_95": intervals["gain_over"][best[0]],
        }
        result[name] = entry
    return result


def run_cutoff(work: Path, test: str, params: training.TrainParams, horizon: int, variants: list[str],
               seeds: int = 0) -> dict:  # fmt: skip
    path = work / CUTOFFS[test] / "features.parquet"
    export_start = pd.Timestamp(pd.read_parquet(work / "validated" / "orders.parquet", columns=["ordered_at"])
                                ["ordered_at"].min()).normalize()  # fmt: skip
    deploy_at = pd.Timestamp(test)
    DEPLOY_AT[0] = deploy_at
    frame = with_truncation_features(read_labelled_rows(path, params.max_training_rows, params.seed), export_start)
    TABLE_HISTORY_DAYS.clear()
    TABLE_HISTORY_DAYS.update(table_history_days(frame))
    test_rows = with_truncation_features(labelled(read_cutoff_rows(path, deploy_at)), export_start)
    labels = test_rows[LABEL].to_numpy()
    cache = work / f"truncation_baselines_{test}.parquet"
    if cache.is_file():
        baselines = {name: values.to_numpy() for name, values in pd.read_parquet(cache).items()}
    else:
        baselines = baseline_scores(frame, test_rows, deploy_at, horizon, params)
        pd.DataFrame(baselines).to_parquet(cache)
    base_auc = {name: float(roc_auc_score(labels, values)) for name, values in baselines.items()}
    best = max(base_auc, key=lambda name: base_auc[name])
    result: dict[str, Any] = {"test_rows": len(test_rows), "churn_rate": float(labels.mean()),
                              "export_start": export_start.date().isoformat(),
                              "baselines": {k: round(v, 4) for k, v in base_auc.items()}, "best_baseline": best,
                              "variants": {}}  # fmt: skip
    full_raw = None
    first_raw: dict[str, np.ndarray] = {}
    for name in variants:
        extra, weight = VARIANTS[name]
        started = time.perf_counter()
        undo = patched(extra, weight, export_start)
        try:
            model, split = training.fit_recipe(frame, deploy_at, horizon, params, "explore", ())
        finally:
            undo()
        raw, probability = model.predict_raw(test_rows), model.predict(test_rows)
        first_raw[name] = raw
        if name == "full":
            full_raw = raw
        scores = {"model": raw, best: baselines[best], **({"full": full_raw} if full_raw is not None else {})}
        intervals = bootstrap_roc_auc(labels, scores, "model", RESAMPLES, params.seed)
        metrics = score_metrics(labels, raw, probability, 1000)
        entry = {
            "roc_auc": round(metrics["roc_auc"], 4),
            "gain_over_best": round(metrics["roc_auc"] - base_auc[best], 4),
            "gain_over_best_95": intervals["gain_over"][best],
            "ece": round(metrics["ece"], 4),
            "mean_predicted": round(float(np.mean(probability)), 4),
            "best_iteration": model.training["best_iteration"],
            "season_shift": (model.training.get("season_level") or {}).get("logit_shift"),
            **{k: round(v, 5) for k, v in validation_losses(model, frame, split).items()},
            "seconds": round(time.perf_counter() - started, 1),
        }
        if name != "full" and full_raw is not None:
            entry["minus_full"] = round(metrics["roc_auc"] - float(roc_auc_score(labels, full_raw)), 4)
            entry["minus_full_95"] = intervals["gain_over"]["full"]
        result["variants"][name] = entry
        print(test, name, json.dumps(entry), flush=True)
    if seeds:
        result["seed_spread"] = seed_spread(frame, test_rows, deploy_at, horizon, params, variants, seeds,
                                            export_start, first_raw, (best, baselines[best]))  # fmt: skip
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="the --work folder of benchmarks/online_retail.py")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/online_retail_truncation.json")
    parser.add_argument("--cutoffs", nargs="+", choices=list(CUTOFFS), default=list(CUTOFFS))
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument(
        "--seeds",
        type=int,
        default=0,
        help="also refit every variant with this many other booster seeds (the fitting noise)",
    )
    args = parser.parse_args()
    if "full" not in args.variants:
        args.variants.insert(0, "full")
    grids = [args.work / CUTOFFS[test] / "features.parquet" for test in args.cutoffs]
    missing = [str(path) for path in grids if not path.is_file()]
    if missing:
        sys.exit(f"no feature table at {missing[0]}: run benchmarks/online_retail.py --work {args.work} first")
    params_yaml = yaml.safe_load((REPO / "params.yaml").read_text())
    params = training.TrainParams.from_dict(params_yaml["train"])
    horizon = int(params_yaml["features"]["horizon_days"])
    started = datetime.now(UTC)
    recorded = json.loads(args.out.read_text()) if args.out.is_file() else {}
    per_cutoff = recorded.get("test_cutoffs", {})
    for test in args.cutoffs:
        result = run_cutoff(args.work, test, params, horizon, args.variants, args.seeds)
        # Variants run earlier into the same --out are kept (minus_full compares with this run's full, the same fit).
        earlier = per_cutoff.get(test, {})
        result["variants"] = {**earlier.get("variants", {}), **result["variants"]}
        if "seed_spread" in earlier and "seed_spread" not in result:
            result["seed_spread"] = earlier["seed_spread"]
        per_cutoff[test] = result
        args.out.write_text(json.dumps({**recorded, "test_cutoffs": per_cutoff}, indent=2) + "\n")
    result = {
        "benchmark": "online_retail_truncation",
        "started_utc": started.isoformat(timespec="seconds"),
        "finished_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(
            [
                "python benchmarks/online_retail_truncation.py --work",
                str(args.work),
                "--cutoffs",
                *args.cutoffs,
                "--variants",
                *args.variants,
                "--seeds",
                str(args.seeds),
            ]
        ),
        "machine": machine_info(PACKAGES),
        "censor_days": CENSOR_DAYS,
        "half_life_days": HALF_LIFE_DAYS,
        "test_cutoffs": per_cutoff,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"results in {args.out}")


if __name__ == "__main__":
    main()
