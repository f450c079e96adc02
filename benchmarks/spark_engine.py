"""The pipeline's engine-dependent stages on DuckDB and on Spark (`local[2]`) in the same run, on one synthetic shop:
wall time per stage and the peak memory of the driver (the `churn` Python process) and of the JVM (in local mode
the driver's JVM holds the executors too), sampled every 0.2 s over the process tree.

`generate` and `train` run once (DuckDB's features feed training, as on a cluster training stays on one node);
`validate`, `features` and `score` run once per engine, each as its own `churn` subprocess, the two engines one after
the other per stage (so that both see about the same load). After the run the script checks that both engines gave
the same results: the validation reports, the feature summaries, every feature and label column's per-cutoff sum and
count, and the written risk lists (customers, ranks, probabilities within 1e-9 relative). The JSON is rewritten
after every stage, so an interrupted run keeps what finished; `--work DIR --resume` continues it.

    .venv/bin/python benchmarks/spark_engine.py --customers 20000 --every-days 90
    .venv/bin/python benchmarks/spark_engine.py --customers 1200000 --every-days 180 --top-k 20000 \
        --max-training-rows 500000 --work /tmp/spark-bench-1m --skip-spark-validate   # ~10M orders
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import subprocess
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import psutil
import yaml
from generate_validate import CHURN, GIB, REPO, machine_info

PACKAGES = ("pandas", "pyarrow", "duckdb", "ibis-framework", "pyspark", "great_expectations", "lightgbm")


def write_params(
    work: Path, customers: int, every_days: int, driver_memory: str, top_k: int | None, max_training_rows: int | None
) -> Path:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["generate"]["n_customers"] = customers
    params["data"]["path"] = str(work / "raw")
    params["features"]["every_days"] = every_days
    params["score"]["max_model_age_days"] = None
    params["score"]["top_k"] = top_k
    if max_training_rows is not None:
        params["train"]["max_training_rows"] = max_training_rows
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


STAGE_ORDER = ("validate", "features", "train", "score")
RELATIVE = 1e-9
NUMERIC_TYPES = ("INT", "DOUBLE", "FLOAT", "BOOL", "DECIMAL")


def feature_sums(path: Path) -> pd.DataFrame:
    """Per cutoff, every numeric or boolean column's sum and non-null count (DuckDB streams the file)."""
    con = duckdb.connect()
    columns = con.sql(f"DESCRIBE SELECT * FROM read_parquet('{path}')").df()
    numeric = [
        row.column_name
        for row in columns.itertuples()
        if row.column_name != "cutoff" and any(kind in row.column_type for kind in NUMERIC_TYPES)
    ]
    aggregates = ", ".join(f'sum("{c}"::DOUBLE) AS "sum_{c}", count("{c}") AS "count_{c}"' for c in numeric)
    sql = f"SELECT cutoff, count(*) AS rows, {aggregates} FROM read_parquet('{path}') GROUP BY cutoff ORDER BY cutoff"
    return con.sql(sql).df().set_index("cutoff")


def close(a: float, b: float) -> bool:
    if pd.isna(a) or pd.isna(b):
        return bool(pd.isna(a) and pd.isna(b))
    return math.isclose(float(a), float(b), rel_tol=RELATIVE, abs_tol=1e-12)


def compare_features(duckdb_path: Path, spark_path: Path) -> dict[str, Any]:
    ours, theirs = feature_sums(duckdb_path), feature_sums(spark_path)
    if list(ours.columns) != list(theirs.columns) or list(ours.index) != list(theirs.index):
        return {"same": False, "why": "different columns or cutoffs"}
    differing = sorted(
        {c for c in ours.columns for cutoff in ours.index if not close(ours.at[cutoff, c], theirs.at[cutoff, c])}
    )
    return {"same": not differing, "columns_compared": len(ours.columns), "differing": differing}


