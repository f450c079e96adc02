from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.sources.files import SourceTable

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
AS_OF = pd.Timestamp("2024-07-01")


def clean_tables() -> dict[str, pd.DataFrame]:
    """A tiny shop that breaks no rule: two customers, four orders, one review, ticket and return."""
    ts = pd.Timestamp
    customers = pd.DataFrame(
        {
            "customer_id": ["c1", "c2"],
            "signed_up_at": [ts("2024-01-01"), ts("2024-02-01")],
            "loyalty_member": [True, False],
            "country": ["SE", "NO"],
        }
    )
    orders = pd.DataFrame(
        {
            "order_id": ["o1", "o2", "o3", "o4"],
            "customer_id": ["c1", "c1", "c2", "c2"],
            "ordered_at": [ts("2024-01-05"), ts("2024-03-01"), ts("2024-02-10"), ts("2024-06-20")],
            "order_value": [50.0, 20.0, 0.0, 75.5],
            "status": ["delivered", "returned", "cancelled", "shipped"],
            "cancel_reason": [None, None, "out_of_stock", None],
            "channel": ["web", "app", "web", "store"],
            "payment_method": ["card", "invoice", "card", "card"],
            "promised_delivery_at": [ts("2024-01-08"), ts("2024-03-04"), pd.NaT, ts("2024-07-05")],
            "delivered_at": [ts("2024-01-07"), ts("2024-03-06"), pd.NaT, pd.NaT],
        }
    )
    reviews = pd.DataFrame({"order_id": ["o1"], "review_score": [5], "reviewed_at": [ts("2024-01-09")]})
    tickets = pd.DataFrame(
        {
            "ticket_id": ["t1"],
            "customer_id": ["c1"],
            "order_id": ["o2"],
            "opened_at": [ts("2024-03-06 10:00")],
            "resolved_at": [ts("2024-03-07")],
            "reason": ["late_delivery"],
        }
    )
    returns = pd.DataFrame({"order_id": ["o2"], "returned_at": [ts("2024-03-10")], "reason": ["damaged"]})
    return {"customers": customers, "orders": orders, "reviews": reviews, "tickets": tickets, "returns": returns}


def clean_tables_with_lines() -> dict[str, pd.DataFrame]:
    """`clean_tables` with what was bought: five lines, and the return naming the line it brought back.

    o1 (c1): p1 toys 2 x 10 + p2 books 1 x 30; o2 (c1): p1 toys 1 x 20 (returned); o3 (c2, cancelled): p3 without a
    category, 1 x 0; o4 (c2): p2 books 1 x 75.5. Each order's lines add up to its value."""
    tables = clean_tables()
    tables["order_lines"] = pd.DataFrame(
        {
            "line_id": ["l1", "l2", "l3", "l4", "l5"],
            "order_id": ["o1", "o1", "o2", "o3", "o4"],
            "product_id": ["p1", "p2", "p1", "p3", "p2"],
            "category": ["toys", "books", "toys", None, "books"],
            "quantity": [2.0, 1.0, 1.0, 1.0, 1.0],
            "unit_price": [10.0, 30.0, 20.0, 0.0, 75.5],
        }
    )
    tables["returns"] = tables["returns"].assign(line_id=["l3"])
    return tables


def as_sources(tables: dict[str, pd.DataFrame]) -> dict[str, SourceTable]:
    return {name: SourceTable(name=name, raw=frame, origin=f"<{name}>") for name, frame in tables.items()}


@pytest.fixture
def tables() -> dict[str, pd.DataFrame]:
    return clean_tables()


def write_params(path: Path, **blocks: dict[str, object]) -> Path:
    """A params file whose blocks are the repository's params.yaml with `blocks` merged in."""
    import yaml

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for name, values in blocks.items():
        params[name] = {**params.get(name, {}), **values}
    path.write_text(yaml.safe_dump(params))
    return path


N_CUSTOMERS = 3000


@pytest.fixture(scope="session")
def shop(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """generate + validate once, with paths to everything they wrote."""
    root = tmp_path_factory.mktemp("shop")
    paths = {
        "params": root / "params.yaml",
        "raw": root / "raw",
        "truth": root / "truth",
        "validated": root / "validated",
        "quarantine": root / "quarantine",
        "report": root / "validation.json",
        "report_md": root / "validation.md",
    }
    write_params(paths["params"], generate={"n_customers": N_CUSTOMERS}, data={"path": str(paths["raw"])})
    invoke("generate", "--params", paths["params"], "--out", paths["raw"], "--truth", paths["truth"])
    invoke(
        "validate", "--params", paths["params"], "--validated", paths["validated"],
        "--quarantine", paths["quarantine"], "--report", paths["report"], "--report-md", paths["report_md"],
    )  # fmt: skip
    return paths


def invoke(*args: object) -> str:
    result = CliRunner().invoke(app, [str(arg) for arg in args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


# The one Spark session of a test run: local, two cores, a small driver, bound to loopback.
SPARK_TEST_CONFIG = {
    "spark.driver.memory": "1g",
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
    "spark.ui.enabled": "false",
    # Adaptive execution re-plans every shuffle: on tables of a few rows that is most of a query's time.
    "spark.sql.adaptive.enabled": "false",
}


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A local[2] Spark session shared by every Spark test; skips, saying why, without pyspark or Java."""
    pytest.importorskip("pyspark", reason="the Spark tests need pyspark: pip install -e '.[spark]'")
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("the Spark tests need Java 17 or 21 (java on PATH or JAVA_HOME)")
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    from pipelines.engine import SparkSettings, spark_session

    warehouse = {"spark.sql.warehouse.dir": str(tmp_path_factory.mktemp("spark-warehouse"))}
    session = spark_session(SparkSettings("local[2]", "churn-pipeline-tests", {**SPARK_TEST_CONFIG, **warehouse}))
    assert session.conf.get("spark.driver.host") == "127.0.0.1"
    yield session
    session.stop()
