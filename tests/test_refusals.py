"""Every refusal path through the `churn` command as a user meets it (a subprocess): one line naming what to change,
exit code 1 (2 for a usage error), and never a traceback."""

from __future__ import annotations

import codecs
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, write_params
from messy_exports import CASES, EXPORTED_AT, clean_orders, write_case

CHURN = Path(sys.executable).parent / "churn"


@dataclass(frozen=True)
class Refusal:
    name: str
    args: list[str]  # after `churn`; {params}, {work} and {export} are filled in
    message: str  # what the last line of stderr must hold
    data: dict[str, Any] = field(default_factory=dict)  # the data block on top of the clean export's
    blocks: dict[str, dict[str, Any]] = field(default_factory=dict)  # other blocks of params
    before: tuple[str, ...] = ()  # stages to run first, with the same params
    exit_code: int = 1
    export: str = "clean"  # the corpus case written to {export}
    env: dict[str, str] = field(default_factory=dict)  # on top of the test's environment


VALIDATE = ["validate", "--params", "{params}", "--validated", "{work}/validated", "--quarantine", "{work}/q",
            "--report", "{work}/validation.json", "--report-md", "{work}/validation.md"]  # fmt: skip
FEATURES = ["features", "--params", "{params}", "--validated", "{work}/validated", "--validation-report",
            "{work}/validation.json", "--out", "{work}/features/features.parquet", "--dictionary",
            "{work}/features/dictionary.csv", "--dictionary-md", "{work}/dictionary.md", "--summary",
            "{work}/features.json"]  # fmt: skip
TRAIN = ["train", "--params", "{params}", "--features", "{work}/features/features.parquet", "--dictionary",
         "{work}/features/dictionary.csv", "--validation-report", "{work}/validation.json", "--backtest",
         "{work}/models/backtest", "--current", "{work}/models/current"]  # fmt: skip
IMPACT = ["impact", "--params", "{params}", "--validated", "{work}/validated", "--validation-report",
          "{work}/validation.json", "--truth", "{work}/truth", "--metrics", "{work}/impact.json", "--report",
          "{work}/impact_detail.json", "--report-md", "{work}/impact.md", "--figures", "{work}/figures",
          "--no-track"]  # fmt: skip
SHORT_HISTORY = {"first_cutoff": "2023-02-01", "every_days": 30, "active_window_days": 365}

REFUSALS = (
    Refusal("unknown key", VALIDATE, "data.csv.decmal is not a param; did you mean data.csv.decimal?",
            data={"csv": {"decmal": ","}}),
    Refusal("unknown block", VALIDATE, "unknown block 'featurs'; did you mean features?",
            blocks={"featurs": {"horizon_days": 90}}),
    Refusal("wrong type", TRAIN, "train.num_leaves = 'many': Input should be a valid integer",
            blocks={"train": {"num_leaves": "many"}}),
    Refusal("impossible separators", VALIDATE, "data.csv.thousands and data.csv.decimal are both ','",
            data={"csv": {"decimal": ",", "thousands": ","}}),
    Refusal("first cutoff after as-of", FEATURES, "features.first_cutoff 2025-01-01 is after data.as_of",
            blocks={"features": {"first_cutoff": "2025-01-01"}}),
    Refusal("unknown encoding", VALIDATE, "data.csv.encoding 'windows-1999' is not an encoding Python knows",
            data={"csv": {"encoding": "windows-1999"}}),
    Refusal("unknown table", VALIDATE, "params name tables that are not in the contract: ['order']",
            data={"per_table": {"order": {"decimal": ","}}}),
    Refusal("missing folder", VALIDATE, "does not exist; set data.path", data={"path": "/nonexistent/export"}),
    Refusal("wrong encoding", VALIDATE, "is not valid utf-8", export="cp1252_bom_unset"),
    Refusal("wrong delimiter", VALIDATE, "looks ';'-delimited: set data.csv.delimiter", export="semicolon_unset"),
    Refusal("ambiguous dates", VALIDATE, "read both day-first and month-first; set data.csv.day_first",
            export="ambiguous_dates"),
    Refusal("missing column", VALIDATE, "lacks required column(s) ['order_value']",
            data={"column_mapping": {"orders": {"order_value": "cancel_reason"}}}),
    Refusal("quarantine limit", VALIDATE, "too much bad data (limit validate.max_quarantine_share",
            export="missing_words_unset"),
    Refusal("features before validation", FEATURES, "validation.json does not exist: run `churn validate`"),
    Refusal("features after a failed validation", FEATURES, "the last validation did not pass",
            export="missing_words_unset", before=("validate",)),
    Refusal("horizon longer than the history", FEATURES, "features.horizon_days = 273 is longer than the history",
            blocks={"features": {**SHORT_HISTORY, "horizon_days": 273}}, before=("validate",)),
    Refusal("too little data", TRAIN, "too little data for figures that mean anything",
            blocks={"features": {**SHORT_HISTORY, "horizon_days": 60}}, before=("validate", "features")),
    Refusal("unknown model", ["score", "--params", "{params}", "--validated", "{work}/validated",
                              "--validation-report", "{work}/validation.json", "--model", "{work}/no-model"],
            "scoring refused:", before=("validate",)),
    Refusal("impact before validation", IMPACT, "validation.json does not exist: run `churn validate`"),
    Refusal("impact with one fold", IMPACT, "impact.folds = 1: cross-fitting needs at least 2 folds",
            blocks={"impact": {"folds": 1}}),
    Refusal("impact with a horizon nothing has", IMPACT, "no order has its 900-day follow-up observed",
            blocks={"features": {**SHORT_HISTORY, "horizon_days": 900}}, before=("validate",)),
    # Spark's environment and settings: refused before (or as) the session starts, without a JVM stack.
    Refusal("spark without java", [*VALIDATE, "--engine", "spark"], "engine spark needs Java 17 or 21 (JAVA_HOME=",
            env={"JAVA_HOME": "/nonexistent/jdk"}),
    Refusal("spark master unreachable", [*VALIDATE, "--engine", "spark"],
            "spark.master spark://127.0.0.1:9: cannot connect to 127.0.0.1:9",
            blocks={"spark": {"master": "spark://127.0.0.1:9"}}),
    Refusal("spark memory not a size", [*VALIDATE, "--engine", "spark"],
            "spark.config spark.driver.memory = 'lots' is not a size; use e.g. 4g",
            blocks={"spark": {"config": {"spark.driver.memory": "lots"}}}),
    Refusal("spark property spark refuses", [*VALIDATE, "--engine", "spark"],
            "Spark did not start: ", blocks={"spark": {"config": {"spark.sql.shuffle.partitions": "many"}}}),
    Refusal("data-lake uri on duckdb", [*FEATURES[:3], "--validated", "s3a://lake/validated", *FEATURES[5:]],
            "--validated s3a://lake/validated: this is read or written on this machine; give a local path or an "
            "absolute file:// URI", before=("validate",)),
    Refusal("inspect a missing path", ["inspect", "{work}/nowhere"], "does not exist"),
    Refusal("missing params file", ["validate", "--params", "{work}/nowhere.yaml"], "params file"),
    Refusal("usage error", ["validate", "--no-such-option"], "No such option", exit_code=2),
)  # fmt: skip
STAGE_ARGS = {"validate": VALIDATE, "features": FEATURES, "train": TRAIN}


