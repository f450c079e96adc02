"""The Spark engine gives what the DuckDB engine gives, on the same data and the same feature definitions: every
feature and label (floats within 1e-9 relative), the point-in-time property on a small case, and the risk list's
probabilities. One local[2] session for the whole run (the `spark` fixture), tiny data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import AS_OF, as_sources, clean_tables_with_lines, invoke, write_params
from hypothesis import given, settings
from hypothesis import strategies as st
from test_point_in_time import CUTOFF, PARAMS, SETTINGS, change_the_future, shops_with_lines
from test_scoring import pipeline, score_args  # noqa: F401 -- `pipeline`: features + train on the shared shop

from features.build import LABEL, features_at
from features.inputs import inputs_from_frames
from pipelines.engine import LOOPBACK, SparkSettings, check_engine, engine_settings
from pipelines.params_check import check_params

RELATIVE = 1e-9


def assert_same_rows(got: pd.DataFrame, expected: pd.DataFrame, keys: list[str]) -> None:
    """Same rows, columns and types; floats equal within RELATIVE, everything else exactly."""
    got = got.sort_values(keys).reset_index(drop=True)
    expected = expected.sort_values(keys).reset_index(drop=True)
    # Both engines give the same instants; DuckDB's pandas columns are datetime64[us], Spark's [ns].
    got = got.astype({c: "datetime64[ns]" for c in got.columns if pd.api.types.is_datetime64_dtype(got[c])})
    expected = expected.astype(
        {c: "datetime64[ns]" for c in expected.columns if pd.api.types.is_datetime64_dtype(expected[c])}
    )
    assert list(got.columns) == list(expected.columns)
    assert len(got) == len(expected)
    for column in expected.columns:
        if pd.api.types.is_float_dtype(expected[column]):
            np.testing.assert_allclose(got[column], expected[column], rtol=RELATIVE, atol=0, err_msg=column)
        else:
            pd.testing.assert_series_equal(got[column], expected[column], check_dtype=True, obj=column)


# Params and the session factory: no Spark needed.


def test_engine_and_spark_params_are_checked() -> None:
    check_params({"engine": "spark", "spark": {"master": "local[1]", "config": {"spark.driver.memory": "1g"}}})
    with pytest.raises(ValueError, match=r"^engine = 'sparkk': choose one of \['duckdb', 'spark'\]$"):
        check_params({"engine": "sparkk"})
    with pytest.raises(ValueError, match=r"^spark\.mastr is not a param; did you mean spark\.master\?$"):
        check_params({"spark": {"mastr": "local[2]"}})
    with pytest.raises(ValueError, match=r"spark\.master is empty"):
        SparkSettings(master=" ")


def test_the_command_line_engine_wins_over_params() -> None:
    assert engine_settings({"engine": "duckdb"}, "spark")[0] == "spark"
    assert engine_settings({"engine": "spark"})[0] == "spark"
    assert engine_settings({})[0] == "duckdb"
    with pytest.raises(ValueError, match="engine = 'postgres'"):
        check_engine("postgres")


def test_a_local_master_binds_to_loopback_and_a_cluster_takes_its_config() -> None:
    local = SparkSettings(master="local[2]").session_config()
    assert local["spark.driver.host"] == LOOPBACK
    assert local["spark.driver.bindAddress"] == LOOPBACK
    assert local["spark.sql.session.timeZone"] == "UTC"
    cluster = SparkSettings(master="spark://head:7077", config={"spark.executor.memory": "8g"}).session_config()
    assert "spark.driver.host" not in cluster
    assert cluster["spark.executor.memory"] == "8g"
    # YAML's booleans as Spark spells them; results and in-memory tables cross as Arrow under every master.
    flagged = SparkSettings(config={"spark.sql.adaptive.enabled": True, "spark.sql.shuffle.partitions": 64})
    assert flagged.session_config()["spark.sql.adaptive.enabled"] == "true"
    assert flagged.session_config()["spark.sql.shuffle.partitions"] == "64"
    assert cluster["spark.sql.execution.arrow.pyspark.enabled"] == "true"


def test_an_unknown_engine_on_the_command_line_is_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from pipelines.cli import app

    params = write_params(tmp_path / "params.yaml")
    result = CliRunner().invoke(app, ["features", "--params", str(params), "--engine", "polars"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "features failed: engine = 'polars': choose one of ['duckdb', 'spark']"
    ]


# On Spark.


@pytest.mark.spark
def test_the_session_binds_to_loopback(spark: object) -> None:
    conf = spark.conf  # type: ignore[attr-defined]
    assert conf.get("spark.driver.host") == LOOPBACK
    assert conf.get("spark.driver.bindAddress") == LOOPBACK
    assert spark.sparkContext.master == "local[2]"  # type: ignore[attr-defined]


@pytest.mark.spark
def test_a_session_the_pipeline_did_not_build_gets_utc(spark: object) -> None:
    """A notebook's (or spark-submit's) session in another time zone would move every naive timestamp."""
    from pipelines.engine import spark_session

    spark.conf.set("spark.sql.session.timeZone", "America/New_York")  # type: ignore[attr-defined]
    assert spark_session(SparkSettings()) is spark
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"  # type: ignore[attr-defined]


def test_a_spark_error_becomes_its_innermost_cause() -> None:
    from pipelines.engine import spark_error_line

    py4j = (
        "An error occurred while calling o34.parquet.\n: java.lang.RuntimeException: wrapped\n"
        "\tat org.apache.X(X.java:1)\n"
        "Caused by: java.lang.ClassNotFoundException: Class org.apache.hadoop.fs.s3a.S3AFileSystem not found\n"
        "\tat org.apache.Y(Y.java:2)"
    )
    assert spark_error_line(RuntimeError(py4j)) == (
        "java.lang.ClassNotFoundException: Class org.apache.hadoop.fs.s3a.S3AFileSystem not found"
    )
    assert spark_error_line(RuntimeError("An error occurred while calling o1.x.\n: java.io.IOException: disk")) == (
        "java.io.IOException: disk"
    )
    gateway = spark_error_line(RuntimeError("[JAVA_GATEWAY_EXITED] Java gateway process exited"))
    assert gateway.startswith("its Java process exited at start") and "spark.driver.memory" in gateway


def last_line_of_refusal(args: list[object]) -> str:
    """`churn ARGS` in this process (the test session is the active one): exit code 1, no traceback; the last line."""
    from typer.testing import CliRunner

    from pipelines.cli import app

    result = CliRunner().invoke(app, [str(arg) for arg in args])
    assert result.exit_code == 1, result.output + repr(result.exception)
    assert "Traceback" not in result.output and "py4j" not in result.output.lower(), result.output
    return result.output.strip().splitlines()[-1]


@pytest.mark.spark
@pytest.mark.parametrize(
    ("location", "connector"),
    [("s3a://lake/validated", "org.apache.hadoop:hadoop-aws"),
     ("abfss://shop@lake.dfs.core.windows.net/validated", "org.apache.hadoop:hadoop-azure")],
)  # fmt: skip
def test_a_data_lake_uri_without_its_connector_is_one_line(
    spark: object, shop: dict[str, Path], tmp_path: Path, location: str, connector: str
) -> None:
    scheme = location.split("://")[0]
    line = last_line_of_refusal([
        "features", "--params", shop["params"], "--validated", location, "--validation-report", shop["report"],
        "--out", tmp_path / "f.parquet", "--engine", "spark",
    ])  # fmt: skip
    assert line == (
        f"features failed: --validated {location}: Spark has no {scheme}:// filesystem on its classpath; add "
        f"{connector} (the Hadoop version of your Spark) to spark.config spark.jars.packages, or use a path it reads"
    )
    assert not (tmp_path / "f.parquet").exists()


@pytest.mark.spark
def test_a_missing_folder_uri_on_spark_is_one_line(spark: object, shop: dict[str, Path], tmp_path: Path) -> None:
    missing = (tmp_path / "nowhere").as_uri()
    line = last_line_of_refusal([
        "features", "--params", shop["params"], "--validated", missing, "--validation-report", shop["report"],
        "--out", tmp_path / "f.parquet", "--engine", "spark",
    ])  # fmt: skip
    assert (
        line
        == f"features failed: --validated {missing} does not exist (for Spark); run `churn validate` or fix the path"
    )


@pytest.mark.spark
def test_a_risk_list_uri_spark_cannot_write_is_refused_before_scoring(
    spark: object,
    pipeline: dict[str, Path],  # noqa: F811 -- the fixture imported from test_scoring
    tmp_path: Path,
) -> None:
    args = score_args(pipeline, tmp_path)
    args[args.index("--out") + 1] = "s3a://lake/risk_list.parquet"
    line = last_line_of_refusal([*args, "--engine", "spark"])
    assert line.startswith("scoring refused: --out s3a://lake/risk_list.parquet: Spark has no s3a:// filesystem")
    assert list(tmp_path.iterdir()) == []  # nothing written, not even the reports


def test_local_outputs_take_paths_and_file_uris_and_refuse_other_schemes() -> None:
    from pipelines.engine import local_path

    assert local_path("data/validated", "--out") == Path("data/validated")
    assert local_path("file:///srv/shop/validated", "--out") == Path("/srv/shop/validated")
    assert local_path("file://localhost/srv/shop", "--out") == Path("/srv/shop")
    assert local_path("file:/srv/shop", "--out") == Path("/srv/shop")  # Hadoop's spelling
    for refused in ("s3a://lake/features.parquet", "file://otherhost/srv/shop", "file:relative/path"):
        with pytest.raises(ValueError, match=r"^--out .*: this is read or written on this machine"):
            local_path(refused, "--out")


@pytest.mark.spark
@pytest.mark.slow
def test_the_features_stage_on_spark_writes_what_duckdb_writes(
    spark: object, shop: dict[str, Path], tmp_path: Path
) -> None:
    """The synthetic shop (generated and validated once per run), three cutoffs (two labelled), by `churn features
    --engine spark` and by the default engine, reading and writing file:// URIs: every feature and label of every
    row."""
    params = write_params(
        tmp_path / "params.yaml",
        data={"path": str(shop["raw"])},
        features={"first_cutoff": "2025-06-01", "every_days": 90},
    )
    tables = {}
    for engine in ("duckdb", "spark"):
        out = tmp_path / engine
        # Input and output as absolute file:// URIs, which both engines take.
        invoke(
            "features", "--params", params, "--validated", shop["validated"].as_uri(), "--validation-report",
            shop["report"], "--out", (out / "features.parquet").as_uri(), "--dictionary", out / "dictionary.csv",
            "--dictionary-md", out / "dictionary.md", "--summary", out / "features.json", "--engine", engine,
        )  # fmt: skip
        tables[engine] = pd.read_parquet(out / "features.parquet")
    assert tables["duckdb"]["cutoff"].nunique() == 3
    assert tables["duckdb"][LABEL].notna().sum() > 0
    assert_same_rows(tables["spark"], tables["duckdb"], ["cutoff", "customer_id"])
    assert (tmp_path / "spark" / "features.json").read_text() == (tmp_path / "duckdb" / "features.json").read_text()


@pytest.mark.spark
@settings(SETTINGS, max_examples=2)
@given(data=st.data())
def test_on_spark_events_at_or_after_the_cutoff_change_no_feature(spark: object, data: st.DataObject) -> None:
    """The point-in-time property of tests/test_point_in_time.py on Spark, on two small shops with order lines, and
    the Spark rows equal DuckDB's."""
    import ibis

    con = ibis.pyspark.connect(spark)
    shop = data.draw(shops_with_lines())
    schema = inputs_from_frames(shop, AS_OF).available

    def at_cutoff(frames: dict[str, pd.DataFrame], con: ibis.BaseBackend | None = None) -> pd.DataFrame:
        inputs = inputs_from_frames(frames, AS_OF, schema, con=con)
        # Through Arrow, as the features stage writes them: typed by the expression's schema (a column all null on
        # one side is float on both, where PySpark's pandas result would make it object).
        table = features_at(inputs, CUTOFF, PARAMS).to_pyarrow().to_pandas()
        return table.sort_values("customer_id").reset_index(drop=True)

    before = at_cutoff(shop, con)
    assert_same_rows(before, at_cutoff(shop), ["customer_id"])
    after = at_cutoff(change_the_future(data.draw, shop), con)
    pd.testing.assert_frame_equal(before.drop(columns=LABEL), after.drop(columns=LABEL), check_dtype=False)


