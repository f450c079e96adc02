"""The whole pipeline on UCI Online Retail (both files, 2009-12 to 2011-12): LightGBM against the baselines on the
same out-of-time test customers, with 95 % paired bootstrap intervals, ablations (without the return features made
from credit notes; without the cutoff's month), calibration, and the run time of every stage.

The params are the repository's params.yaml with only the overrides in ONLINE_RETAIL (the README's "Run it on UCI
Online Retail" section sets the same). Every stage runs as its own `churn` subprocess in a scratch folder, as in
benchmarks/pipeline.py; `evaluate` runs with --no-track. Each ablation refits the same recipe with
`train.exclude_features` set and compares its backtest model with the full one on the same test customers.

    .venv/bin/python benchmarks/online_retail.py --data ../shared/data
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from generate_validate import CHURN, REPO, machine_info, measure

# The repository's features/ package, not benchmarks/features.py next to this script.
sys.path.insert(0, str(REPO))
from features.build import LABEL
from models.artifact import load_model
from models.bootstrap import bootstrap_roc_auc
from models.dataset import labelled, read_cutoff_rows

ONLINE_RETAIL = {
    "data": {"source": "online_retail", "as_of": "2011-12-10"},
    # Six months of history before the first cutoff; the history starts on 2009-12-01.
    "features": {"first_cutoff": "2010-06-01"},
    "evaluate": {"oracle": False},
}
# ablation -> train.exclude_features
ABLATIONS = {"without_returns": ["returns"], "without_cutoff_month": ["cutoff_month"]}
REPORTED = ("roc_auc", "pr_auc", "brier", "lift_top_10pct", "ece", "mean_predicted", "churn_rate")
PACKAGES = ("pandas", "duckdb", "ibis-framework", "lightgbm", "scikit-learn", "pymc-marketing")


def write_params(work: Path, data: Path, exclude: list[str], name: str = "params") -> Path:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for name, values in ONLINE_RETAIL.items():
        params[name].update(values)
    params["data"]["path"] = str(data.resolve())
    params["train"]["exclude_features"] = exclude
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def stage_commands(params: Path, work: Path, models: str, reports: str) -> dict[str, list[str]]:
    churn = [str(CHURN)]
    validated, features = work / "validated", work / "features.parquet"
    return {
        "validate": [*churn, "validate", "--params", str(params), "--validated", str(validated),
                     "--quarantine", str(work / "quarantine"), "--report", str(work / "validation.json"),
                     "--report-md", str(work / "validation.md")],
        "features": [*churn, "features", "--params", str(params), "--validated", str(validated),
                     "--validation-report", str(work / "validation.json"), "--out", str(features),
                     "--dictionary", str(work / "dictionary.csv"), "--dictionary-md", str(work / "dictionary.md"),
                     "--summary", str(work / "features.json")],
        "train": [*churn, "train", "--params", str(params), "--features", str(features),
                  "--dictionary", str(work / "dictionary.csv"), "--validation-report", str(work / "validation.json"),
                  "--backtest", str(work / models / "backtest"), "--current", str(work / models / "current")],
        "evaluate": [*churn, "evaluate", "--params", str(params), "--features", str(features),
                     "--backtest", str(work / models / "backtest"), "--current", str(work / models / "current"),
                     "--truth", str(work / "truth"), "--metrics", str(work / reports / "metrics.json"),
                     "--evaluation", str(work / reports / "evaluation.json"),
                     "--plots", str(work / reports / "plots"), "--figures", str(work / reports / "figures"),
                     "--no-track"],
    }  # fmt: skip


def run_stages(commands: dict[str, list[str]], work: Path, prefix: str = "") -> dict[str, dict[str, float]]:
    timings = {}
    for stage, command in commands.items():
        timings[prefix + stage] = measure(command, work / f"{prefix}{stage}.log")
        print(f"{prefix + stage:<22} {timings[prefix + stage]['seconds']:7.1f} s  "
              f"{timings[prefix + stage]['peak_rss_gib']:5.2f} GiB", flush=True)  # fmt: skip
    return timings


def methods_table(metrics: dict[str, Any]) -> dict[str, dict[str, float]]:
    return {
        method: {key: round(values[key], 4) for key in REPORTED if key in values}
        for method, values in metrics["overall"].items()
    }


def ablation(work: Path, name: str, resamples: int) -> dict[str, Any]:
    """The full and the ablated backtest models on the same test customers, with paired intervals."""
    full, ablated = load_model(work / "models" / "backtest"), load_model(work / f"models_{name}" / "backtest")
    test_rows = labelled(read_cutoff_rows(work / "features.parquet", pd.Timestamp(full.training["deploy_at"])))
    scores = {"full": full.predict_raw(test_rows), name: ablated.predict_raw(test_rows)}
    intervals = bootstrap_roc_auc(test_rows[LABEL].to_numpy(), scores, "full", resamples, seed=0)
    metrics = json.loads((work / f"reports_{name}" / "evaluation.json").read_text())
    return {
        "excluded": ablated.training["params"]["exclude_features"],
        "lightgbm": methods_table({"overall": {"lightgbm": metrics["overall"]["lightgbm"]}})["lightgbm"],
        "test_rows": len(test_rows),
        **intervals,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data", help="the Online Retail files")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/online_retail.json")
    args = parser.parse_args()
    if not args.data.is_dir():
        sys.exit(f"{args.data} does not exist: pass --data with the folder holding the Online Retail files")
    started = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="churn-online-retail-") as tmp:
        work = Path(tmp)
        params = write_params(work, args.data, [])
        timings = run_stages(stage_commands(params, work, "models", "reports"), work)
        for name, exclude in ABLATIONS.items():
            params = write_params(work, args.data, exclude, name)
            commands = stage_commands(params, work, f"models_{name}", f"reports_{name}")
            timings |= run_stages({stage: commands[stage] for stage in ("train", "evaluate")}, work, f"{name}_")
        metrics = json.loads((work / "reports" / "evaluation.json").read_text())
        result = {
            "benchmark": "online_retail",
            "started_utc": started.isoformat(timespec="seconds"),
            "finished_utc": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": "python benchmarks/online_retail.py --data " + str(args.data),
            "machine": machine_info(PACKAGES),
            "params_overrides": ONLINE_RETAIL,
            "source": json.loads((work / "validation.json").read_text())["source"],
            "features": {
                key: json.loads((work / "features.json").read_text())[key]
                for key in ("cutoffs", "labelled_cutoffs", "rows", "labelled_rows", "churn_rate", "feature_groups")
            },
            "test_cutoff": metrics["test_cutoff"],
            "methods": methods_table(metrics),
            "cohorts": {cohort: methods_table({"overall": values}) for cohort, values in metrics["cohorts"].items()},
            "bootstrap": metrics["bootstrap"],
            "ablations": {name: ablation(work, name, metrics["bootstrap"]["resamples"]) for name in ABLATIONS},
            "timings": timings,
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"results in {args.out}")


if __name__ == "__main__":
    main()
