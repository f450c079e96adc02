"""Benchmark the whole pipeline, stage by stage, on a synthetic shop of a given size: wall time, peak RSS, and the
model quality the run reaches (test ROC-AUC against every baseline and the oracle, calibration error).

Every stage runs as its own `churn` subprocess in a scratch folder (params.yaml unchanged except the shop size and
the paths), so its time and memory are its own, imports included; `evaluate` runs with --no-track (MLflow logging is
a fixed cost of a few seconds, not a function of size). `score` writes everyone in the population with reasons;
`score_daily` the 20,000 customers with the most value at risk (`--top-k`), reasons for them only.

    .venv/bin/python benchmarks/pipeline.py --sizes 50000 1000000 --repeats 2 1

With `--baseline DIR` (a checkout of older code with its own .venv, e.g. a `git worktree`), every stage of that
code runs right before the same stage of this code, each on its own scratch folder, so old and new share the
machine's busy and quiet spells; `--baseline-skip` leaves out stages of the old code (e.g. `score`, which took
half an hour at 1M). The 1-minute load average is recorded before every run.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
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


def stage_command(stage: str, params: Path, work: Path, churn: Path = CHURN) -> list[str]:
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
            "--truth", work / "truth", "--validated", work / "validated", "--metrics", work / "metrics.json",
            "--evaluation", work / "evaluation.json",
            "--plots", work / "plots",
            "--figures", work / "figures", "--no-track",
        ],
        "score": score_paths(work, "risk"),
        "score_daily": [*score_paths(work, "daily"), "--top-k", DAILY_LIST],
    }  # fmt: skip
    command = "score" if stage == "score_daily" else stage
    return [str(churn), command, "--params", str(params), *(str(arg) for arg in paths[stage])]


def score_paths(work: Path, name: str) -> list[object]:
    return [
        "--model", work / "current", "--validated", work / "validated",
        "--validation-report", work / "validation.json", "--out", work / f"{name}.parquet",
        "--out-csv", work / f"{name}.csv", "--report", work / f"{name}.json", "--report-md", work / f"{name}.md",
    ]  # fmt: skip


def outcome(work: Path, risk_list: str = "risk") -> dict[str, Any]:
    """What the run produced: rows, the model's and baselines' test metrics, the risk list's size."""
    features = json.loads((work / "features.json").read_text())
    metrics = json.loads((work / "evaluation.json").read_text())
    scoring = json.loads((work / f"{risk_list}.json").read_text())
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


def bench_size(size: int, repeats: int, baseline: Path | None = None, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    codes = {"new": (REPO, CHURN)}
    if baseline is not None:
        codes = {"baseline": (baseline, baseline / ".venv/bin/churn"), **codes}
    runs: dict[str, dict[str, list[dict[str, float]]]] = {code: {stage: [] for stage in STAGES} for code in codes}
    outcomes: dict[str, list[dict[str, Any]]] = {code: [] for code in codes}
    for repeat in range(1, repeats + 1):
        with tempfile.TemporaryDirectory(prefix=f"churn-pipeline-{size}-") as tmp:
            works = {code: Path(tmp) / code for code in codes}
            params = {}
            for code, work in works.items():
                work.mkdir()
                params[code] = write_params(size, work)
            for stage in STAGES:
                for code, (root, churn) in codes.items():
                    if code == "baseline" and stage in skip:
                        continue
                    load = os.getloadavg()[0]
                    command = stage_command(stage, params[code], works[code], churn)
                    run = {**measure(command, works[code] / f"{stage}.log", cwd=root), "load_1min_before": load}
                    runs[code][stage].append(run)
                    print(f"{size:>9,} customers  {code:<8} {stage:<11} {repeat}/{repeats}: {run['seconds']:8.1f} s  "
                          f"{run['peak_rss_gib']:6.2f} GiB  (load {load:.1f})", flush=True)  # fmt: skip
            for code, work in works.items():
                outcomes[code].append(outcome(work, "risk" if "score" not in skip or code == "new" else "daily"))
    for code, results in outcomes.items():
        if any(result != results[0] for result in results[1:]):
            raise RuntimeError(
                f"the outcome of the {code} code differs between repeats at {size} customers: not deterministic"
            )
    measured = {code: _measured(stage_runs, repeats) for code, stage_runs in runs.items()}
    result = {"n_customers": size, "repeats": repeats, "outcome": outcomes["new"][0], **measured["new"]}
    if baseline is not None:
        result["baseline"] = {"outcome": outcomes["baseline"][0], **measured["baseline"]}
    return result


def _measured(runs: dict[str, list[dict[str, float]]], repeats: int) -> dict[str, Any]:
    done = {stage: stage_runs for stage, stage_runs in runs.items() if stage_runs}
    return {
        "total_seconds": [sum(done[stage][i]["seconds"] for stage in done) for i in range(repeats)],
        "max_peak_rss_gib": max(run["peak_rss_gib"] for stage_runs in done.values() for run in stage_runs),
        "stages": {stage: {**summary(stage_runs), "runs": stage_runs} for stage, stage_runs in done.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[50_000, 1_000_000], help="numbers of customers")
    parser.add_argument("--repeats", type=int, nargs="+", default=[1], help="one for every size, or one per size")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/pipeline.json")
    parser.add_argument("--baseline", type=Path, help="a checkout of the code to compare with, with its own .venv")
    parser.add_argument("--baseline-skip", nargs="*", default=[], choices=STAGES, help="stages the baseline skips")
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
        "baseline": None
        if args.baseline is None
        else {
            "path": str(args.baseline),
            "git_commit": subprocess.run(
                ["git", "-C", str(args.baseline), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
            ).stdout.strip(),
            "skipped_stages": args.baseline_skip,
        },
        "sizes": [],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for size, n in zip(args.sizes, repeats, strict=True):
        results["sizes"].append(bench_size(size, n, args.baseline, tuple(args.baseline_skip)))
        # Written after every size, so a long run that is stopped keeps what it measured.
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results: {args.out}")


if __name__ == "__main__":
    main()