TOP_K = 40


@pytest.mark.spark
@pytest.mark.slow
@pytest.mark.parametrize("top_k", [None, TOP_K], ids=["everyone", "top_k"])
def test_scoring_on_spark_gives_duckdb_s_risk_list(
    spark: object,
    pipeline: dict[str, Path],  # noqa: F811 -- the fixture imported from test_scoring
    tmp_path: Path,
    top_k: int | None,
) -> None:
    """`churn score --engine spark` (mapInPandas, the model broadcast once, reasons, an atomic Parquet folder) and the
    default engine on the same data and model, reading and writing file:// URIs: the same customers, ranks,
    probabilities (within 1e-9 relative), reasons, actions and report; with everyone written, and with the top k
    only (the reasons computed for the written customers alone, still the same)."""
    lists = {}
    extra = [] if top_k is None else ["--top-k", str(top_k)]
    for engine in ("duckdb", "spark"):
        out = tmp_path / engine
        args = score_args(pipeline, out, *extra)  # the validated tables and the list as absolute file:// URIs
        args[args.index("--validated") + 1] = pipeline["validated"].as_uri()
        args[args.index("--out") + 1] = (out / "risk.parquet").as_uri()
        invoke(*args, "--engine", engine)
        lists[engine] = pd.read_parquet(out / "risk.parquet")
        assert (out / "risk.csv").is_file()
    spark_list, duckdb_list = lists["spark"], lists["duckdb"]
    if top_k is None:
        assert len(duckdb_list) > 100
    else:
        assert duckdb_list["rank"].tolist() == list(range(1, top_k + 1))
    assert duckdb_list["reason_1"].notna().any()
    spark_list["risk_tier"] = spark_list["risk_tier"].astype(duckdb_list["risk_tier"].dtype)
    assert_same_rows(
        spark_list.astype({c: duckdb_list[c].dtype for c in ("orders_total", "open_tickets")}), duckdb_list, ["rank"]
    )
    reports = {engine: json.loads((tmp_path / engine / "scoring.json").read_text()) for engine in lists}
    for key in ("customers_scored", "customers_written", "tiers", "drift_warnings"):
        assert reports["spark"].get(key) == reports["duckdb"].get(key), key
    # Nothing of the temporary folder is left beside the list.
    assert sorted(path.name for path in (tmp_path / "spark").iterdir()) == [
        "risk.csv", "risk.parquet", "scoring.json", "scoring.md"
    ]  # fmt: skip


