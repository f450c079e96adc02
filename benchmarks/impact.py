"""Benchmark the `impact` stage: wall time and peak RSS on synthetic shops of given sizes, its estimates against the
generator's true effects (interval coverage, the unadjusted difference's bias), and what UCI Online Retail's credit
notes can say.

Each size generates and validates a shop (not timed here: benchmarks/generate_validate.py times those), then runs
`churn impact` as its own subprocess (peak RSS from os.wait4), without MLflow (--no-track).

    .venv/bin/python benchmarks/impact.py --sizes 50000 --online-retail ../shared/data/uci-online-retail
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from generate_validate import CHURN, REPO, machine_info, measure, step_command

PACKAGES = ("pandas", "duckdb", "ibis-framework", "lightgbm", "scikit-learn")
ONLINE_RETAIL = {"source": "online_retail", "as_of": "2011-12-10"}
ONLINE_RETAIL_FEATURES = {"first_cutoff": "2010-06-01"}  # the history starts on 2009-12-01


def write_params(
    work: Path, size: int | None, data: dict[str, Any], impact: dict[str, Any], features: dict[str, Any] | None = None
) -> Path:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["features"].update(features or {})
    if size is not None:
        params["generate"]["n_customers"] = size
    params["data"].update(data)
    params["impact"].update(impact)
    path = work / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def impact_command(params: Path, work: Path) -> list[str]:
    return [
        *(str(CHURN), "impact", "--params", str(params), "--validated", str(work / "validated")),
        *("--validation-report", str(work / "validation.json"), "--truth", str(work / "truth")),
        *("--metrics", str(work / "impact.json"), "--report", str(work / "impact_detail.json")),
        *("--report-md", str(work / "impact.md")),
        *("--figures", str(work / "figures"), "--no-track"),
    ]


def summarise(report: dict[str, Any]) -> dict[str, Any]:
    """Per estimand: estimate, interval, unadjusted difference, refutations, money and (synthetic) the truth."""
    rows = {}
    estimands = {**report["kinds"], "fast_recovery": report["recovery"]}
    for name, entry in estimands.items():
        if entry.get("status") != "estimated":
            rows[name] = {"status": entry.get("status"), "reason": entry.get("reason")}
            continue
        money = entry.get("money") or entry.get("money_now")
        row = {
            "treated_orders": entry["treated_orders"],
            "att": round(entry["att"], 4),
            "ci": [round(v, 4) for v in entry["ci"]],
            "unadjusted": round(entry["unadjusted"], 4),
            "unadjusted_ci": [round(v, 4) for v in entry["unadjusted_ci"]],
            "refutations_passed": {k: v["passed"] for k, v in entry.get("refutations", {}).items()},
            "trimmed_share": round(entry["overlap"]["trimmed_share"], 5),
            "revenue_per_month": round(money["revenue_per_month"]),
            "revenue_per_month_ci": [round(v) for v in money["revenue_per_month_ci"]],
        }
        truth = report.get("truth", {}).get(name)
        if truth:
            row["truth"] = {key: (round(v, 4) if isinstance(v, float) else v) for key, v in truth.items()}
        rows[name] = row
    return rows


def bench_synthetic(size: int, impact: dict[str, Any]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"churn-impact-{size}-") as tmp:
        work = Path(tmp)
        params = write_params(work, size, {"path": str(work / "raw")}, impact)
        for step in ("generate", "validate"):
            measure(step_command(step, params, work), work / f"{step}.log")
        timing = measure(impact_command(params, work), work / "impact.log")
        report = json.loads((work / "impact_detail.json").read_text())
        print(f"{size:>9,} customers: impact {timing['seconds']:.1f} s, {timing['peak_rss_gib']:.2f} GiB", flush=True)
    truth = report.get("truth", {})
    return {
        "n_customers": size,
        "impact_params": impact,
        "orders_analysed": report["orders_analysed"],
        "stage": timing,
        "covered": f"{sum(t['covered'] for t in truth.values())} of {len(truth)}" if truth else None,
        "unadjusted_biased": sorted(k for k, t in truth.items() if t["unadjusted_biased"]),
        "estimands": summarise(report),
    }


def bench_online_retail(data: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="churn-impact-retail-") as tmp:
        work = Path(tmp)
        data_block = {**ONLINE_RETAIL, "path": str(data.resolve())}
        params = write_params(work, None, data_block, {"oracle": False}, ONLINE_RETAIL_FEATURES)
        measure(step_command("validate", params, work), work / "validate.log")
        timing = measure(impact_command(params, work), work / "impact.log")
        report = json.loads((work / "impact_detail.json").read_text())
        markdown = (work / "impact.md").read_text()
    return {
        "data": str(data),
        "stage": timing,
        "orders_analysed": report["orders_analysed"],
        "estimands": summarise(report),
        "report_md": markdown,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[50_000])
    parser.add_argument("--online-retail", type=Path, default=None, help="folder of the UCI download")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "impact.json")
    parser.add_argument(
        "--no-oracle-above",
        type=int,
        default=200_000,
        help="shops larger than this skip the truth (a re-simulation) and time the estimate alone",
    )
    args = parser.parse_args()
    record: dict[str, Any] = {
        "benchmark": "impact",
        "started_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python " + " ".join(sys.argv),
        "machine": machine_info(PACKAGES),
        # the machine is shared: the load before the run says how much of the 2 cores the stage had
        "load_average_1_5_15_min_before": [round(v, 2) for v in os.getloadavg()],
        "sizes": [],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for size in args.sizes:
        impact = {"oracle": size <= args.no_oracle_above}
        record["sizes"].append(bench_synthetic(size, impact))
        args.out.write_text(json.dumps(record, indent=2) + "\n")  # each size as soon as it is measured
    if args.online_retail is not None:
        if args.online_retail.is_dir():
            record["online_retail"] = bench_online_retail(args.online_retail)
        else:
            print(f"{args.online_retail} is absent: Online Retail skipped", flush=True)
            record["online_retail"] = {"skipped": f"{args.online_retail} is absent"}
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"recorded in {args.out}")


if __name__ == "__main__":
    main()
