"""Where one stage spends its time: the stage as `churn` runs it, under cProfile, on a folder `prepare.py` made.

The stage runs in a scratch folder with links to the prepared inputs (as `stages.py` does), under
`python -m cProfile`; the summary keeps the functions with the most cumulative time (the call tree's big branches)
and the most own time (where the CPU goes), as seconds and shares of the whole run, plus the wall time of the
profiled run (cProfile adds overhead to Python-heavy code, so time the stage itself with `stages.py`).

    nice -n 5 .venv/bin/python benchmarks/stage_profile.py --prepared /tmp/speed-1m --customers 1000000 \
        --stage evaluate --out benchmarks/results/evaluate_profile_1m.json [--code /work/wt-speed-base]
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import shlex
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from generate_validate import REPO, machine_info, measure
from pipeline import PACKAGES, stage_command
from stages import WRITES, scratch

TOP = 40


def function_name(key: tuple[str, int, str]) -> str:
    """`path:line(function)` with the path from site-packages or the repository on, so it reads the same anywhere."""
    path, line, name = key
    for marker in ("site-packages/", f"{REPO}/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{path}:{line}({name})"


def top_functions(stats: pstats.Stats, sort: str, total: float) -> list[dict[str, Any]]:
    """The TOP functions by `sort` ("cumulative" or "tottime"): calls, own and cumulative seconds and shares."""
    entries = stats.stats  # type: ignore[attr-defined]  # pstats keeps its table there
    column = 3 if sort == "cumulative" else 2
    ranked = sorted(entries.items(), key=lambda item: item[1][column], reverse=True)[:TOP]
    return [
        {
            "function": function_name(key),
            "calls": calls,
            "own_seconds": round(own, 2),
            "cumulative_seconds": round(cumulative, 2),
            "cumulative_share": round(cumulative / total, 3),
        }
        for key, (_, calls, own, cumulative, _) in ranked
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prepared", type=Path, required=True)
    parser.add_argument("--customers", type=int, required=True)
    parser.add_argument("--stage", choices=list(WRITES), required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--keep", type=Path, help="a file to keep the raw cProfile output in")
    parser.add_argument("--code", type=Path, default=REPO, help="the checkout (with its own .venv) to profile")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="churn-profile-") as tmp:
        folder = Path(tmp) / args.stage
        params = scratch(args.prepared, args.stage, folder, args.customers, args.code)
        raw = args.keep or Path(tmp) / "stage.prof"
        command = stage_command(args.stage, params, folder, args.code / ".venv/bin/churn")
        profiled = [str(args.code / ".venv/bin/python"), "-m", "cProfile", "-o", str(raw), *command]
        load = os.getloadavg()[0]
        run = {**measure(profiled, folder / "stage.log", cwd=args.code), "load_1min_before": load}
        log_tail = (folder / "stage.log").read_text().splitlines()[-30:]
        stats = pstats.Stats(str(raw))
    total = stats.total_tt  # type: ignore[attr-defined]
    result = {
        "benchmark": "stage_profile",
        "started_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join(["python", "benchmarks/stage_profile.py", *sys.argv[1:]]),
        "machine": machine_info(PACKAGES),
        "code": str(args.code),
        "code_commit": subprocess.run(
            ["git", "-C", str(args.code), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip(),
        "stage": args.stage,
        "customers": args.customers,
        "profiled_run": run,
        "profiled_seconds": round(total, 2),
        "by_cumulative": top_functions(stats, "cumulative", total),
        "by_own_time": top_functions(stats, "tottime", total),
        "log_tail": log_tail,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{args.stage}: {run['seconds']} s under cProfile (load {load:.1f}); results: {args.out}")


if __name__ == "__main__":
    main()