@pytest.mark.spark
def test_the_risk_list_replaces_the_old_one_only_when_complete(spark: object, tmp_path: Path) -> None:
    from pipelines.spark_scoring import write_parquet_atomically

    session = spark
    target = str(tmp_path / "risk.parquet")
    write_parquet_atomically(session.createDataFrame(pd.DataFrame({"rank": [1, 2]})), target)  # type: ignore[attr-defined]
    failing = session.range(3).selectExpr("CAST(raise_error('disk full') AS BIGINT) AS rank")  # type: ignore[attr-defined]
    with pytest.raises(Exception, match="disk full"):
        write_parquet_atomically(failing, target)
    assert pd.read_parquet(target)["rank"].tolist() == [1, 2]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["risk.parquet"]
    write_parquet_atomically(session.createDataFrame(pd.DataFrame({"rank": [7]})), target)  # type: ignore[attr-defined]
    assert pd.read_parquet(target)["rank"].tolist() == [7]


# Validation through Great Expectations' Spark datasource.


def validate_on(engine: str, folder: Path, data: dict[str, object], work: Path) -> str:
    """The validate stage with `engine` on an export; '' or the refusal's message."""
    from messy_exports import EXPORTED_AT
    from test_messy_exports import MAX_QUARANTINE_SHARE

    from pipelines.stages import validate as stage

    work.mkdir(parents=True)
    params = write_params(
        work / "params.yaml",
        data={"source": "files", "path": str(folder), "as_of": EXPORTED_AT.isoformat(), "csv": {}, **data},
        validate={"max_quarantine_share": MAX_QUARANTINE_SHARE},
    )
    outputs = stage.ValidateOutputs(work / "validated", work / "quarantine", work / "v.json", work / "v.md")
    try:
        stage.run(params, outputs, engine)
    except ValueError as error:
        return str(error)
    return ""


