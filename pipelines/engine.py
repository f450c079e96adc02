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
import re
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import ibis
import ibis.expr.operations as ops

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
    # Rows cross between the JVM and pandas as Arrow batches, not as a Python object per value: results to the
    # driver (toPandas, Ibis's to_pyarrow) and pandas frames to the JVM (Ibis's in-memory tables: each cutoff's
    # BG/NBD values). Without it a cutoff's 700,000 rows at 10M orders are pickled row by row both ways.
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}
# Set on a session the pipeline did not build (spark-submit's, a notebook's) too: the features read naive times as
# UTC, so a session in another time zone would move every cutoff comparison.
SESSION_SQL_CONFIG = ("spark.sql.session.timeZone", "spark.sql.parquet.outputTimestampType")
# A local master's driver binds to loopback only.
LOCAL_CONFIG: dict[str, str] = {"spark.driver.host": LOOPBACK, "spark.driver.bindAddress": LOOPBACK}
# Properties that size a JVM: a value the JVM cannot parse stops it before Spark can say which property was wrong.
SIZE_PROPERTIES = (
    "spark.driver.memory",
    "spark.driver.memoryOverhead",
    "spark.driver.maxResultSize",
    "spark.executor.memory",
    "spark.executor.memoryOverhead",
    "spark.executor.pyspark.memory",
    "spark.memory.offHeap.size",
)
SIZE = re.compile(r"^\d+[kmgtp]?b?$", re.IGNORECASE)
JAVA_VERSIONS = (17, 21)  # the versions Spark 4.0 supports
# The connector a data-lake scheme needs on Spark's classpath (spark.jars.packages), by scheme.
CONNECTORS = {
    "s3a": "org.apache.hadoop:hadoop-aws",
    "abfs": "org.apache.hadoop:hadoop-azure",
    "abfss": "org.apache.hadoop:hadoop-azure",
    "wasbs": "org.apache.hadoop:hadoop-azure",
    "gs": "com.google.cloud.bigdataoss:gcs-connector",
}
CONNECT_TIMEOUT_SECONDS = 5.0


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
        for key in SIZE_PROPERTIES:
            value = self.config.get(key)
            if value is not None and not SIZE.match(str(value).strip()):
                raise ValueError(f"spark.config {key} = {value!r} is not a size; use e.g. 4g or 512m")

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
            **{str(key): spark_value(value) for key, value in self.config.items()},
        }


def spark_value(value: object) -> str:
    """A property's value as Spark reads it: YAML's booleans as `true`/`false` (Python would write `True`)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


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
    `settings`; the first two get the pipeline's time zone (UTC) and Parquet timestamp type.

    Raises ValueError (one line) when pyspark is not installed."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise ValueError(
            "engine spark needs pyspark: pip install 'churn-pipeline[spark]' (and Java 17 or 21)"
        ) from None
    active = SparkSession.getActiveSession()
    if active is None and os.environ.get("PYSPARK_GATEWAY_PORT"):  # under spark-submit: its master and --conf hold
        log.info("starting Spark under spark-submit (its master and config)")
        active = SparkSession.builder.appName(settings.app_name).getOrCreate()
    if active is not None:
        for key in SESSION_SQL_CONFIG:
            active.conf.set(key, BASE_CONFIG[key])
        return active
    check_java()
    check_master(settings.master)
    if settings.local:
        os.environ.setdefault("SPARK_LOCAL_IP", LOOPBACK)
        # Local workers run this interpreter (its pandas, LightGBM), not the first python3 on PATH.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.master(settings.master).appName(settings.app_name)
    for key, value in settings.session_config().items():
        builder = builder.config(key, value)
    log.info("starting Spark (%s)", settings.master)
    try:
        session = builder.getOrCreate()
        session.conf.get("spark.sql.session.timeZone")  # builds the SQL session state: checks the SQL properties
    except Exception as error:  # the JVM or the session refused to start: environment or spark.config
        raise ValueError(f"Spark did not start: {spark_error_line(error)}") from None
    return session


def check_java() -> None:
    """Java as Spark finds it (JAVA_HOME, else `java` on PATH), in a version Spark supports: one line, instead of
    the JVM's own output and a Py4J traceback."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if java is None or not Path(java).is_file():
        where = f"JAVA_HOME={home} has no bin/java" if home else "no java on PATH"
        versions = " or ".join(map(str, JAVA_VERSIONS))
        raise ValueError(f"engine spark needs Java {versions} ({where}): install it and set JAVA_HOME")
    output = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60).stderr
    found = re.search(r'version "(\d+)(?:\.(\d+))?', output)
    if found is None:
        return  # an unusual build's banner: let Spark try
    major = int(found.group(2)) if found.group(1) == "1" else int(found.group(1))  # "1.8.0_392" is Java 8
    if major < JAVA_VERSIONS[0]:
        raise ValueError(
            f"engine spark needs Java {' or '.join(map(str, JAVA_VERSIONS))}, found Java {major} at {java}: "
            "install a supported one and point JAVA_HOME at it"
        )


