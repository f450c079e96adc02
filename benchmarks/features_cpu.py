"""CPU and wall seconds of the features' shared tables and of each cutoff's query, in one process, for one checkout.

On a shared machine CPU seconds (getrusage: user + system) move less with the load than wall time. Run it for the old
and the new checkout back to back (each as its own process) on the same validated shop:

    .venv/bin/python benchmarks/features_cpu.py /tmp/churn-old /tmp/w16/m1 3     # the last 3 labelled cutoffs
    .venv/bin/python benchmarks/features_cpu.py .              /tmp/w16/m1 3

The shop folder holds validated/ and validation.json; 0 cutoffs means the whole schedule of the checkout's
params.yaml. Prints one JSON line: the shared tables' CPU and wall time, (cutoff, CPU, wall) per cutoff, the totals.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    code, data, count = Path(sys.argv[1]).resolve(), Path(sys.argv[2]), int(sys.argv[3])
    sys.path.insert(0, str(code))  # that checkout's features/
    import ibis
    import pandas as pd
    import yaml

    from features.build import features_at, shared_tables
    from features.cutoffs import FeatureParams, cutoff_schedule, label_observed
    from features.inputs import read_validated

    as_of = pd.Timestamp(json.loads((data / "validation.json").read_text())["as_of"])
    block = dict(yaml.safe_load((code / "params.yaml").read_text())["features"])
    block.pop("strategy", None)
    params = FeatureParams.from_dict(block)
    schedule = cutoff_schedule(pd.Timestamp(params.first_cutoff), params.every_days, as_of)
    labelled = [c for c in schedule if label_observed(c, params.horizon_days, as_of)]
    cutoffs = labelled[-count:] if count > 0 else schedule
    cpu_start, wall_start = cpu_seconds(), time.perf_counter()
    inputs = read_validated(ibis.duckdb.connect(), data / "validated", as_of)
    shared = shared_tables(inputs, params, cache=True)
    out: dict[str, object] = {
        "code": str(code),
        "shared_cpu": round(cpu_seconds() - cpu_start, 2),
        "shared_wall": round(time.perf_counter() - wall_start, 2),
    }
    per_cutoff, rows = [], 0
    for cutoff in cutoffs:
        cpu, wall = cpu_seconds(), time.perf_counter()
        rows += features_at(inputs, cutoff, params, shared).to_pyarrow().num_rows
        per_cutoff.append((str(cutoff.date()), round(cpu_seconds() - cpu, 2), round(time.perf_counter() - wall, 2)))
    out |= {
        "cutoffs": per_cutoff,
        "total_cpu": round(cpu_seconds() - cpu_start, 2),
        "total_wall": round(time.perf_counter() - wall_start, 2),
        "rows": rows,
        "load_1min_after": float(Path("/proc/loadavg").read_text().split()[0]),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