def assert_same_validation(spark_work: Path, duckdb_work: Path) -> None:
    """The same accepted and quarantined rows (with the rules they broke) and the same report."""
    for folder in ("validated", "quarantine"):
        names = sorted(path.name for path in (duckdb_work / folder).glob("*.parquet"))
        assert sorted(path.name for path in (spark_work / folder).glob("*.parquet")) == names
        for name in names:
            pd.testing.assert_frame_equal(
                pd.read_parquet(spark_work / folder / name), pd.read_parquet(duckdb_work / folder / name)
            )
    assert json.loads((spark_work / "v.json").read_text()) == json.loads((duckdb_work / "v.json").read_text())


@pytest.mark.spark
@pytest.mark.slow
def test_validation_on_spark_quarantines_the_rows_and_rules_pandas_does(
    spark: object, shop: dict[str, Path], tmp_path: Path
) -> None:
    """The synthetic shop with every kind of dirt the generator injects (the `shop` fixture validated it with the
    default engine): the same accepted rows, quarantined rows with their rules, and report on Spark."""
    from pipelines.stages import validate as stage

    outputs = stage.ValidateOutputs(
        tmp_path / "validated", tmp_path / "quarantine", tmp_path / "v.json", tmp_path / "v.md"
    )
    stage.run(shop["params"], outputs, "spark")
    expected = {"validated": shop["validated"], "quarantine": shop["quarantine"]}
    for folder, path in expected.items():
        names = sorted(p.name for p in path.glob("*.parquet"))
        assert sorted(p.name for p in (tmp_path / folder).glob("*.parquet")) == names
        for name in names:
            pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / folder / name), pd.read_parquet(path / name))
    report = json.loads(outputs.report_json.read_text())
    assert report == json.loads(shop["report"].read_text())
    # Among them a rule on a lookup column with a dot (`__orders.ordered_at`), which Spark would read as a field.
    assert report["tables"]["reviews"]["rule_counts"]["reviews.reviewed_at.not_before"] > 0


