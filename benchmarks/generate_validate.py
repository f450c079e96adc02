"""Benchmark the `generate` and `validate` stages: wall time and peak RSS per shop size.

Each step runs as its own `churn` subprocess, so its peak RSS (ru_maxrss from os.wait4) is that step's alone. Every
repeat generates the shop afresh and validates it; the row counts come from the validation report.

    .venv/bin/python benchmarks/generate_validate.py --sizes 50000 1000000 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
CHURN = Path(sys.executable).parent / "churn"
PACKAGES = ("pandas", "pyarrow", "numpy", "great_expectations")
STEPS = ("generate", "validate")
GIB = 1024**3


def machine_info(packages: tuple[str, ...] = PACKAGES) -> dict[str, Any]:
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu_model(),
        "ram_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "packages": {name: version(name) for name in packages},
        "git_commit": git("rev-parse", "HEAD"),
        "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
    }


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()


def write_params(size: int, work: Path, repo: Path = REPO) -> Path:
    """`repo`'s params.yaml at `size` customers, reading the data in `work`."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["generate"]["n_customers"] = size
    params["data"]["path"] = str(work / "raw")
    path = work / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def step_command(step: str, params: Path, work: Path) -> list[str]:
    if step == "generate":
        return [
            *(str(CHURN), "generate", "--params", str(params)),
            *("--out", str(work / "raw"), "--truth", str(work / "truth")),
        ]
    return [
        *(str(CHURN), "validate", "--params", str(params)),
        *("--validated", str(work / "validated"), "--quarantine", str(work / "quarantine")),
        *("--report", str(work / "validation.json"), "--report-md", str(work / "validation.md")),
    ]


def measure(command: list[str], log: Path, cwd: Path = REPO) -> dict[str, float]:
    """Run `command` to completion; its wall time (s), CPU time (user + system, s: steadier than wall time on a
    shared machine) and peak RSS (GiB). Output goes to `log`."""
    with log.open("w") as output:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=cwd, stdout=output, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{shlex.join(command)} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
    return {
        "seconds": round(seconds, 2),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_gib": round(usage.ru_maxrss * 1024 / GIB, 3),
    }


def report_rows(report: Path) -> dict[str, dict[str, int]]:
    tables = json.loads(report.read_text())["tables"]
    return {
        name: {key: table[key] for key in ("rows_in", "accepted", "quarantined")}
        for name, table in tables.items()
        if table["present"]
    }


def summary(runs: list[dict[str, float]]) -> dict[str, float]:
    seconds = [run["seconds"] for run in runs]
    return {
        "median_seconds": round(statistics.median(seconds), 2),
        "min_seconds": min(seconds),
        "max_seconds": max(seconds),
        "median_peak_rss_gib": round(statistics.median(run["peak_rss_gib"] for run in runs), 3),
        "max_peak_rss_gib": max(run["peak_rss_gib"] for run in runs),
        "median_cpu_seconds": round(statistics.median(run.get("cpu_seconds", float("nan")) for run in runs), 2),
    }


def bench_size(size: int, repeats: int) -> dict[str, Any]:
    runs: dict[str, list[dict[str, float]]] = {step: [] for step in STEPS}
    rows: dict[str, dict[str, int]] | None = None
    with tempfile.TemporaryDirectory(prefix=f"churn-bench-{size}-") as tmp:
        work = Path(tmp)
        params = write_params(size, work)
        for repeat in range(1, repeats + 1):
            for step in STEPS:
                run = measure(step_command(step, params, work), work / f"{step}.log")
                runs[step].append(run)
                print(
                    f"{size:>9,} customers  {step:<8} {repeat}/{repeats}: {run['seconds']:8.1f} s  "
                    f"{run['peak_rss_gib']:6.2f} GiB",
                    flush=True,
                )
            repeat_rows = report_rows(work / "validation.json")
            if rows is not None and repeat_rows != rows:
                raise RuntimeError(
                    f"row counts differ between repeats at {size} customers; the stages are not deterministic"
                )
            rows = repeat_rows
    return {
        "n_customers": size,
        "repeats": repeats,
        "rows": rows,
        "steps": {step: {**summary(step_runs), "runs": step_runs} for step, step_runs in runs.items()},
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[50_000, 1_000_000], help="numbers of customers")
    parser.add_argument(
        "--repeats", type=int, nargs="+", default=[3], help="repeats: one for every size, or one per size"
    )
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/generate_validate.json")
    args = parser.parse_args()
    if len(args.repeats) not in (1, len(args.sizes)):
        parser.error("--repeats takes one value, or one per size")
    return args


def main() -> None:
    args = parse_args()
    repeats = args.repeats * len(args.sizes) if len(args.repeats) == 1 else args.repeats
    machine = machine_info()
    print(
        f"machine: {machine['nproc']} cpus ({machine['cpu']}), {machine['ram_gib']} GiB RAM, "
        f"Python {machine['python']}, {machine['packages']}",
        flush=True,
    )
    results = {
        "benchmark": "generate_validate",
        "started_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join(["python", "benchmarks/generate_validate.py", *sys.argv[1:]]),
        "machine": machine,
        "sizes": [bench_size(size, n) for size, n in zip(args.sizes, repeats, strict=True)],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results: {args.out}")


if __name__ == "__main__":
    main()