def compare_risk_lists(duckdb_path: Path, spark_path: Path) -> dict[str, Any]:
    columns = ["customer_id", "rank", "churn_probability", "value_at_risk", "reason_1"]
    ours = pd.read_parquet(duckdb_path, columns=columns).sort_values("rank").reset_index(drop=True)
    theirs = pd.read_parquet(spark_path, columns=columns).sort_values("rank").reset_index(drop=True)
    same_customers = ours["customer_id"].tolist() == theirs["customer_id"].tolist()
    same_ranks = ours["rank"].tolist() == theirs["rank"].tolist()
    probabilities = same_customers and all(
        close(a, b) for a, b in zip(ours["churn_probability"], theirs["churn_probability"], strict=True)
    )
    return {
        "rows": [len(ours), len(theirs)],
        "same_customers_in_order": same_customers,
        "same_ranks": same_ranks,
        "probabilities_within_1e-9": probabilities,
        "same_first_reason": same_customers and ours["reason_1"].tolist() == theirs["reason_1"].tolist(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--every-days", type=int, default=90)
    parser.add_argument("--driver-memory", default="4g")
    parser.add_argument("--top-k", type=int, default=None, help="score.top_k on both engines (null: everyone)")
    parser.add_argument("--max-training-rows", type=int, default=None, help="train.max_training_rows override")
    parser.add_argument("--work", type=Path, default=None, help="keep the shop and outputs here (default: a temp dir)")
    parser.add_argument("--resume", action="store_true", help="skip the stages already recorded in --out")
    parser.add_argument(
        "--skip-spark-validate",
        action="store_true",
        help="do not validate on Spark: Spark's features and score read DuckDB's validated tables (the same files)",
    )
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "spark_engine.json")
    args = parser.parse_args()
    results: dict[str, Any] = json.loads(args.out.read_text()) if args.resume else {"stages": {}}
    results["settings"] = {
        "customers": args.customers,
        "every_days": args.every_days,
        "top_k": args.top_k,
        "max_training_rows": args.max_training_rows,
        "spark_validate": not args.skip_spark_validate,
        "spark": {"master": "local[2]", "driver_memory": args.driver_memory, "shuffle_partitions": 8},
    }
    results["machine"] = machine_info(PACKAGES)

    def save() -> None:
        results["recorded_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        args.out.write_text(json.dumps(results, indent=2) + "\n")

    with tempfile.TemporaryDirectory(prefix="churn-spark-bench-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        params = write_params(
            work, args.customers, args.every_days, args.driver_memory, args.top_k, args.max_training_rows
        )
        logs = work / "logs"
        logs.mkdir(exist_ok=True)
        duckdb_out, spark_out = work / "duckdb", work / "spark"

        def run(name: str, cmd: list[str]) -> None:
            if name in results["stages"]:
                return
            load = os.getloadavg()[0]
            results["stages"][name] = {**measure(cmd, logs / f"{name}.log"), "load_before": round(load, 2)}
            print(name, results["stages"][name], flush=True)
            save()

        if (work / "raw" / "orders.parquet").exists():
            results["stages"].setdefault("generate", {"reused": str(work / "raw")})
        else:
            run("generate", command("generate", params, work, duckdb_out, None))
        if args.skip_spark_validate and not (spark_out / "validated").exists():
            spark_out.mkdir(parents=True, exist_ok=True)
            (spark_out / "validated").symlink_to(duckdb_out / "validated")
            (spark_out / "validation.json").write_text((duckdb_out / "validation.json").read_text())
        for stage in STAGE_ORDER:
            if stage == "validate" and args.skip_spark_validate:
                run("validate_duckdb", command(stage, params, work, duckdb_out, "duckdb"))
                continue
            if stage == "train":  # once, on DuckDB's features: training stays on one node on either engine
                run("train", command("train", params, work, duckdb_out, None))
                continue
            for engine, out in (("duckdb", duckdb_out), ("spark", spark_out)):
                run(f"{stage}_{engine}", command(stage, params, work, out, engine))
        report = json.loads((duckdb_out / "validation.json").read_text())
        features = json.loads((duckdb_out / "features.json").read_text())
        results["data"] = {
            "customers": report["tables"]["customers"]["rows_in"],
            "orders": report["tables"]["orders"]["rows_in"],
            "cutoffs": features["cutoffs"],
            "feature_rows": features["rows"],
            "features_parquet_bytes": (duckdb_out / "features.parquet").stat().st_size,
        }
        results["same_outputs"] = {
            "validation_json": "not run on Spark"
            if args.skip_spark_validate
            else report == json.loads((spark_out / "validation.json").read_text()),
            "features_json": features == json.loads((spark_out / "features.json").read_text()),
            "feature_columns": compare_features(duckdb_out / "features.parquet", spark_out / "features.parquet"),
            "risk_list": compare_risk_lists(duckdb_out / "risk_list.parquet", spark_out / "risk_list.parquet"),
        }
        save()
    print(json.dumps(results["stages"], indent=2))
    print(json.dumps(results["same_outputs"], indent=2))


if __name__ == "__main__":
    main()
