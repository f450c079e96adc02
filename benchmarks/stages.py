"""Benchmark single stages of the pipeline, old code against new, on one prepared shop.

`benchmarks/pipeline.py` runs everything from `generate`; at 1M customers that is half an hour per code version on
these machines. This script takes a folder that a pipeline run left behind (`--prepared`: raw, truth, validated,
validation.json, features.parquet, dictionary.csv, backtest, current, as `pipeline.py`'s stages name them) and runs
the chosen stages on it, each as its own `churn` subprocess: for every repeat and stage, the old code (`--baseline`,
a checkout with its own .venv) right before the new, so both share the machine's busy and quiet spells. Each run gets
its own scratch folder holding links to the prepared inputs and its own outputs; nothing prepared is overwritten.

Memory: `peak_rss_gib` is the kernel's peak RSS of the largest single process of the run (os.wait4's ru_maxrss: the
`churn` process or, if larger, one of its children; never their sum). `peak_tree_pss_gib` is the peak of the summed
PSS (proportional set size) of the `churn` process and all its descendants at one instant, sampled with psutil every
0.2 s: a stage that runs work in a process of its own (a compiler, a worker pool) needs the sum. PSS, not RSS,
because a child forked to exec a compiler (PyTensor's) shows its parent's whole RSS until the exec, so a summed RSS
(`peak_tree_rss_gib`, kept beside it) can count the parent twice; PSS splits shared pages between their sharers. A
peak shorter than 0.2 s may be missed. CPU seconds (user + system) include every descendant the run waited for.

    .venv/bin/python benchmarks/stages.py --prepared /tmp/churn-1m --customers 1000000 --baseline /tmp/churn-old \
        --stages validate evaluate score_daily --repeats 2
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml
from generate_validate import CHURN, GIB, REPO, machine_info, summary, write_params
from pipeline import PACKAGES, stage_command

# What each stage writes (relative to its folder): these are never linked from the prepared folder.
WRITES = {
    "generate": ("raw", "truth"),
    "validate": ("validated", "quarantine", "validation.json", "validation.md"),
    "features": ("features.parquet", "dictionary.csv", "dictionary.md", "features.json"),
    "train": ("backtest", "current"),
    "evaluate": ("metrics.json", "evaluation.json", "plots", "figures"),
    "score": tuple(f"risk.{ext}" for ext in ("parquet", "csv", "json", "md")),
    "score_daily": tuple(f"daily.{ext}" for ext in ("parquet", "csv", "json", "md")),
}
# features' `rounded` digest: 12 of a double's 52 mantissa bits, about 1e-12 relative.
FLOAT_BITS_DROPPED = 12
# How often the process tree's RSS is sampled (s).
SAMPLE_SECONDS = 0.2
INPUTS = ("raw", "truth", "validated", "validation.json", "features.parquet", "dictionary.csv", "backtest", "current")


def measure(command: list[str], log: Path, cwd: Path, limit_gib: float | None = None) -> dict[str, Any]:
    """Run `command` to completion with its output in `log`: wall time (s), CPU time (user + system of it and every
    descendant it waited for, s), the peak RSS of its largest single process (ru_maxrss, GiB) and the peaks of the
    process tree's summed PSS and RSS (sampled, GiB), with the most processes seen at once. A tree whose PSS is over
    `limit_gib` is killed (RuntimeError), so that a run over the memory budget does not take the machine down."""
    with log.open("w") as output:
        started = time.perf_counter()
        # Its own session: the whole tree can be killed as one group.
        process = subprocess.Popen(command, cwd=cwd, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
        done = threading.Event()
        peak = dict.fromkeys(
            ("pss", "rss", "root_at_pss_peak", "children_at_pss_peak", "root", "children", "processes"), 0
        )
        limit = None if limit_gib is None else int(limit_gib * GIB)
        children_cpu: dict[int, float] = {}
        sampler = threading.Thread(target=sample_tree, args=(process.pid, done, peak, limit, children_cpu), daemon=True)
        sampler.start()
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        done.set()
        sampler.join()
    code = os.waitstatus_to_exitcode(status)
    if limit is not None and peak["pss"] > limit:
        raise RuntimeError(f"{shlex.join(command)} killed: its process tree held {peak['pss'] / GIB:.2f} GiB (PSS)")
    if code != 0:
        raise RuntimeError(f"{shlex.join(command)} exited with {code}:\n{log.read_text()[-3000:]}")
    return {
        "seconds": round(seconds, 2),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_gib": round(usage.ru_maxrss * 1024 / GIB, 3),
        "peak_tree_pss_gib": round(peak["pss"] / GIB, 3),
        "peak_tree_rss_gib": round(peak["rss"] / GIB, 3),
        # At the tree's PSS peak: the `churn` process's PSS and its descendants' (summed); then each side's own peak.
        "tree_peak_parts_gib": [round(peak[key] / GIB, 3) for key in ("root_at_pss_peak", "children_at_pss_peak")],
        "sampled_peak_root_pss_gib": round(peak["root"] / GIB, 3),
        "sampled_peak_children_pss_gib": round(peak["children"] / GIB, 3),
        "most_processes": peak["processes"],
        # The descendants' CPU seconds as last sampled (up to SAMPLE_SECONDS short of their end): the split of
        # `cpu_seconds` between the `churn` process and its children.
        "sampled_children_cpu_seconds": round(sum(children_cpu.values()), 2),
    }


def sample_tree(
    pid: int, done: threading.Event, peak: dict[str, int], limit: int | None, children_cpu: dict[int, float]
) -> None:
    """Until `done`, every SAMPLE_SECONDS: the summed PSS and RSS of process `pid` and its descendants into `peak`,
    with what the root and the descendants held (PSS) at the PSS peak and each side's own peak, and each
    descendant's CPU seconds so far into `children_cpu` (by pid); over `limit` bytes of PSS, the process group `pid`
    leads is killed."""
    root = psutil.Process(pid)
    while not done.is_set():
        try:
            processes = [root, *root.children(recursive=True)]
        except psutil.Error:  # the root has ended
            return
        pss, rss = [], []
        for process in processes:
            try:
                memory = process.memory_full_info()
                if process.pid != pid:
                    times = process.cpu_times()
                    children_cpu[process.pid] = times.user + times.system
            except psutil.Error:  # a child that ended between the listing and the reading (the root: 0)
                pss.append(0)
                rss.append(0)
                continue
            pss.append(memory.pss)
            rss.append(memory.rss)
        total = sum(pss)
        if total > peak["pss"]:
            peak.update(pss=total, root_at_pss_peak=pss[0], children_at_pss_peak=total - pss[0])
        peak["rss"] = max(peak["rss"], sum(rss))
        peak["root"] = max(peak["root"], pss[0])
        peak["children"] = max(peak["children"], total - pss[0])
        peak["processes"] = max(peak["processes"], len(processes))
        if limit is not None and total > limit:
            os.killpg(pid, signal.SIGKILL)
            return
        done.wait(SAMPLE_SECONDS)


def tree_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """`summary` of the runs, with the process tree's peak when the runs have it."""
    result: dict[str, Any] = summary(runs)
    for key in ("peak_tree_pss_gib", "peak_tree_rss_gib"):
        trees = [run[key] for run in runs if key in run]
        if trees:
            result.update({f"median_{key}": round(float(np.median(trees)), 3), f"max_{key}": max(trees)})
    return result


