"""The whole pipeline on UCI Online Retail (both files, 2009-12 to 2011-12): LightGBM against the baselines at full
strength (textbook RFM regression, BG/NBD, Pareto/NBD) on the same out-of-time test customers, with 95 % paired
bootstrap intervals, at two test cutoffs (the default 2011-08-25 and 90 days earlier, so nothing is tuned to one),
with an ablation per new feature group and cutoff schedule, calibration, and the run time of every stage.

The recipe measured ("full"): weekly fitting cutoffs from 2010-03 (every season of the history among the fitting
cutoffs at both test cutoffs), every feature. Ablations refit the same recipe with one change and compare the
ablated backtest model with the full one on the same test customers (paired):
- without_btyd: `train.exclude_features: [btyd]` (BG/NBD's quantities fitted at each cutoff);
- without_seasonal: `train.exclude_features: [seasonal]` (orders and value in the same window a year earlier);
- without_cutoff_month: `train.exclude_features: [cutoff_month]`;
- without_basket: `train.exclude_features: [basket]` (what was bought: products, basket size, price level, repeat
  products, returned lines, from the invoices' product lines);
- monthly_cutoffs: every 30 days instead of 7 (same first season, same test cutoff);
- issue6_schedule: monthly cutoffs from 2010-06-01, the schedule of the issue-6 record (fewer seasons).

A third test cutoff (CHECK_CUTOFFS, 2011-02-24) runs the full recipe only. At every test cutoff the full model's
calibration is worked out under each `train.season_anchor` setting (`season_level`: as trained, never, auto) from
the one trained model.

The params are the repository's params.yaml with only the overrides below. Every stage runs as its own `churn`
subprocess in a scratch folder; `evaluate` runs with --no-track.

    .venv/bin/python benchmarks/online_retail.py --data ../shared/data
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from generate_validate import CHURN, REPO, machine_info, measure

# The repository's features/ package, not benchmarks/features.py next to this script.
sys.path.insert(0, str(REPO))
from features.build import LABEL
from models.artifact import load_model
from models.bootstrap import bootstrap_roc_auc
from models.dataset import labelled, read_cutoff_rows
from models.metrics import score_metrics
from models.season_anchor import anchored, logit_shift

ONLINE_RETAIL = {
    "data": {"source": "online_retail", "as_of": "2011-12-10"},
    "evaluate": {"oracle": False},
}
# The history starts on 2009-12-01: three months before the first cutoff, and fitting cutoffs from March 2010 hold
# every month of the year at both test cutoffs.
SEASONS_FROM = pd.Timestamp("2010-03-01")
TEST_CUTOFFS = (pd.Timestamp("2011-08-25"), pd.Timestamp("2011-05-27"))
# A third test cutoff, on the autumn one's grid (26 weeks earlier), for the full recipe only: a check that the season
# level rule (train.season_anchor) is not tuned to the two above.
CHECK_CUTOFFS = (pd.Timestamp("2011-02-24"),)
# schedule name -> (every_days, earliest first cutoff)
SCHEDULES = {"weekly": (7, SEASONS_FROM), "monthly": (30, SEASONS_FROM), "issue6": (30, pd.Timestamp("2010-06-01"))}
# ablation -> (schedule, train.exclude_features)
RUNS: dict[str, tuple[str, list[str]]] = {
    "full": ("weekly", []),
    "without_btyd": ("weekly", ["btyd"]),
    "without_seasonal": ("weekly", ["seasonal"]),
    "without_cutoff_month": ("weekly", ["cutoff_month"]),
    "without_basket": ("weekly", ["basket"]),
    "monthly_cutoffs": ("monthly", []),
    "issue6_schedule": ("issue6", []),
}
REPORTED = ("roc_auc", "pr_auc", "brier", "lift_top_10pct", "ece", "mean_predicted", "churn_rate")
REUSE = False  # --reuse: keep what an earlier run in the same --work folder wrote
ONLY_DONE = False  # --only-done: with --reuse, leave out the ablations an earlier run did not get to
PACKAGES = ("pandas", "duckdb", "ibis-framework", "lightgbm", "scikit-learn", "pymc-marketing")


def first_cutoff_on_grid(test_cutoff: pd.Timestamp, every_days: int, earliest: pd.Timestamp) -> pd.Timestamp:
    """The earliest cutoff at or after `earliest` from which `every_days` steps reach the test cutoff."""
    steps = (test_cutoff - earliest).days // every_days
    return test_cutoff - pd.Timedelta(days=steps * every_days)


def write_params(work: Path, data: Path, name: str, first: pd.Timestamp, every: int, test: pd.Timestamp,
                 exclude: list[str]) -> Path:  # fmt: skip
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for block, values in ONLINE_RETAIL.items():
        params[block].update(values)
    params["data"]["path"] = str(data.resolve())
    params["features"].update({"first_cutoff": first.date().isoformat(), "every_days": every})
    params["train"].update({"exclude_features": exclude, "test_cutoff": test.date().isoformat()})
    path = work / f"params_{name}.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def validate_command(params: Path, work: Path) -> list[str]:
    return [str(CHURN), "validate", "--params", str(params), "--validated", str(work / "validated"),
            "--quarantine", str(work / "quarantine"), "--report", str(work / "validation.json"),
            "--report-md", str(work / "validation.md")]  # fmt: skip


def features_command(params: Path, work: Path, grid: str) -> list[str]:
    return [str(CHURN), "features", "--params", str(params), "--validated", str(work / "validated"),
            "--validation-report", str(work / "validation.json"), "--out", str(work / grid / "features.parquet"),
            "--dictionary", str(work / grid / "dictionary.csv"), "--dictionary-md", str(work / grid / "dictionary.md"),
            "--summary", str(work / grid / "features.json")]  # fmt: skip


def train_command(params: Path, work: Path, grid: str, run: str) -> list[str]:
    return [str(CHURN), "train", "--params", str(params), "--features", str(work / grid / "features.parquet"),
            "--dictionary", str(work / grid / "dictionary.csv"), "--validation-report", str(work / "validation.json"),
            "--backtest", str(work / run / "backtest"), "--current", str(work / run / "current")]  # fmt: skip


def evaluate_command(params: Path, work: Path, grid: str, run: str) -> list[str]:
    return [str(CHURN), "evaluate", "--params", str(params), "--features", str(work / grid / "features.parquet"),
            "--backtest", str(work / run / "backtest"), "--current", str(work / run / "current"),
            "--truth", str(work / "truth"), "--metrics", str(work / run / "metrics.json"),
            "--evaluation", str(work / run / "evaluation.json"), "--plots", str(work / run / "plots"),
            "--figures", str(work / run / "figures"), "--no-track"]  # fmt: skip


def timed(command: list[str], work: Path, name: str, timings: dict[str, Any], output: Path | None = None) -> None:
    """Run and time a stage; with --reuse, a stage whose `output` exists keeps the time recorded when it ran."""
    record = work / "timings.json"
    if REUSE and output is not None and output.exists() and record.is_file():
        timings[name] = json.loads(record.read_text())[name]
        return
    timings[name] = measure(command, work / f"{name}.log")
    recorded = json.loads(record.read_text()) if record.is_file() else {}
    record.write_text(json.dumps({**recorded, name: timings[name]}, indent=2))
    print(f"{name:<44} {timings[name]['seconds']:7.1f} s  {timings[name]['peak_rss_gib']:5.2f} GiB", flush=True)


def methods_table(overall: dict[str, Any]) -> dict[str, dict[str, float]]:
    return {
        method: {key: round(values[key], 4) for key in REPORTED if key in values} for method, values in overall.items()
    }


def model_scores(folder: Path, features: Path) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The backtest model's test rows (sorted by customer), raw ranking and calibrated probability."""
    model = load_model(folder)
    rows = labelled(read_cutoff_rows(features, pd.Timestamp(model.training["deploy_at"])))
    rows = rows.sort_values("customer_id").reset_index(drop=True)
    return rows, model.predict_raw(rows), model.predict(rows)


