"""The pipeline's engine-dependent stages on DuckDB and on Spark (`local[2]`) in the same run, on one synthetic shop:
wall time per stage and the peak memory of the driver (the `churn` Python process) and of the JVM (in local mode
the driver's JVM holds the executors too), sampled every 0.2 s over the process tree.

`generate` and `train` run once (DuckDB's features feed training, as on a cluster training stays on one node);
`validate`, `features` and `score` run once per engine, each as its own `churn` subprocess.

    .venv/bin/python benchmarks/spark_engine.py --customers 20000 --every-days 90
    .venv/bin/python benchmarks/spark_engine.py --customers 1200000 --every-days 30   # ~10M orders
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import yaml
from generate_validate import CHURN, GIB, REPO, machine_info

PACKAGES = ("pandas", "pyarrow", "duckdb", "ibis-framework", "pyspark", "great_expectations", "lightgbm")
ENGINE_STAGES = ("validate", "features", "score")


def write_params(work: Path, customers: int, every_days: int, driver_memory: str) -> Path:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["generate"]["n_customers"] = customers
    params["data"]["path"] = str(work / "raw")
    params["features"]["every_days"] = every_days
    params["score"]["max_model_age_days"] = None
    params["spark"] = {
        "master": "local[2]",
        "app_name": "churn-benchmark",
        "config": {"spark.driver.memory": driver_memory, "spark.sql.shuffle.partitions": 8},
    }
    path = work / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def command(stage: str, params: Path, work: Path, out: Path, engine: str | None) -> list[str]:
    args: dict[str, list[Any]] = {
        "generate": ["--out", work / "raw", "--truth", work / "truth"],
        "validate": [
            "--validated", out / "validated", "--quarantine", out / "quarantine",
            "--report", out / "validation.json", "--report-md", out / "validation.md",
        ],
        "features": [
            "--validated", out / "validated", "--validation-report", out / "validation.json",
            "--out", out / "features.parquet", "--dictionary", out / "dictionary.csv",
            "--dictionary-md", out / "dictionary.md", "--summary", out / "features.json",
        ],
        "train": [
            "--features", out / "features.parquet", "--dictionary", out / "dictionary.csv",
            "--validation-report", out / "validation.json", "--backtest", work / "backtest",
            "--current", work / "current",
        ],
        "score": [
            "--model", work / "current", "--validated", out / "validated", "--validation-report",
            out / "validation.json", "--out", out / "risk_list.parquet", "--out-csv", out / "risk_list.csv",
            "--report", out / "scoring.json", "--report-md", out / "scoring.md",
        ],
    }  # fmt: skip
    engine_args = ["--engine", engine] if engine else []
    return [str(CHURN), stage, "--params", str(params), *map(str, args[stage]), *engine_args]


def measure(cmd: list[str], log: Path) -> dict[str, float]:
    """Wall time and peak RSS (GiB) of the `churn` process and of its JVM child, sampled every 0.2 s."""
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"}
    peaks = {"driver_python": 0, "jvm": 0, "total": 0}
    with log.open("w") as output:
        started = time.perf_counter()
        process = subprocess.Popen(cmd, cwd=REPO, stdout=output, stderr=subprocess.STDOUT, env=env)
        done = threading.Event()

        def sample() -> None:
            root = psutil.Process(process.pid)
            while not done.is_set():
                try:
                    python = root.memory_info().rss
                    jvm = sum(child.memory_info().rss for child in root.children(recursive=True))
                except psutil.Error:
                    break
                peaks["driver_python"] = max(peaks["driver_python"], python)
                peaks["jvm"] = max(peaks["jvm"], jvm)
                peaks["total"] = max(peaks["total"], python + jvm)
                time.sleep(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        code = process.wait()
        done.set()
        sampler.join()
        seconds = time.perf_counter() - started
    if code != 0:
        raise RuntimeError(f"{shlex.join(cmd)} exited with {code}:\n{log.read_text()[-3000:]}")
    return {"seconds": round(seconds, 2), **{f"peak_{k}_gib": round(v / GIB, 3) for k, v in peaks.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--every-days", type=int, default=90)
    parser.add_argument("--driver-memory", default="4g")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "spark_engine.json")
    args = parser.parse_args()
    results: dict[str, Any] = {"stages": {}}
    with tempfile.TemporaryDirectory(prefix="churn-spark-bench-") as tmp:
        work = Path(tmp)
        params = write_params(work, args.customers, args.every_days, args.driver_memory)
        logs = work / "logs"
        logs.mkdir()
        duckdb, spark = work / "duckdb", work / "spark"
        results["stages"]["generate"] = measure(command("generate", params, work, duckdb, None), logs / "g.log")
        for engine, out in (("duckdb", duckdb), ("spark", spark)):
            for stage in ENGINE_STAGES:
                if stage == "score" and not (work / "current").exists():
                    train = command("train", params, work, duckdb, None)
                    results["stages"]["train"] = measure(train, logs / "train.log")
                cmd = command(stage, params, work, out, engine)
                results["stages"][f"{stage}_{engine}"] = measure(cmd, logs / f"{stage}_{engine}.log")
                print(stage, engine, results["stages"][f"{stage}_{engine}"], flush=True)
        report = json.loads((duckdb / "validation.json").read_text())
        features = json.loads((duckdb / "features.json").read_text())
        results["data"] = {
            "customers": args.customers,
            "orders": report["tables"]["orders"]["rows_in"],
            "cutoffs": features["cutoffs"],
            "feature_rows": features["rows"],
            "every_days": args.every_days,
        }
        results["same_outputs"] = {
            "features_json": (duckdb / "features.json").read_text() == (spark / "features.json").read_text(),
            "validation_json": report == json.loads((spark / "validation.json").read_text()),
        }
    results["spark"] = {"master": "local[2]", "driver_memory": args.driver_memory}
    results["machine"] = machine_info(PACKAGES)
    results["recorded_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results["stages"], indent=2))


if __name__ == "__main__":
    main()
