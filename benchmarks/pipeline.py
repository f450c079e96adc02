"""Benchmark the whole pipeline, stage by stage, on a synthetic shop of a given size: wall time, peak RSS, and the
model quality the run reaches (test ROC-AUC against every baseline and the oracle, calibration error).

Every stage runs as its own `churn` subprocess in a scratch folder (params.yaml unchanged except the shop size and
the paths), so its time and memory are its own, imports included; `evaluate` runs with --no-track (MLflow logging is
a fixed cost of a few seconds, not a function of size). `score` writes everyone in the population with reasons;
`score_daily` the 20,000 customers with the most value at risk (`--top-k`), reasons for them only.

    .venv/bin/python benchmarks/pipeline.py --sizes 50000 1000000 --repeats 2 1
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from generate_validate import CHURN, REPO, machine_info, measure, summary, write_params

STAGES = ("generate", "validate", "features", "train", "evaluate", "score", "score_daily")
# A daily call list: the customers with the most value at risk, with reasons (SHAP) for them only.
DAILY_LIST = 20_000
PACKAGES = (
    "pandas",
    "pyarrow",
    "numpy",
    "great_expectations",
    "ibis-framework",
    "duckdb",
    "lightgbm",
    "pymc-marketing",
)


def stage_command(stage: str, params: Path, work: Path) -> list[str]:
    paths = {
        "generate": ["--out", work / "raw", "--truth", work / "truth"],
        "validate": [
            "--validated", work / "validated", "--quarantine", work / "quarantine",
            "--report", work / "validation.json", "--report-md", work / "validation.md",
        ],
        "features": [
            "--validated", work / "validated", "--validation-report", work / "validation.json",
            "--out", work / "features.parquet", "--dictionary", work / "dictionary.csv",
            "--dictionary-md", work / "dictionary.md", "--summary", work / "features.json",
        ],
        "train": [
            "--features", work / "features.parquet", "--dictionary", work / "dictionary.csv",
            "--validation-report", work / "validation.json", "--backtest", work / "backtest",
            "--current", work / "current",
        ],
        "evaluate": [
            "--features", work / "features.parquet", "--backtest", work / "backtest", "--current", work / "current",
            "--truth", work / "truth", "--metrics", work / "metrics.json", "--evaluation", work / "evaluation.json",
            "--plots", work / "plots",
            "--figures", work / "figures", "--no-track",
        ],
        "score": score_paths(work, "risk"),
        "score_daily": [*score_paths(work, "daily"), "--top-k", DAILY_LIST],
    }  # fmt: skip
    command = "score" if stage == "score_daily" else stage
    return [str(CHURN), command, "--params", str(params), *(str(arg) for arg in paths[stage])]


def score_paths(work: Path, name: str) -> list[object]:
    return [
        "--model", work / "current", "--validated", work / "validated",
        "--validation-report", work / "validation.json", "--out", work / f"{name}.parquet",
        "--out-csv", work / f"{name}.csv", "--report", work / f"{name}.json", "--report-md", work / f"{name}.md",
    ]  # fmt: skip


def outcome(work: Path) -> dict[str, Any]:
    """What the run produced: rows, the model's and baselines' test metrics, the risk list's size."""
    features = json.loads((work / "features.json").read_text())
    metrics = json.loads((work / "evaluation.json").read_text())
    scoring = json.loads((work / "risk.json").read_text())
    train = {
        name: json.loads((work / name / "metadata.json").read_text())["training"] for name in ("backtest", "current")
    }
    keys = ("roc_auc", "pr_auc", "brier", "ece", "lift_top_10pct")
    return {
        "feature_rows": features["rows"],
        "labelled_rows": features["labelled_rows"],
        "training_rows": {name: values["train_rows"] + values["validation_rows"] for name, values in train.items()},
        "test_cutoff": metrics["test_cutoff"],
        "test_rows": metrics["overall"]["lightgbm"]["rows"],
        "test": {
            method: {key: round(values[key], 4) for key in keys if key in values}
            for method, values in metrics["overall"].items()
        },
        "comparison": metrics["comparison"],
        "skipped": metrics["skipped"],
        "customers_scored": scoring["customers_scored"],
    }


def bench_size(size: int, repeats: int) -> dict[str, Any]:
    runs: dict[str, list[dict[str, float]]] = {stage: [] for stage in STAGES}
    outcomes = []
    for repeat in range(1, repeats + 1):
        with tempfile.TemporaryDirectory(prefix=f"churn-pipeline-{size}-") as tmp:
            work = Path(tmp)
            params = write_params(size, work)
            for stage in STAGES:
                run = measure(stage_command(stage, params, work), work / f"{stage}.log")
                runs[stage].append(run)
                print(f"{size:>9,} customers  {stage:<9} {repeat}/{repeats}: {run['seconds']:8.1f} s  "
                      f"{run['peak_rss_gib']:6.2f} GiB", flush=True)  # fmt: skip
            outcomes.append(outcome(work))
    if any(result != outcomes[0] for result in outcomes[1:]):
        raise RuntimeError(
            f"the outcome differs between repeats at {size} customers: the pipeline is not deterministic"
        )
    total = [sum(runs[stage][i]["seconds"] for stage in STAGES) for i in range(repeats)]
    return {
        "n_customers": size,
        "repeats": repeats,
        "outcome": outcomes[0],
        "total_seconds": total,
        "max_peak_rss_gib": max(run["peak_rss_gib"] for stage_runs in runs.values() for run in stage_runs),
        "stages": {stage: {**summary(stage_runs), "runs": stage_runs} for stage, stage_runs in runs.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[50_000, 1_000_000], help="numbers of customers")
    parser.add_argument("--repeats", type=int, nargs="+", default=[1], help="one for every size, or one per size")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/pipeline.json")
    args = parser.parse_args()
    if len(args.repeats) not in (1, len(args.sizes)):
        parser.error("--repeats takes one value, or one per size")
    repeats = args.repeats * len(args.sizes) if len(args.repeats) == 1 else args.repeats
    machine = machine_info(PACKAGES)
    print(f"machine: {machine['nproc']} cpus, {machine['ram_gib']} GiB RAM, commit {machine['git_commit'][:7]}")
    results: dict[str, Any] = {
        "benchmark": "pipeline",
        "started_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join(["python", "benchmarks/pipeline.py", *sys.argv[1:]]),
        "machine": machine,
        "sizes": [],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for size, n in zip(args.sizes, repeats, strict=True):
        results["sizes"].append(bench_size(size, n))
        # Written after every size, so a long run that is stopped keeps what it measured.
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results: {args.out}")


if __name__ == "__main__":
    main()