def ablation(work: Path, full: tuple[str, str], ablated: tuple[str, str], resamples: int, contact_k: int) -> dict:
    """The full and the ablated backtest models (run folder, feature grid) on the same test customers."""
    full_rows, full_rank, _ = model_scores(work / full[0] / "backtest", work / full[1] / "features.parquet")
    rows, rank, probability = model_scores(work / ablated[0] / "backtest", work / ablated[1] / "features.parquet")
    if not full_rows["customer_id"].equals(rows["customer_id"]):
        raise RuntimeError(f"{ablated[0]} was tested on other customers than {full[0]}")
    labels = rows[LABEL].to_numpy()
    metrics = score_metrics(labels, rank, probability, contact_k)
    metrics["mean_predicted"] = float(np.mean(probability))
    intervals = bootstrap_roc_auc(labels, {"full": full_rank, "ablated": rank}, "full", resamples, seed=0)
    model = load_model(work / ablated[0] / "backtest")
    return {
        "lightgbm": {key: round(metrics[key], 4) for key in REPORTED if key in metrics},
        "fitting_cutoffs": len(model.training["fitting_cutoffs"]),
        "train_rows": model.training["train_rows"],
        "full_minus_ablated": round(_auc_gap(labels, full_rank, rank), 4),
        "full_minus_ablated_95": intervals["gain_over"]["ablated"],
        "test_rows": len(rows),
    }