def scratch(prepared: Path, stage: str, folder: Path, customers: int, repo: Path) -> Path:
    """A folder with links to the prepared inputs the stage reads; returns its params.yaml (`repo`'s own: an older
    checkout may not know a newer block)."""
    folder.mkdir(parents=True)
    for name in INPUTS:
        if name not in WRITES[stage] and (prepared / name).exists():
            (folder / name).symlink_to(prepared / name)
    return write_params(customers, folder, repo)


def outcome(stage: str, folder: Path) -> dict[str, Any]:
    """What the run produced that must not change (generate, validate, features, score) or may move within a band
    (evaluate)."""
    if stage == "generate":  # byte for byte: every file the shop and its truth are written to
        return {
            str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()[:16]
            for kind in ("raw", "truth")
            for path in sorted((folder / kind).rglob("*"))
            if path.is_file()
        }
    if stage == "validate":
        tables = json.loads((folder / "validation.json").read_text())["tables"]
        counts = {
            name: {k: t[k] for k in ("rows_in", "accepted", "quarantined")}
            for name, t in tables.items()
            if t["present"]
        }
        # Row for row: a digest of every accepted and quarantined row, in the order written.
        digests = {
            f"{kind}/{path.stem}": hashlib.sha256(
                pd.util.hash_pandas_object(pd.read_parquet(path), index=False).to_numpy().tobytes()
            ).hexdigest()[:16]
            for kind in ("validated", "quarantine")
            for path in sorted((folder / kind).glob("*.parquet"))
        }
        return {"rows": counts, "digests": digests}
    if stage == "evaluate":
        metrics = json.loads((folder / "evaluation.json").read_text())
        return {
            "roc_auc": {name: round(values["roc_auc"], 6) for name, values in metrics["overall"].items()},
            "bootstrap": metrics.get("bootstrap"),
        }
    if stage == "features":
        return features_outcome(folder / "features.parquet")
    if stage in ("score", "score_daily"):
        name = "risk" if stage == "score" else "daily"
        report = json.loads((folder / f"{name}.json").read_text())
        written = pd.read_parquet(folder / f"{name}.parquet")
        reasons = [column for column in written.columns if column.startswith("reason_")]
        # The list row for row, and its reasons alone: old and new code must write the same.
        return {
            "customers_scored": report["customers_scored"],
            "customers_written": len(written),
            "list_digest": digest(written),
            "reasons_digest": digest(written[["customer_id", *reasons]]),
        }
    return {}


