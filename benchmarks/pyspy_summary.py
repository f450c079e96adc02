"""A py-spy profile of `churn evaluate` (or, with `--stage validate`, of `churn validate`; raw, collapsed stacks of
every thread) summed per thread and per part of the stage: seconds each thread spent in each part (samples / rate).
With `--idle` py-spy also samples threads that wait (a lock, a future, the GIL); the frames where they wait are
counted under `waiting`. Under load these are thread-seconds, runnable or running: shares compare, absolute seconds
inflate with the machine's load.

    py-spy record --threads --idle -r 50 -f raw -o /tmp/evaluate.raw -- .venv/bin/churn evaluate ...
    .venv/bin/python benchmarks/pyspy_summary.py /tmp/evaluate.raw --rate 50 --out benchmarks/results/x.json
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from pathlib import Path

# The first of these found in a stack (outermost call first in this list's order) names its part.
PARTS = (
    ("waiting", "Future.result"),
    ("waiting", "Condition.wait"),
    ("BG/NBD and Pareto/NBD: fits", "fit_btyd"),
    ("BG/NBD and Pareto/NBD: predictions", "btyd_churn_scores"),
    ("RFM regression", "rfm_logistic"),
    ("recency rule", "recency_rule"),
    ("model predictions", "predict_raw"),
    ("paired bootstrap", "models/bootstrap.py"),
    ("plots and figures", "write_plots"),
    ("metrics", "evaluate_methods"),
    ("reading the fitting rows", "read_labelled_rows"),
    ("reading the test rows", "read_cutoff_rows"),
    ("latent oracle", "oracle_probability"),
    ("pymc-marketing import (warm-up thread)", "warm_up_btyd"),
    ("observable oracle: reading tables", "read_tables"),
    ("observable oracle: history", "observed_history"),
    ("observable oracle: sampling (block threads)", "churn_probability (pipelines/sources/synthetic_oracle"),
    ("imports", "_find_and_load"),
    # A pool's thread between tasks (its queue's wait has no Python frame of its own).
    ("waiting", "_worker (concurrent/futures/thread.py"),
)


# The same for `churn validate` (--stage validate).
VALIDATE_PARTS = (
    ("waiting", "Future.result"),
    ("waiting", "Condition.wait"),
    ("writing the outputs", "write_outputs"),
    ("writing the outputs", "DataFrame.to_parquet"),  # on the writer threads
    ("Great Expectations: imports and context", "gx_context"),
    ("reading Parquet", "_read_file"),
    ("noise lines", "split_noise_lines"),
    ("trimming text", "trim_missing"),
    ("ids (Excel's numbers, zero-padded twins)", "parse_ids"),
    ("ids (Excel's numbers, zero-padded twins)", "zero_padded_twins"),
    ("reading the other columns", "_read_column"),
    ("unique keys' equality classes", "unique_column_classes"),
    ("exact duplicate rows", "exact_duplicates"),
    ("reference lookups", "ReferenceKeys.positions"),
    ("other lookup and day columns", "add_lookup_columns"),
    ("other lookup and day columns", "add_day_columns"),
    ("Great Expectations: the suite", "_run_suite"),
    ("selecting rows", "select_rows"),
    ("quarantine rows", "_quarantine_rows"),
    ("imports", "_find_and_load"),
    ("waiting", "_worker (concurrent/futures/thread.py"),
)
STAGE_PARTS = {"evaluate": PARTS, "validate": VALIDATE_PARTS}


def part(stack: str, parts: tuple[tuple[str, str], ...] = PARTS) -> str:
    for name, marker in parts:
        if marker in stack:
            return name
    return "other"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("raw", type=Path)
    parser.add_argument("--rate", type=float, default=50.0, help="py-spy's samples per second (-r)")
    parser.add_argument("--stage", choices=list(STAGE_PARTS), default="evaluate", help="the stage profiled")
    parser.add_argument("--note", default="")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    seconds: dict[str, Counter[str]] = defaultdict(Counter)
    for line in args.raw.read_text().splitlines():
        stack, count = line.rsplit(" ", 1)
        thread = stack.split(";", 1)[0]  # "thread (id): name": a pool's names repeat in another pool
        seconds[thread][part(stack, STAGE_PARTS[args.stage])] += int(count) / args.rate
    threads = {
        thread: {name: round(value, 1) for name, value in parts.most_common()}
        for thread, parts in sorted(seconds.items(), key=lambda item: -sum(item[1].values()))
        if sum(parts.values()) >= 2.0
    }
    busy: Counter[str] = Counter()
    for parts in seconds.values():
        busy.update({name: value for name, value in parts.items() if name != "waiting"})
    result = {
        "note": args.note,
        "thread_seconds": {thread: round(sum(seconds[thread].values()), 1) for thread in threads},
        "by_thread": threads,
        "all_threads_not_waiting": {name: round(value, 1) for name, value in busy.most_common()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["by_thread"], indent=1))


if __name__ == "__main__":
    main()