def season_level_check(work: Path, run: str, grid: str, metrics: dict[str, Any]) -> dict[str, Any]:
    """The full backtest model's calibration at this test cutoff under each train.season_anchor setting, without a
    second training run: as trained (the params' setting; with last_year the shift is in the model's calibration),
    never (that shift taken out) and auto (the probabilities shifted in log-odds so that their mean is Pareto/NBD's on
    the test cutoff's own history, or BG/NBD's)."""
    rows, _, probability = model_scores(work / run / "backtest", work / grid / "features.parquet")
    model = load_model(work / run / "backtest")
    plain = replace(model, calibration=replace(model.calibration, shift=0.0)).predict(rows)
    source = next(name for name in ("pareto_nbd", "bg_nbd") if name in metrics["overall"])
    target = float(metrics["overall"][source]["mean_predicted"])
    labels = rows[LABEL].to_numpy()
    settings = {
        "as_trained": probability,
        "never": plain,
        "auto": anchored(plain, logit_shift(plain, target)),
    }
    result: dict[str, Any] = {
        "trained_with": model.training["params"]["season_anchor"],
        "season_level": model.training.get("season_level"),
        "auto_anchor": source,
        "auto_target_rate": round(target, 4),
    }
    for name, values in settings.items():
        scored = score_metrics(labels, values, values, metrics["contact_k"])
        result[name] = {"ece": round(scored["ece"], 4), "brier": round(scored["brier"], 4),
                        "mean_predicted": round(float(np.mean(values)), 4)}  # fmt: skip
    return result


