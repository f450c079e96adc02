"""Scoring on Spark (`engine: spark`): the saved model and its calibration applied per partition with `mapInPandas`,
the model shipped to the executors once (a broadcast), the risk columns computed there by the same pandas functions
as on one machine, the rank over the whole population by Spark, the reasons (exact SHAP values, models/treeshap.py)
for the customers of the written list only, and the list written as Parquet atomically (a temporary folder renamed
into place when complete).

Orchestration only: features come from `features`, prediction, reasons and risk columns from `models`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pandas as pd

from features.build import FEATURE_SPECS
from models.artifact import ChurnModel
from models.explain import reason_texts, top_reasons
from models.risk import CONTEXT_FEATURES, RISK_LIST_COLUMNS, RiskParams, assemble_risk_list

if TYPE_CHECKING:
    from pyspark.broadcast import Broadcast
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

LAST_BAD = ("last_bad_kind", "last_bad_known_at")
SPARK_TYPES = {"float64": "double", "int64": "bigint", "boolean": "boolean", "string": "string"}
PANDAS_TYPES = {"double": "float64", "bigint": "Int64", "boolean": "boolean", "string": "object", "timestamp_ntz": None}


REASONS = ("reason_1", "reason_2", "reason_3")
RISK_COLUMNS = tuple(column for column in RISK_LIST_COLUMNS if column not in REASONS)


def risk_list_types() -> dict[str, str]:
    """Spark SQL type of every risk column but the reasons (`rank` is added after the per-partition work, reasons
    only for the written list); times are naive UTC (timestamp_ntz), as the contract and the one-machine list hold
    them."""
    feature_types = {spec.name: SPARK_TYPES[spec.dtype] for spec in FEATURE_SPECS}
    types = {
        "customer_id": "string",
        "churn_probability": "double",
        "risk_tier": "string",
        "value_at_risk": "double",
        "expected_future_value": "double",
        "last_order_at": "timestamp_ntz",
        "last_bad_experience": "string",
        "last_bad_experience_at": "timestamp_ntz",
        "last_bad_experience_days_ago": "double",
        "open_tickets": feature_types["tickets_open"],
        "suggested_action": "string",
        **{name: feature_types[name] for name in CONTEXT_FEATURES},
    }
    return {column: types[column] for column in RISK_COLUMNS if column != "rank"}


def shipped(session: SparkSession, model: ChurnModel) -> Broadcast[ChurnModel]:
    """The model sent to the executors once, for the prediction and the reasons."""
    return session.sparkContext.broadcast(model)


def risk_rows(
    features: DataFrame, model: Broadcast[ChurnModel], as_of: pd.Timestamp, horizon_days: int, params: RiskParams
) -> DataFrame:
    """Per customer of `features` (customer_id, the model's features and last_bad_kind, last_bad_known_at), the
    risk list's columns but the reasons, computed partition by partition; no rank yet (`ranked`)."""
    types = risk_list_types()
    schema = ", ".join(f"{name} {kind}" for name, kind in types.items())

    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        scorer = model.value
        for batch in batches:
            if batch.empty:
                continue
            rows = batch.set_index("customer_id")
            last_bad = rows[list(LAST_BAD)]
            frame = rows.drop(columns=list(LAST_BAD))
            risk = assemble_risk_list(frame, scorer.predict(frame), last_bad, as_of, horizon_days, params)
            yield _typed(risk.drop(columns="rank"), types)

    return features.mapInPandas(score, schema)  # type: ignore[arg-type]


def reasons_of(features: DataFrame, customers: DataFrame, model: Broadcast[ChurnModel]) -> DataFrame:
    """customer_id and reason_1..3 for the customers in `customers` only (a semi-join on `features`, as above):
    exact SHAP values cost about as much as twenty predictions, so only the written list is explained, as on one
    machine (`pipelines.stages.score.explain`)."""
    chosen = features.join(customers.select("customer_id"), on="customer_id", how="left_semi")
    schema = ", ".join(f"{name} string" for name in ("customer_id", *REASONS))

    def explain(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        scorer = model.value
        for batch in batches:
            if batch.empty:
                continue
            rows = batch.set_index("customer_id")
            frame = rows.drop(columns=list(LAST_BAD))
            texts = reason_texts(top_reasons(scorer.contributions(frame), frame), frame, rows["last_bad_kind"])
            yield texts[list(REASONS)].rename_axis("customer_id").reset_index()

    return chosen.mapInPandas(explain, schema)  # type: ignore[arg-type]


def with_reasons_of(written: DataFrame, features: DataFrame, model: Broadcast[ChurnModel]) -> DataFrame:
    """The written list with its reasons, in rank order, columns as the risk list has them."""
    explained = written.join(reasons_of(features, written, model), on="customer_id", how="left")
    return explained.select(*RISK_LIST_COLUMNS).orderBy("rank")


def ranked(risk: DataFrame) -> DataFrame:
    """`rank` over the whole population: by value at risk, then probability (highest first), then customer id, as
    `assemble_risk_list` ranks on one machine. The ordering is one global sort (one partition at the end)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    order = Window.orderBy(F.desc("value_at_risk"), F.desc("churn_probability"), F.asc("customer_id"))
    with_rank = risk.withColumn("rank", F.row_number().over(order).cast("bigint"))
    return with_rank.select(*RISK_COLUMNS)


def filtered(
    risk: DataFrame, bad_experience_within_days: int | None, min_probability: float, top_k: int | None
) -> DataFrame:
    """`models.risk.filter_risk_list` on Spark: the minimum probability, a bad experience within whole days, then
    the top k by rank; ranks stay those of the whole population."""
    from pyspark.sql import functions as F

    kept = risk.filter(F.col("churn_probability") >= min_probability)
    if bad_experience_within_days is not None:
        kept = kept.filter(F.floor(F.col("last_bad_experience_days_ago")) <= bad_experience_within_days)
    kept = kept.orderBy("rank")
    return kept.limit(top_k) if top_k is not None else kept


def write_parquet_atomically(frame: DataFrame, location: str) -> None:
    """Write `frame` as a folder of Parquet parts at `location` (a path or any URI the session writes) so that
    readers see the old list or the new one, never part of one: written to a temporary sibling, then renamed into
    place. A rename is atomic on HDFS, ABFS (hierarchical namespace) and a local disk; on S3 (s3a://) it is a copy,
    so a reader may see a partial folder there for the length of the copy."""
    session: SparkSession = frame.sparkSession
    jvm = session._jvm
    hadoop = jvm.org.apache.hadoop.fs  # type: ignore[union-attr]
    target = hadoop.Path(location)
    fs = target.getFileSystem(session._jsc.hadoopConfiguration())
    token = uuid.uuid4().hex[:12]
    temporary = hadoop.Path(f"{location.rstrip('/')}.tmp-{token}")
    try:
        frame.write.mode("errorifexists").parquet(temporary.toString())
    except BaseException:
        fs.delete(temporary, True)
        raise
    old = hadoop.Path(f"{location.rstrip('/')}.old-{token}")
    had_old = fs.exists(target)
    if had_old and not fs.rename(target, old):
        fs.delete(temporary, True)
        raise OSError(f"could not move the previous risk list at {location} aside")
    if not fs.rename(temporary, target):
        if had_old:
            fs.rename(old, target)
        raise OSError(f"could not move the new risk list into place at {location}")
    if had_old:
        fs.delete(old, True)
    log.info("risk list written to %s", location)


def _typed(frame: pd.DataFrame, types: dict[str, str]) -> pd.DataFrame:
    """The columns as the Spark schema declares them (Arrow refuses a categorical tier or an object of bools)."""
    frame = frame[list(types)].copy()
    frame["risk_tier"] = frame["risk_tier"].astype(str)
    for column, kind in types.items():
        pandas_type = PANDAS_TYPES[kind]
        if pandas_type is not None and kind != "string":
            frame[column] = frame[column].astype(pandas_type)
    return frame
