"""The pipeline's engine-dependent stages on DuckDB and on Spark (`local[2]`) in the same run, on one synthetic shop:
wall time per stage and peak resident memory, sampled every 0.2 s over the stage's process tree: the `churn`
process (the driver's Python), its JVM (in local mode the driver's JVM runs the executors too) and the Python
workers the JVM forks (mapInPandas, Arrow conversions), each and all together at one instant. RSS counts pages that
forked workers share once per worker, so the sums are upper bounds. A child the JVM is still spawning (before its
exec, in the JVM's own address space) is not counted: it would add the JVM's RSS a second time (`process_kind`).

`generate` and `train` run once (DuckDB's features feed training, as on a cluster training stays on one node);
`validate`, `features` and `score` run once per engine, each as its own `churn` subprocess, the two engines one after
the other per stage (so that both see about the same load). Spark's session is params.yaml's `spark` block (the
defaults measured) with `--spark-config` on top. Spark's features and score read DuckDB's validated tables (the same
files); Spark's validation runs last, into its own folder, so that a slow or stopped one holds up nothing. After the
run the script checks that both engines gave the same results: the validation reports (accepted and quarantined
rows per table, rules), the feature summaries, every feature and label column's per-cutoff sum and count, and the
written risk lists (customers, ranks, probabilities within 1e-9 relative, reasons). The JSON is rewritten after
every stage, so an interrupted run keeps what finished; `--work DIR --resume` continues it, and `--stages` runs some
stages now and the rest later. `--memory-limit-gib` kills a stage whose tree goes over it (recorded under
`stopped`).

    .venv/bin/python benchmarks/spark_engine.py --customers 20000 --every-days 90
    nice -n 5 .venv/bin/python benchmarks/spark_engine.py --customers 1200000 --first-cutoff 2025-07-01 \
        --every-days 93 --top-k 20000 --max-training-rows 100000 --memory-limit-gib 10.5 \
        --work /tmp/s11-spark-10m --out benchmarks/results/spark_engine_10m_s11.json   # ~10M orders, 2 cutoffs
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import signal
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
    work: Path,
    customers: int,
    cutoffs: tuple[str | None, int],
    spark_config: dict[str, Any],
    top_k: int | None,
    max_training_rows: int | None,
) -> Path:
    first_cutoff, every_days = cutoffs
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["generate"]["n_customers"] = customers
    params["data"]["path"] = str(work / "raw")
    if first_cutoff is not None:
        params["features"]["first_cutoff"] = first_cutoff
    params["features"]["every_days"] = every_days
    params["score"]["max_model_age_days"] = None
    params["score"]["top_k"] = top_k
    if max_training_rows is not None:
        params["train"]["max_training_rows"] = max_training_rows
    params["spark"] = {"master": "local[2]", "app_name": "churn-benchmark", "config": spark_config}
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


class OverMemory(RuntimeError):
    """A stage stopped because its process tree went over the memory limit."""

    def __init__(self, peaks: dict[str, float], seconds: float, limit_gib: float) -> None:
        super().__init__(f"over {limit_gib} GiB after {seconds:.0f} s")
        self.record = {"stopped_after_seconds": round(seconds, 2), "memory_limit_gib": limit_gib, **peaks}


def process_kind(executable: str, parent_executable: str) -> str | None:
    """What a child of the `churn` process is, by its executable and its parent's: a Python worker (the pandas side
    of mapInPandas and Arrow conversions, forked by the JVM's Python daemon), the JVM (Spark's driver, holding the
    executors in local mode) and the short-lived commands it runs (jspawnhelper, Hadoop's `chmod` of every folder and
    Parquet part it writes: a few MB each), or None: a process the JVM is starting, between its `posix_spawn` and the
    `exec` of jspawnhelper. That child still runs in the JVM's address space (named after the spawning thread,
    `Executor task l`, its executable java, its RSS the JVM's whole RSS), so counting it would count the JVM twice;
    session 11's 10M score was stopped at the memory limit by exactly that, counted as a Python worker."""
    name = Path(executable).name
    if name.startswith("python"):
        return "python_workers"
    if name == "java" and Path(parent_executable).name == "java":
        return None
    return "jvm"