def _spark_corpus() -> list[object]:
    """The bad-input corpus's exports whose rows break a rule when validated: quarantined, or refused for too many
    quarantined rows (the clean export passes on Spark in the stage tests' shop)."""
    from messy_exports import CASES

    return [c for c in CASES if c.outcome.kind == "quarantined" or c.name == "missing_words_unset"]


@pytest.mark.spark
@pytest.mark.parametrize("case", _spark_corpus(), ids=lambda case: case.name)  # type: ignore[attr-defined]
def test_validation_on_spark_of_the_bad_input_corpus(spark: object, case: object, tmp_path: Path) -> None:
    from messy_exports import clean_orders, write_case

    folder = write_case(case, clean_orders(), tmp_path / "export")  # type: ignore[arg-type]
    messages = {
        engine: validate_on(engine, folder, case.settings, tmp_path / engine)  # type: ignore[attr-defined]
        for engine in ("duckdb", "spark")
    }
    assert messages["spark"] == messages["duckdb"].replace(str(tmp_path / "duckdb"), str(tmp_path / "spark"))
    assert_same_validation(tmp_path / "spark", tmp_path / "duckdb")


@pytest.mark.spark
def test_validation_on_spark_of_order_lines_and_the_returns_naming_them(spark: object) -> None:
    """The line rules, among them the one comparing a return's order with its line's (a lookup column with a dot),
    quarantine the same rows on Spark as on pandas."""
    from pipelines.validation.run import validate_tables
    from pipelines.validation.spark_suite import spark_suite_runner

    tables = clean_tables_with_lines()
    tables["order_lines"].loc[1, "quantity"] = 0.0
    tables["order_lines"].loc[4, "order_id"] = "o999"
    tables["returns"].loc[0, "line_id"] = "l1"  # a line of o1 on a return of o2
    results = {
        "pandas": validate_tables(as_sources(tables), AS_OF),
        "spark": validate_tables(as_sources(tables), AS_OF, spark_suite_runner(spark)),  # type: ignore[arg-type]
    }
    rules = {engine: {r.table: r.rule_counts for r in result.reports} for engine, result in results.items()}
    assert rules["spark"] == rules["pandas"]
    assert rules["pandas"]["order_lines"] == {"order_lines.order_id.references": 1, "order_lines.quantity.range": 1}
    assert rules["pandas"]["returns"] == {"returns.order_id.agrees": 1}