def digest(frame: pd.DataFrame) -> str:
    return hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()).hexdigest()[:16]


def features_outcome(path: Path) -> dict[str, Any]:
    """The feature table's rows and columns, with two digests of its rows sorted by customer and cutoff, column by
    column (a 1M table is never held whole): `exact` over every value as written, and `rounded` with the floats'
    lowest FLOAT_BITS_DROPPED mantissa bits cleared (about 1e-12 relative). DuckDB sums floats in whatever order its
    threads finish, so two runs of one code may differ in a last bit: then only `rounded` agrees (and, rarely, not
    even it, where a value sits at a rounding boundary; `benchmarks/features.py`'s full comparison bounds every
    difference)."""
    parquet = pq.ParquetFile(path)
    keys = parquet.read(columns=["customer_id", "cutoff"])
    order = pc.sort_indices(keys, sort_keys=[("customer_id", "ascending"), ("cutoff", "ascending")])
    exact, rounded = hashlib.sha256(), hashlib.sha256()
    for name in parquet.schema_arrow.names:
        column = parquet.read(columns=[name]).column(0).take(order)
        exact.update(_column_hashes(column, drop_bits=0))
        rounded.update(_column_hashes(column, drop_bits=FLOAT_BITS_DROPPED))
    return {
        "rows": parquet.metadata.num_rows,
        "columns": parquet.schema_arrow.names,
        "exact": exact.hexdigest()[:16],
        "rounded": rounded.hexdigest()[:16],
    }


def _column_hashes(column: pa.ChunkedArray, drop_bits: int) -> bytes:
    """Per-row hashes of a column (nulls hash apart from every value); floats with their lowest `drop_bits` bits
    cleared."""
    values = column.to_pandas()
    if pa.types.is_floating(column.type):
        bits = values.to_numpy(dtype=np.float64, na_value=np.nan).view(np.int64) & ~((1 << drop_bits) - 1)
        values = pd.Series(bits, dtype="Int64").mask(column.is_null().to_numpy(zero_copy_only=False))
    return pd.util.hash_pandas_object(values, index=False).to_numpy().tobytes()


