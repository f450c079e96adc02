"""Where validation, features and scoring run: `engine: duckdb` (embedded, one machine, the default) or
`engine: spark` (a Spark session built from the `spark` block of params.yaml).

The feature definitions are the same Ibis expressions on either engine; only the connection differs. A local
master (`local`, `local[2]`, `local[*]`) binds the driver to loopback (SPARK_LOCAL_IP=127.0.0.1,
spark.driver.host=127.0.0.1, spark.driver.bindAddress=127.0.0.1) unless `spark.config` says otherwise; a cluster
master takes its addresses from `spark.config` (or the cluster's own defaults under spark-submit).
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import ibis

from features.blocks import from_block

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

ENGINES = ("duckdb", "spark")
LOOPBACK = "127.0.0.1"
# Applied under every master unless spark.config sets them: timestamps are naive UTC throughout the pipeline,
# Parquet timestamps are written as microseconds (not INT96), and the console progress bar stays off (logs only).
BASE_CONFIG: dict[str, str] = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.ui.showConsoleProgress": "false",
}
# A local master's driver binds to loopback only.
LOCAL_CONFIG: dict[str, str] = {"spark.driver.host": LOOPBACK, "spark.driver.bindAddress": LOOPBACK}


@dataclass(frozen=True)
class SparkSettings:
    """The `spark` block of params.yaml."""

    # local[N] runs in this process with N cores; spark://host:7077, yarn, k8s://... is a cluster. Under
    # spark-submit, the master and config given there win over these (the session already exists).
    master: str = "local[2]"
    app_name: str = "churn-pipeline"
    # Any Spark property, e.g. {spark.driver.memory: 4g, spark.sql.shuffle.partitions: 8}.
    config: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.master.strip():
            raise ValueError("spark.master is empty; use e.g. local[2] or spark://host:7077")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SparkSettings:
        return from_block(cls, values, "spark")

    @property
    def local(self) -> bool:
        return self.master.startswith("local")

    def session_config(self) -> dict[str, str]:
        """Every property the session is built with: the base, loopback for a local master, then `config`."""
        return {
            **BASE_CONFIG,
            **(LOCAL_CONFIG if self.local else {}),
            **{str(key): str(value) for key, value in self.config.items()},
        }


def check_engine(engine: object) -> str:
    if engine not in ENGINES:
        raise ValueError(f"engine = {engine!r}: choose one of {list(ENGINES)}")
    return str(engine)


def engine_settings(params: dict[str, Any], override: str | None = None) -> tuple[str, SparkSettings]:
    """The engine (the command line's `--engine` over params' `engine`) and the Spark settings."""
    engine = check_engine(override if override is not None else params.get("engine", "duckdb"))
    return engine, SparkSettings.from_dict(params.get("spark") or {})


def spark_session(settings: SparkSettings) -> SparkSession:
    """The running session (a notebook's, a test's), spark-submit's (its master and config), or a new one from
    `settings`.

    Raises ValueError (one line) when pyspark is not installed."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise ValueError(
            "engine spark needs pyspark: pip install 'churn-pipeline[spark]' (and Java 17 or 21)"
        ) from None
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    if os.environ.get("PYSPARK_GATEWAY_PORT"):  # under spark-submit: its master and --conf hold
        log.info("starting Spark under spark-submit (its master and config)")
        return SparkSession.builder.appName(settings.app_name).getOrCreate()
    if settings.local:
        os.environ.setdefault("SPARK_LOCAL_IP", LOOPBACK)
        # Local workers run this interpreter (its pandas, LightGBM), not the first python3 on PATH.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.master(settings.master).appName(settings.app_name)
    for key, value in settings.session_config().items():
        builder = builder.config(key, value)
    log.info("starting Spark (%s)", settings.master)
    return builder.getOrCreate()


def connect(engine: str, settings: SparkSettings | None = None) -> ibis.BaseBackend:
    """An Ibis connection on the engine: a fresh in-process DuckDB, or the PySpark backend on the Spark session."""
    if check_engine(engine) == "duckdb":
        return ibis.duckdb.connect()
    return ibis.pyspark.connect(spark_session(settings or SparkSettings()))


def to_spark(con: ibis.BaseBackend, expression: ibis.Table) -> DataFrame:
    """The Spark DataFrame of an Ibis expression on the PySpark backend (for work Ibis does not express: mapInPandas,
    writing by URI)."""
    con._run_pre_execute_hooks(expression)  # registers cached and in-memory tables
    return con._session.sql(con.compile(expression))
