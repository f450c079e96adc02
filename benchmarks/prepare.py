"""Prepare a folder of stage inputs for `benchmarks/stages.py`: run `generate`, `validate`, `features` and `train`
(or the first ones: `--stages generate validate` for the inputs of `validate` and `features` benchmarks) once, each
as its own `churn` subprocess, into `--out` with the file names `pipeline.py`'s stages use (raw, truth, validated,
quarantine, validation.json, features.parquet, dictionary.csv, backtest, current).

`--code` picks the checkout whose `.venv/bin/churn` and params.yaml run the stages (default: this one), so the
inputs can be made by the older code a comparison starts from. Each stage's log, time and peak RSS go to the folder.

    nice -n 5 .venv/bin/python benchmarks/prepare.py --customers 1000000 --out /tmp/churn-1m
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from generate_validate import REPO, measure, write_params
from pipeline import stage_command

STAGES = ("generate", "validate", "features", "train")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True, help="a new folder for the inputs")
    parser.add_argument("--code", type=Path, default=REPO, help="the checkout (with its own .venv) that runs them")
    parser.add_argument(
        "--stages",
        nargs="+",
        choices=STAGES,
        default=list(STAGES),
        help="the first stages only (each needs those before)",
    )
    args = parser.parse_args()
    if tuple(args.stages) != STAGES[: len(args.stages)]:
        parser.error(f"--stages must be the first stages of {' '.join(STAGES)}, in that order")
    args.out.mkdir(parents=True)
    params = write_params(args.customers, args.out, args.code)
    runs = {}
    for stage in args.stages:
        load = os.getloadavg()[0]
        command = stage_command(stage, params, args.out, args.code / ".venv/bin/churn")
        runs[stage] = {**measure(command, args.out / f"{stage}.log", cwd=args.code), "load_1min_before": load}
        print(f"{stage:<9} {runs[stage]['seconds']:8.1f} s  {runs[stage]['peak_rss_gib']:6.2f} GiB  (load {load:.1f})",
              flush=True)  # fmt: skip
        (args.out / "prepare.json").write_text(json.dumps({"code": str(args.code), "runs": runs}, indent=2) + "\n")


if __name__ == "__main__":
    main()