def set_params(path: Path, settings: list[list[str]]) -> None:
    """Each (block.key, value) of `settings` into the params file; the value is read as YAML, a date kept as
    written."""
    params = yaml.safe_load(path.read_text())
    for name, text in settings:
        block, key = name.split(".", 1)
        value = yaml.safe_load(text)
        params[block][key] = text if isinstance(value, date) else value
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def keep_outputs(stage: str, folder: Path, kept: Path) -> None:
    """Move what the stage wrote in `folder` to `kept` (before the scratch folder goes)."""
    kept.mkdir(parents=True)
    for name in WRITES[stage]:
        if (folder / name).exists():
            shutil.move(folder / name, kept / name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prepared", type=Path, required=True)
    parser.add_argument("--customers", type=int, required=True, help="the shop size the prepared folder was made at")
    parser.add_argument("--baseline", type=Path, help="a checkout of the code to compare with, with its own .venv")
    parser.add_argument("--stages", nargs="+", choices=list(WRITES), required=True)
    parser.add_argument("--baseline-skip", nargs="*", default=[], choices=list(WRITES))
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument(
        "--set",
        nargs=2,
        action="append",
        default=[],
        metavar=("BLOCK.KEY", "VALUE"),
        help="a param for every run, old and new (e.g. --set features.first_cutoff 2025-02-05); repeatable",
    )
    parser.add_argument(
        "--limit-gib", type=float, help="kill a run whose process tree holds more than this (GiB), and stop"
    )
    parser.add_argument("--logs", type=Path, help="a folder to keep every run's log in (the scratch folders go)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/stages.json")
    parser.add_argument(
        "--keep", type=Path, help="a folder to keep every run's outputs in (<code>-<stage>-<repeat>/), to compare them"
    )
    args = parser.parse_args()
    codes = {"new": (REPO, CHURN)}
    if args.baseline is not None:
        codes = {"baseline": (args.baseline, args.baseline / ".venv/bin/churn"), **codes}
    results: dict[str, Any] = {
        "benchmark": "stages",
        "started_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join(["python", "benchmarks/stages.py", *sys.argv[1:]]),
        "machine": machine_info(PACKAGES),
        "baseline_commit": None
        if args.baseline is None
        else subprocess.run(
            ["git", "-C", str(args.baseline), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip(),
        "customers": args.customers,
        "runs": {code: {stage: [] for stage in args.stages} for code in codes},
        "outcomes": {code: {} for code in codes},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="churn-stages-") as tmp:
        for repeat in range(1, args.repeats + 1):
            for stage in args.stages:
                for code, (root, churn) in codes.items():
                    if code == "baseline" and stage in args.baseline_skip:
                        continue
                    folder = Path(tmp) / f"{code}-{stage}-{repeat}"
                    params = scratch(args.prepared, stage, folder, args.customers, root)
                    set_params(params, args.set)
                    load = os.getloadavg()
                    run = {
                        **measure(
                            stage_command(stage, params, folder, churn), folder / f"{stage}.log", root, args.limit_gib
                        ),
                        "load_1min_before": load[0],
                        "load_1_5_15min_before": [round(value, 2) for value in load],
                        "load_1_5_15min_after": [round(value, 2) for value in os.getloadavg()],
                    }
                    results["runs"][code][stage].append(run)
                    if args.logs is not None:
                        args.logs.mkdir(parents=True, exist_ok=True)
                        shutil.copy(folder / f"{stage}.log", args.logs / f"{code}-{stage}-{repeat}.log")
                    results["outcomes"][code].setdefault(stage, []).append(outcome(stage, folder))
                    if args.keep is not None:
                        keep_outputs(stage, folder, args.keep / folder.name)
                    print(f"{code:<8} {stage:<11} {repeat}/{args.repeats}: {run['seconds']:8.1f} s  "
                          f"cpu {run['cpu_seconds']:8.1f} s  {run['peak_rss_gib']:6.2f} GiB  "
                          f"tree {run['peak_tree_pss_gib']:6.2f} GiB PSS (load {load[0]:.1f})", flush=True)  # fmt: skip
                    args.out.write_text(json.dumps(results, indent=2) + "\n")
    results["summary"] = {
        code: {stage: tree_summary(runs) for stage, runs in stages.items() if runs}
        for code, stages in results["runs"].items()
    }
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results: {args.out}")


if __name__ == "__main__":
    main()