def measure(cmd: list[str], log: Path, limit_gib: float | None = None) -> dict[str, float]:
    """Wall time and peak resident memory (GiB) of the `churn` process (the driver's Python), its JVM and the
    Python workers, and of the whole tree at one instant, sampled every 0.2 s. RSS counts pages shared between
    forked workers once per worker, so the sums are upper bounds. Over `limit_gib` the tree is killed
    (OverMemory), so that a stage that cannot fit does not take the machine down."""
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"}
    peaks = {"driver_python": 0, "jvm": 0, "python_workers": 0, "total": 0}
    over = threading.Event()
    with log.open("w") as output:
        started = time.perf_counter()
        process = subprocess.Popen(
            cmd, cwd=REPO, stdout=output, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        done = threading.Event()

        def sample() -> None:
            root = psutil.Process(process.pid)
            while not done.is_set():
                now = {"driver_python": 0, "jvm": 0, "python_workers": 0}
                try:
                    now["driver_python"] = root.memory_info().rss
                    for child in root.children(recursive=True):
                        try:
                            kind = process_kind(child.exe(), psutil.Process(child.ppid()).exe())
                            if kind is not None:
                                now[kind] += child.memory_info().rss
                        except psutil.Error:  # exited (or exec'd) between the listing and the reading
                            continue
                except psutil.Error:
                    break
                total = sum(now.values())
                for key, value in {**now, "total": total}.items():
                    peaks[key] = max(peaks[key], value)
                if limit_gib is not None and total > limit_gib * GIB:
                    over.set()
                    os.killpg(process.pid, signal.SIGKILL)
                    break
                time.sleep(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        code = process.wait()
        done.set()
        sampler.join()
        seconds = time.perf_counter() - started
    record = {f"peak_{k}_gib": round(v / GIB, 3) for k, v in peaks.items()}
    if over.is_set():
        raise OverMemory(record, seconds, limit_gib or 0.0)
    if code != 0:
        raise RuntimeError(f"{shlex.join(cmd)} exited with {code}:\n{log.read_text()[-3000:]}")
    return {"seconds": round(seconds, 2), **record}


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
    columns = ["customer_id", "rank", "churn_probability", "value_at_risk", "reason_1", "reason_2", "reason_3"]
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
        "same_reasons": same_customers
        and all(ours[c].tolist() == theirs[c].tolist() for c in ("reason_1", "reason_2", "reason_3")),
    }


def same_outputs(duckdb_out: Path, spark_out: Path, spark_validate_out: Path) -> dict[str, Any]:
    """What the two engines wrote, compared where both wrote it."""
    compared: dict[str, Any] = {}
    report = json.loads((duckdb_out / "validation.json").read_text())
    if not (spark_validate_out / "validation.json").exists():
        compared["validation_json"] = "not compared: validate not run on Spark (--skip-spark-validate) or stopped"
    else:
        theirs = json.loads((spark_validate_out / "validation.json").read_text())
        compared["validation_json"] = report == theirs
        compared["validation_counts"] = {
            table: [counts.get(key) for key in ("rows_in", "accepted", "quarantined")]
            for table, counts in report["tables"].items()
        }
    if (spark_out / "features.json").exists():
        features = json.loads((duckdb_out / "features.json").read_text())
        compared["features_json"] = features == json.loads((spark_out / "features.json").read_text())
        compared["feature_columns"] = compare_features(duckdb_out / "features.parquet", spark_out / "features.parquet")
    if (spark_out / "risk_list.parquet").exists():
        compared["risk_list"] = compare_risk_lists(duckdb_out / "risk_list.parquet", spark_out / "risk_list.parquet")
    return compared


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--first-cutoff", default=None, help="features.first_cutoff override (YYYY-MM-DD)")
    parser.add_argument("--every-days", type=int, default=90)
    parser.add_argument(
        "--spark-config",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="Spark properties over params.yaml's spark.config (the defaults measured), e.g. spark.driver.memory=5g",
    )
    parser.add_argument("--top-k", type=int, default=None, help="score.top_k on both engines (null: everyone)")
    parser.add_argument("--max-training-rows", type=int, default=None, help="train.max_training_rows override")
    parser.add_argument("--work", type=Path, default=None, help="keep the shop and outputs here (default: a temp dir)")
    parser.add_argument("--resume", action="store_true", help="skip the stages already recorded in --out")
    parser.add_argument(
        "--stages", nargs="+", choices=STAGE_ORDER, default=list(STAGE_ORDER), help="run only these (in order)"
    )
    parser.add_argument(
        "--memory-limit-gib",
        type=float,
        default=None,
        help="kill a stage whose process tree goes over this (recorded under `stopped`); Spark's later stages then "
        "read DuckDB's validated tables",
    )
    parser.add_argument(
        "--skip-spark-validate",
        action="store_true",
        help="do not validate on Spark (by default it runs last, into its own folder, and its report is compared)",
    )
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "spark_engine.json")
    args = parser.parse_args()
    spark_config = {
        **yaml.safe_load((REPO / "params.yaml").read_text())["spark"]["config"],
        **dict(pair.split("=", 1) for pair in args.spark_config),
    }
    results: dict[str, Any] = json.loads(args.out.read_text()) if args.resume else {"stages": {}}
    results["settings"] = {
        "customers": args.customers,
        "first_cutoff": args.first_cutoff,
        "every_days": args.every_days,
        "top_k": args.top_k,
        "max_training_rows": args.max_training_rows,
        "spark_validate": not args.skip_spark_validate,
        "memory_limit_gib": args.memory_limit_gib,
        "spark": {"master": "local[2]", "config": spark_config},
    }
    results["machine"] = machine_info(PACKAGES)

    def save() -> None:
        results["recorded_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        args.out.write_text(json.dumps(results, indent=2) + "\n")

    with tempfile.TemporaryDirectory(prefix="churn-spark-bench-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        params = write_params(
            work,
            args.customers,
            (args.first_cutoff, args.every_days),
            spark_config,
            args.top_k,
            args.max_training_rows,
        )
        logs = work / "logs"
        logs.mkdir(exist_ok=True)
        # Spark's features and score read DuckDB's validated tables (the same files), so that they need not wait
        # for Spark's validation, which writes its own folder: the two reports are compared.
        duckdb_out, spark_out, spark_validate_out = work / "duckdb", work / "spark", work / "spark-validate"

        def spark_of(name: str) -> dict[str, Any]:
            """A Spark stage's session settings (a resumed run may change them)."""
            return {"spark": results["settings"]["spark"]} if name.endswith("_spark") else {}

        def run(name: str, cmd: list[str]) -> bool:
            """Run and record a stage (unless recorded already); False when it went over the memory limit."""
            if name in results["stages"]:
                return True
            if name in results.get("stopped", {}) or name in results.get("failed", {}):
                return False
            load = os.getloadavg()
            try:
                record = measure(cmd, logs / f"{name}.log", args.memory_limit_gib)
            except OverMemory as over:
                results.setdefault("stopped", {})[name] = {
                    **over.record,
                    "load_before": [round(x, 2) for x in load],
                    **spark_of(name),
                }
                print(name, "stopped:", results["stopped"][name], flush=True)
                save()
                return False
            except RuntimeError as failure:  # recorded with its error line; the other stages still run
                errors = [line for line in str(failure).splitlines() if "Error" in line or "error" in line]
                results.setdefault("failed", {})[name] = {
                    "error": errors[-1].strip()[:400] if errors else str(failure)[-400:],
                    "load_before": [round(x, 2) for x in load],
                    **spark_of(name),
                }
                print(name, "failed:", results["failed"][name], flush=True)
                save()
                return False
            results["stages"][name] = {**record, "load_before": [round(x, 2) for x in load], **spark_of(name)}
            print(name, results["stages"][name], flush=True)
            save()
            return True

        def share_duckdb_validated() -> None:
            """Spark's features and score read DuckDB's validated tables (the same files)."""
            if (spark_out / "validated").is_symlink():
                return
            if (spark_out / "validated").exists():
                shutil.rmtree(spark_out / "validated")
            spark_out.mkdir(parents=True, exist_ok=True)
            (spark_out / "validated").symlink_to(duckdb_out / "validated")
            (spark_out / "validation.json").write_text((duckdb_out / "validation.json").read_text())

        if (work / "raw" / "orders.parquet").exists():
            results["stages"].setdefault("generate", {"reused": str(work / "raw")})
        else:
            run("generate", command("generate", params, work, duckdb_out, None))
        for stage in STAGE_ORDER:
            if stage not in args.stages:
                continue
            if stage == "train":  # once, on DuckDB's features: training stays on one node on either engine
                run("train", command("train", params, work, duckdb_out, None))
                continue
            run(f"{stage}_duckdb", command(stage, params, work, duckdb_out, "duckdb"))
            if stage == "validate":
                share_duckdb_validated()
                continue
            run(f"{stage}_spark", command(stage, params, work, spark_out, "spark"))
        # Last, so that a validation over the memory limit (killed) or slow does not hold up the other stages.
        if "validate" in args.stages and not args.skip_spark_validate:
            run("validate_spark", command("validate", params, work, spark_validate_out, "spark"))
        report = json.loads((duckdb_out / "validation.json").read_text())
        results["data"] = {
            "customers": report["tables"]["customers"]["rows_in"],
            "orders": report["tables"]["orders"]["rows_in"],
        }
        if (duckdb_out / "features.json").exists():
            features = json.loads((duckdb_out / "features.json").read_text())
            results["data"].update(cutoffs=features["cutoffs"], feature_rows=features["rows"])
        results["same_outputs"] = same_outputs(duckdb_out, spark_out, spark_validate_out)
        save()
    print(json.dumps(results["stages"], indent=2))
    print(json.dumps(results["same_outputs"], indent=2))


if __name__ == "__main__":
    main()
