"""benchmarks/spark_engine.py's memory accounting: which children of the `churn` process it counts, and as what."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
JAVA = "/usr/lib/jvm/java-17-openjdk-amd64/bin/java"
PYTHON = "/root/.pyenv/versions/3.11.7/bin/python3.11"


@pytest.fixture(scope="module")
def spark_engine() -> ModuleType:
    sys.path.insert(0, str(BENCHMARKS))  # the script imports its sibling generate_validate
    try:
        return importlib.import_module("spark_engine")
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_a_child_the_jvm_is_still_spawning_is_not_counted_twice(spark_engine: ModuleType) -> None:
    """Between posix_spawn and exec, a child of the JVM runs in the JVM's address space, named after the spawning
    thread ('Executor task l'), its executable java and its RSS the JVM's: Hadoop spawns one per folder and Parquet
    part it writes (`chmod`). Counted, it doubled the JVM (as a Python worker) and stopped session 11's 10M score at
    the memory limit; the processes below are those a local session showed while writing Parquet."""
    kind = spark_engine.process_kind
    assert kind(JAVA, PYTHON) == "jvm"  # the JVM itself, started by the churn process
    assert kind(JAVA, JAVA) is None  # the JVM's child before its exec
    assert kind("/usr/lib/jvm/java-17-openjdk-amd64/lib/jspawnhelper", JAVA) == "jvm"
    assert kind("/usr/bin/chmod", JAVA) == "jvm"
    assert kind(PYTHON, JAVA) == "python_workers"  # pyspark.daemon
    assert kind(PYTHON, PYTHON) == "python_workers"  # a worker the daemon forked: memory of its own