def churn(args: list[str], cwd: Path, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{CHURN.parent}{os.pathsep}{os.environ['PATH']}", **(extra_env or {})}
    return subprocess.run([str(CHURN), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def fill(args: list[str], **values: Path) -> list[str]:
    return [arg.format(**{name: str(value) for name, value in values.items()}) for arg in args]


@pytest.mark.slow
@pytest.mark.parametrize("refusal", REFUSALS, ids=lambda refusal: refusal.name)
def test_refusal_is_one_line_without_traceback(refusal: Refusal, tmp_path: Path) -> None:
    case = next(case for case in CASES if case.name == refusal.export)
    export = write_case(case, clean_orders(), tmp_path / "export")
    data = {"source": "files", "path": str(export), "as_of": EXPORTED_AT.isoformat(), "csv": {}, **case.settings}
    params = write_params(
        tmp_path / "params.yaml",
        data={**data, **refusal.data},
        **{"features": SHORT_HISTORY, **refusal.blocks},
    )
    for stage in refusal.before:  # a stage before may refuse too (a failed validation): the last one is checked
        churn(fill(STAGE_ARGS[stage], params=params, work=tmp_path, export=export), REPO)
    result = churn(fill(refusal.args, params=params, work=tmp_path, export=export), REPO, refusal.env)
    output = result.stdout + result.stderr
    assert result.returncode == refusal.exit_code, output
    assert "Traceback" not in output
    # A usage error is click's: the usage, then the error; every other refusal is the last line alone.
    reported = result.stderr if refusal.exit_code == 2 else result.stderr.strip().splitlines()[-1]
    assert refusal.message in reported, output


def test_cp1252_file_names_the_encoding_not_the_mapping(tmp_path: Path) -> None:
    """Excel's cp1252 with a UTF-8 byte-order mark once failed as 'lacks required column ['order_id']'."""
    (tmp_path / "orders.csv").write_bytes(codecs.BOM_UTF8 + "order_id\nÅ1\n".encode("cp1252"))
    params = write_params(tmp_path / "params.yaml", data={"path": str(tmp_path), "csv": {}})
    result = churn(fill(VALIDATE, params=params, work=tmp_path), REPO)
    assert result.returncode == 1
    assert "data.csv.encoding" in result.stderr and "column_mapping" not in result.stderr


class JavaException:
    """What Py4J hands over for an exception thrown in the JVM: asked for its text with `toString`."""

    _target_id = "o42"

    def __init__(self, text: str) -> None:
        self.text = text

    def toString(self) -> str:  # the Java method's name
        return self.text


def test_spark_running_out_of_memory_is_one_line_naming_the_setting(capsys: pytest.CaptureFixture[str]) -> None:
    import typer

    from pipelines.cli import refusals

    protocol = pytest.importorskip("py4j.protocol", reason="pyspark (and Py4J) is an optional extra")
    out_of_heap = JavaException("java.lang.OutOfMemoryError: Java heap space")
    with pytest.raises(typer.Exit) as stopped, refusals("validate failed"):
        raise protocol.Py4JJavaError("An error occurred while calling z:readArrowStreamFromFile.\n", out_of_heap)
    assert stopped.value.exit_code == 1
    reported = capsys.readouterr().err
    assert reported.count("\n") == 1
    assert "Spark ran out of memory (java.lang.OutOfMemoryError: Java heap space)" in reported
    assert "spark.driver.memory" in reported


def test_another_java_error_keeps_its_traceback() -> None:
    from pipelines.cli import refusals

    protocol = pytest.importorskip("py4j.protocol", reason="pyspark (and Py4J) is an optional extra")
    with pytest.raises(protocol.Py4JJavaError), refusals("validate failed"):
        raise protocol.Py4JJavaError("calling o1.count", JavaException("java.lang.IllegalStateException: a bug"))