def _auc_gap(labels: np.ndarray, full: np.ndarray, ablated: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, full) - roc_auc_score(labels, ablated))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data", help="the Online Retail files")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/online_retail.json")
    parser.add_argument("--work", type=Path, default=None, help="keep the scratch folder here (default: a temp dir)")
    parser.add_argument("--reuse", action="store_true", help="with --work: skip stages whose outputs exist there")
    parser.add_argument("--only-done", action="store_true", help="with --reuse: skip ablations not run before")
    parser.add_argument(
        "--runs",
        nargs="+",
        choices=list(RUNS),
        default=list(RUNS),
        help="the ablations to run (full always runs; the others are listed as not run)",
    )
    args = parser.parse_args()
    global REUSE, ONLY_DONE
    REUSE = args.reuse and args.work is not None
    ONLY_DONE = REUSE and args.only_done
    if not args.data.is_dir():
        sys.exit(f"{args.data} does not exist: pass --data with the folder holding the Online Retail files")
    started = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="churn-online-retail-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        timings: dict[str, Any] = {}
        first_params = write_params(work, args.data, "validate", SEASONS_FROM, 30, TEST_CUTOFFS[0], [])
        timed(validate_command(first_params, work), work, "validate", timings, work / "validation.json")
        per_cutoff = {}
        for test in (*TEST_CUTOFFS, *CHECK_CUTOFFS):
            tag = test.date().isoformat()
            grids: dict[str, str] = {}
            for run, (schedule, exclude) in RUNS.items():
                if test in CHECK_CUTOFFS and run != "full":
                    continue
                if ONLY_DONE and run != "full" and not (work / f"{tag}_{run}" / "backtest").is_dir():
                    continue
                if run != "full" and run not in args.runs:
                    continue
                every, earliest = SCHEDULES[schedule]
                first = first_cutoff_on_grid(test, every, earliest)
                grid = f"grid_{every}_{first.date().isoformat()}"
                params = write_params(work, args.data, f"{tag}_{run}", first, every, test, exclude)
                if not (work / grid / "features.parquet").is_file():
                    timed(features_command(params, work, grid), work, f"features_{grid}", timings,
                          work / grid / "features.parquet")  # fmt: skip
                grids[run] = grid
                timed(train_command(params, work, grid, f"{tag}_{run}"), work, f"train_{tag}_{run}", timings,
                      work / f"{tag}_{run}" / "backtest" / "metadata.json")  # fmt: skip
                if run == "full":
                    timed(evaluate_command(params, work, grid, f"{tag}_{run}"), work, f"evaluate_{tag}", timings,
                          work / f"{tag}_{run}" / "evaluation.json")  # fmt: skip
            metrics = json.loads((work / f"{tag}_full" / "evaluation.json").read_text())
            resamples = metrics["bootstrap"]["resamples"]
            features_summary = json.loads((work / grids["full"] / "features.json").read_text())
            per_cutoff[tag] = {
                "features": {key: features_summary[key] for key in
                             ("cutoffs", "labelled_cutoffs", "rows", "labelled_rows", "churn_rate", "feature_groups")},
                "first_cutoff": first_cutoff_on_grid(test, *SCHEDULES["weekly"]).date().isoformat(),
                "test_rows": metrics["overall"]["lightgbm"]["rows"],
                "methods": methods_table(metrics["overall"]),
                "comparison": metrics["comparison"],
                "cohorts": {name: methods_table(values) for name, values in metrics["cohorts"].items()},
                "bootstrap": metrics["bootstrap"],
                "baseline_fits": metrics.get("baseline_fits", {}),
                "ablations": {
                    run: ablation(work, (f"{tag}_full", grids["full"]), (f"{tag}_{run}", grids[run]), resamples,
                                  metrics["contact_k"])
                    for run in RUNS if run != "full" and run in grids
                },
                "ablations_not_run": [run for run in RUNS if run not in grids],
                "season_level": season_level_check(work, f"{tag}_full", grids["full"], metrics),
            }  # fmt: skip
        result = {
            "benchmark": "online_retail",
            "started_utc": started.isoformat(timespec="seconds"),
            "finished_utc": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": " ".join(["python benchmarks/online_retail.py --data", str(args.data), "--runs", *args.runs]),
            "machine": machine_info(PACKAGES),
            "params_overrides": ONLINE_RETAIL,
            "schedules": {name: {"every_days": every, "from": earliest.date().isoformat()}
                          for name, (every, earliest) in SCHEDULES.items()},
            "runs": {name: {"schedule": schedule, "exclude_features": exclude}
                     for name, (schedule, exclude) in RUNS.items()},
            "check_cutoffs": [test.date().isoformat() for test in CHECK_CUTOFFS],
            "source": json.loads((work / "validation.json").read_text())["source"],
            "test_cutoffs": per_cutoff,
            "timings": timings,
        }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"results in {args.out}")


if __name__ == "__main__":
    main()
