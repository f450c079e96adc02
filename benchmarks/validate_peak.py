"""Validate's peak memory and CPU at given commits, one `churn validate` process after another on a prepared shop.

Each commit is extracted once (`git archive`) and run on this checkout's interpreter and packages, so only the code
differs; the peak is the process's `ru_maxrss` from `os.wait4` (validate starts no child processes). Commits may
repeat, for interleaved pairs (`--commits OLD NEW NEW OLD`). With two distinct commits, their last runs' outputs are
compared: every validated and quarantined Parquet table (`pyarrow.Table.equals`) and `validation.json` apart from
its paths.

    .venv/bin/python benchmarks/validate_peak.py --shop /tmp/s9-1m --work /tmp/validate-peak \\
        --commits 63a53a1 0f84672 0f84672 63a53a1 --out benchmarks/results/validate_peak_1m_s12_pairs.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
from generate_validate import REPO, measure


def extract(commit: str, work: Path) -> Path:
    code = work / f"code-{commit}"
    if not code.exists():
        code.mkdir(parents=True)
        archive = subprocess.run(["git", "-C", str(REPO), "archive", commit], check=True, capture_output=True)
        subprocess.run(["tar", "-x", "-C", str(code)], input=archive.stdout, check=True)
    return code


def run_validate(code: Path, shop: Path, out: Path) -> dict[str, float]:
    """One `validate` of `shop` by the snapshot `code` (first on sys.path, before this checkout's install)."""
    out.mkdir(parents=True, exist_ok=True)
    entry = f"import sys; sys.path.insert(0, {str(code)!r}); from pipelines.cli import app; app()"
    command = [sys.executable, "-c", entry, "validate",
               "--params", str(shop / "params.yaml"), "--validated", str(out / "validated"),
               "--quarantine", str(out / "quarantine"), "--report", str(out / "validation.json"),
               "--report-md", str(out / "validation.md")]  # fmt: skip
    load = os.getloadavg()[0]
    return {**measure(command, out / "validate.log", cwd=code), "load_before": round(load, 1)}


def same_outputs(first: Path, second: Path) -> dict[str, bool]:
    same: dict[str, bool] = {}
    for folder in ("validated", "quarantine"):
        for path in sorted((first / folder).glob("*.parquet")):
            other = second / folder / path.name
            same[f"{folder}/{path.name}"] = other.exists() and pq.read_table(path).equals(pq.read_table(other))
    reports = [json.loads((run / "validation.json").read_text().replace(str(run), "<run>")) for run in (first, second)]
    same["validation.json"] = reports[0] == reports[1]
    return same


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shop", type=Path, required=True, help="a prepared shop (benchmarks/prepare.py)")
    parser.add_argument("--work", type=Path, required=True, help="scratch folder for the code and the outputs")
    parser.add_argument("--commits", nargs="+", required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    runs = []
    for commit in args.commits:
        code = extract(commit, args.work)
        run = {"commit": commit, **run_validate(code, args.shop, args.work / f"out-{commit}")}
        print(json.dumps(run), flush=True)
        runs.append(run)
    record: dict[str, object] = {"shop": str(args.shop), "runs": runs}
    distinct = list(dict.fromkeys(args.commits))
    if len(distinct) == 2:
        record["same_outputs"] = same_outputs(*(args.work / f"out-{commit}" for commit in distinct))
    args.out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