def check_master(master: str) -> None:
    """A standalone (spark://) or Kubernetes (k8s://) master that refuses connections fails here in seconds, where
    Spark would retry for a minute and print a stack per attempt. YARN finds its resource manager from
    HADOOP_CONF_DIR: not checked."""
    if master.startswith("spark://"):
        addresses = [urlparse(f"spark://{part}") for part in master.removeprefix("spark://").split(",")]
    elif master.startswith("k8s://"):
        url = master.removeprefix("k8s://")
        addresses = [urlparse(url if "://" in url else f"https://{url}")]
    else:
        return
    problems = []
    for address in addresses:
        host, port = address.hostname, address.port or (7077 if master.startswith("spark://") else 443)
        try:
            socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_SECONDS).close()
            return
        except OSError as error:
            problems.append(f"{host}:{port} ({error.strerror or error})")
    raise ValueError(
        f"spark.master {master}: cannot connect to {', '.join(problems)}; start the master or fix spark.master "
        "(local[2] runs on this machine)"
    )


def spark_error_line(error: BaseException) -> str:
    """One line of a Spark or Py4J error: the innermost Java cause, without the JVM stack."""
    text = str(error)
    if "JAVA_GATEWAY_EXITED" in text:
        return (
            "its Java process exited at start (its own message is above): check Java "
            f"({' or '.join(map(str, JAVA_VERSIONS))}, JAVA_HOME) and the JVM properties in spark.config "
            "(spark.driver.memory, spark.driver.extraJavaOptions)"
        )
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    causes = [line.removeprefix("Caused by: ") for line in lines if line.startswith("Caused by: ")]
    if causes:
        return causes[-1]
    meaningful = [line.lstrip(": ") for line in lines if not line.startswith("An error occurred while calling")]
    return meaningful[0] if meaningful else type(error).__name__


def local_path(location: str | Path, option: str) -> Path:
    """A location this machine writes or reads itself (pandas, pyarrow, DuckDB): a path or an absolute file:// URI.
    Any other scheme is refused in one line, rather than taken for a folder called `s3a:`."""
    text = str(location)
    if "://" not in text and not text.startswith("file:"):
        return Path(text)
    parsed = urlparse(text)
    if parsed.scheme == "file" and parsed.netloc in ("", "localhost") and parsed.path.startswith("/"):
        return Path(parsed.path)
    raise ValueError(
        f"{option} {text}: this is read or written on this machine; give a local path or an absolute file:// URI "
        "(only Spark reads and writes data-lake URIs: --validated of features and score, score's --out)"
    )


def input_location(con: ibis.BaseBackend, engine: str, location: Path | str, option: str) -> Path | str:
    """An input folder as the engine reads it: on DuckDB a local path (file:// allowed), on Spark any URI the
    session has a filesystem for, checked to exist."""
    if engine == "duckdb":
        return local_path(location, option)
    return spark_location(con._session, str(location), option, must_exist=True)


def output_location(con: ibis.BaseBackend, engine: str, location: Path | str, option: str) -> Path | str:
    """An output the engine writes: on DuckDB a local path (file:// allowed), on Spark any URI the session has a
    filesystem for."""
    if engine == "duckdb":
        return local_path(location, option)
    return spark_location(con._session, str(location), option, must_exist=False)


def spark_location(session: SparkSession, location: str, option: str, must_exist: bool) -> str:
    """`location` after checking that the session has a filesystem for its scheme (and, for an input, that
    something is there): one line naming the connector to add, instead of a Java stack at the first read or, for
    an output, after the whole computation."""
    from py4j.protocol import Py4JJavaError

    hadoop = session._jvm.org.apache.hadoop.fs  # type: ignore[union-attr]
    path = hadoop.Path(location)
    scheme = urlparse(location).scheme
    try:
        filesystem = path.getFileSystem(session._jsc.hadoopConfiguration())
        exists = bool(filesystem.exists(path))
    except Py4JJavaError as error:
        cause = spark_error_line(error)
        if scheme in CONNECTORS and ("ClassNotFound" in cause or "No FileSystem" in cause):
            raise ValueError(
                f"{option} {location}: Spark has no {scheme}:// filesystem on its classpath; add "
                f"{CONNECTORS[scheme]} (the Hadoop version of your Spark) to spark.config spark.jars.packages, "
                "or use a path it reads"
            ) from None
        raise ValueError(f"{option} {location}: Spark cannot reach it: {cause}") from None
    if must_exist and not exists:
        raise ValueError(f"{option} {location} does not exist (for Spark); run `churn validate` or fix the path")
    return location


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


def drop_in_memory_tables(expression: ibis.Table) -> None:
    """Unregister the in-memory tables (`ibis.memtable`) `expression` read, once its rows are computed. Ibis
    registers each on first use and drops it only when the process exits; the features stage makes one per cutoff
    (BG/NBD's values for the cutoff's population, 700,000 rows at 10M orders), which Spark would otherwise keep as a
    temporary view over the rows it was handed (JVM heap), and DuckDB as a view over the Arrow table."""
    backend = expression._find_backend()
    for table in expression.op().find(ops.InMemoryTable):
        if backend.name == "duckdb":  # by name: importing Ibis's DuckDB backend here loads DuckDB into validate
            backend.con.unregister(table.name)
        else:
            backend._session.catalog.dropTempView(table.name)
        # Ibis registers an in-memory table once per connection: forget it, so a later use registers it again.
        backend._memtables.discard(table)
