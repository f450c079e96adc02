"""Stage `score`: today's risk list. Features at `as_of` by the training feature code, the saved model and its
calibration, reasons from SHAP, suggested actions, a scoring report with drift; everything written all-or-nothing.

Every refusal (model file, schema, as-of time, a model trained on other data or too old, empty population) happens
before anything is written, so the previous risk list stays as it was. `force` scores with a model trained on other
data or too old anyway, and the report says so.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import ibis
import pandas as pd
from tqdm import tqdm

from features.build import FEATURE_SPECS, SharedTables, feature_dictionary, features_at, shared_tables
from features.common import join_customers
from features.cutoffs import FeatureParams
from features.inputs import FeatureInputs, read_validated
from features.satisfaction import bad_events, last_bad_experience
from models.artifact import MLFLOW_ARTIFACT, ChurnModel, load_model
from models.drift import population_stability
from models.explain import reason_texts, top_reasons
from models.identity import other_data, too_old
from models.risk import RiskParams, assemble_risk_list, filter_risk_list, for_people, with_reasons
from models.scoring_report import report_markdown, scoring_report
from pipelines.atomic import write_all_or_nothing
from pipelines.engine import connect, engine_settings, input_location, output_location
from pipelines.params import block, load_params
from pipelines.validation.outcome import validated_as_of

log = logging.getLogger(__name__)

MLFLOW_SCHEMES = ("models:/", "runs:/")
EXPLAIN_CHUNK = 20_000
# Event times a validated table holds; the latest of them is the data's end as far as events go.
EVENT_TIMES = {
    "orders": ("ordered_at", "delivered_at"),
    "reviews": ("reviewed_at",),
    "tickets": ("opened_at", "resolved_at"),
    "returns": ("returned_at",),
}


class ScoringRefused(ValueError):
    """The inputs cannot give a trustworthy risk list; nothing was written."""


@dataclass(frozen=True)
class ScoreOutputs:
    risk_list: Path | str  # on Spark, any URI it writes
    risk_list_csv: Path
    report: Path
    report_markdown: Path


@dataclass(frozen=True)
class Filters:
    """Command-line overrides of the `score` block's filters (None: use the params)."""

    bad_experience_within_days: int | None = None
    min_probability: float | None = None
    top_k: int | None = None


def run(
    params_path: Path,
    validated_dir: Path | str,
    validation_report: Path,
    model_reference: str,
    outputs: ScoreOutputs,
    as_of: str | None = None,
    filters: Filters = Filters(),
    force: bool = False,
    engine: str | None = None,
) -> dict[str, Any]:
    params = load_params(params_path)
    engine_name, spark_settings = engine_settings(params, engine)
    risk_params = with_overrides(RiskParams.from_dict(block(params, "score")), as_of, filters)
    feature_block = dict(block(params, "features"))
    feature_block.pop("strategy", None)
    feature_params = FeatureParams.from_dict(feature_block)
    model = resolve_model(model_reference)
    exported_at = validated_as_of(validation_report)
    con = connect(engine_name, spark_settings)
    # Where the list goes is checked before any work: a missing data-lake connector fails now, not after scoring.
    outputs = replace(outputs, risk_list=output_location(con, engine_name, outputs.risk_list, "--out"))
    inputs = read_validated(con, input_location(con, engine_name, validated_dir, "--validated"), exported_at)
    # Another shop's model first: its training period and age say nothing about this data.
    data_params = block(params, "data")
    source = data_params.get("source", "files")
    other = other_data(model.training.get("data"), source, data_params.get("path"), known_customers(inputs))
    unless_forced(other, force)
    latest = latest_event_times(inputs)
    scoring_time = choose_as_of(risk_params.as_of, latest["event"], exported_at, model)
    stale = too_old(pd.Timestamp(model.training["deploy_at"]), scoring_time, risk_params.max_model_age_days)
    unless_forced(stale, force)
    overridden = [misfit for misfit in (other, stale) if misfit]
    inputs = inputs_like_training(inputs, model)
    log.info("scoring at %s with the model from %s", scoring_time, model_reference)
    spark_written = None
    if engine_name == "spark":
        features, risk, written, spark_written = spark_risk_list(
            con, inputs, scoring_time, feature_params, risk_params, model
        )
        matrix = model.matrix(features)
    else:
        features, matrix, risk, written = risk_list(inputs, scoring_time, feature_params, risk_params, model)
    freshness = {
        "as_of": scoring_time.isoformat(),
        "exported_at": exported_at.isoformat(),
        "latest_event_at": latest["event"].isoformat(),
        "latest_order_at": latest["order"].isoformat(),
        "days_since_latest_order": (scoring_time - latest["order"]).total_seconds() / 86_400,
    }
    data_warning = model.training.get("data_warning")
    if data_warning:  # trained on too little data (train.too_little_data: warn): every row says so
        written = written.assign(data_warning=data_warning)
    model_info = {
        "source": model_reference,
        "deploy_at": model.training["deploy_at"],
        "forced_past": overridden,
        "data_warning": data_warning,
    }
    psi = population_stability(model.training["feature_profile"], matrix)
    report = scoring_report(risk, written, psi, risk_params.psi_warning, freshness, model_info)
    for name in report["drift_warnings"]:
        log.warning("feature %s drifted from the training data: PSI %.3f", name, psi[name])
    if spark_written is not None:
        from pyspark.sql import functions as F

        from pipelines.spark_scoring import write_parquet_atomically

        if data_warning:
            spark_written = spark_written.withColumn("data_warning", F.lit(data_warning))
        # The list first (where the cluster writes it); the CSV and the reports only once it is in place.
        write_parquet_atomically(spark_written, str(outputs.risk_list))
        write_outputs(written, report, outputs, parquet=False)
    else:
        write_outputs(written, report, outputs)
    return report


def refuse_empty(count: int, as_of: pd.Timestamp, params: FeatureParams) -> None:
    if count == 0:
        raise ScoringRefused(
            f"empty population: no customer ordered in the {params.active_window_days} days before {as_of}"
        )
    log.info("%d customers in the population; predicting and explaining", count)


def risk_list(
    inputs: FeatureInputs, as_of: pd.Timestamp, params: FeatureParams, risk_params: RiskParams, model: ChurnModel
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """On one machine: the population's features and model input, the whole risk list (no reasons) and the written
    one (with)."""
    # The tables every feature reads, computed once (as the features stage does): the bad events also give the
    # list's last bad experience. One cutoff: no flags on every order line (`scoring_tables`).
    shared = scoring_tables(inputs, params, cache=True)
    features = scoring_features(inputs, as_of, params, shared)
    refuse_empty(len(features), as_of, params)
    events = as_frame(last_bad_experience(shared.events, as_of)).set_index("customer_id")
    # One model input for the prediction and the drift check.
    matrix = model.matrix(features)
    risk = assemble_risk_list(features, model.predict_matrix(matrix), events, as_of, params.horizon_days, risk_params)
    written = filter_risk_list(
        risk, risk_params.bad_experience_within_days, risk_params.min_probability, risk_params.top_k
    )
    written = with_reasons(written, explain(model, features.loc[written["customer_id"]], events["last_bad_kind"]))
    return features, matrix, risk, written


def spark_risk_list(
    con: ibis.BaseBackend,
    inputs: FeatureInputs,
    as_of: pd.Timestamp,
    params: FeatureParams,
    risk_params: RiskParams,
    model: ChurnModel,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, Any]:
    """On Spark: the same features (the same expressions), predicted and calibrated per partition with the model
    broadcast once, ranked over the whole population, filtered, then only the written customers explained (as on
    one machine); the written list stays a Spark DataFrame (to be written where the cluster writes), and comes back
    to the driver with the population's risk columns for the report and the CSV, as do the features for the drift
    check (PSI)."""
    from pipelines.engine import to_spark
    from pipelines.spark_scoring import LAST_BAD, filtered, ranked, risk_rows, shipped, with_reasons_of

    rows = join_customers(features_at(inputs, as_of, params), last_bad_experience(bad_events(inputs, params), as_of))
    frame = to_spark(con, rows).cache()
    features = pd.DataFrame(frame.drop(*LAST_BAD).toPandas()).set_index("customer_id")
    refuse_empty(len(features), as_of, params)
    broadcast = shipped(frame.sparkSession, model)
    risk_frame = ranked(risk_rows(frame, broadcast, as_of, params.horizon_days, risk_params)).cache()
    chosen = filtered(
        risk_frame, risk_params.bad_experience_within_days, risk_params.min_probability, risk_params.top_k
    )
    # Cached: the list is read twice (to the driver, then written), and SHAP should run once.
    spark_written = with_reasons_of(chosen, frame, broadcast).cache()
    risk = pd.DataFrame(risk_frame.toPandas())
    risk["risk_tier"] = pd.Categorical(risk["risk_tier"], categories=["low", "medium", "high"], ordered=True)
    written = pd.DataFrame(spark_written.toPandas()).astype({"risk_tier": risk["risk_tier"].dtype})
    return features, risk, written, spark_written


def explain(model: ChurnModel, features: pd.DataFrame, last_bad_kind: pd.Series) -> pd.DataFrame:
    """reason_1..3 in words for the customers of the written list only: exact SHAP values cost about as much as
    twenty predictions, so they are computed where someone will read them, in chunks with progress."""
    chunks = [features.iloc[start : start + EXPLAIN_CHUNK] for start in range(0, len(features), EXPLAIN_CHUNK)]
    reasons = [
        reason_texts(top_reasons(model.contributions(chunk), chunk), chunk, last_bad_kind)
        for chunk in tqdm(chunks, desc="reasons", unit="chunk", disable=len(chunks) < 2)
    ]
    return pd.concat(reasons) if reasons else pd.DataFrame(columns=[f"reason_{i + 1}" for i in range(3)])


def scoring_features(
    inputs: FeatureInputs, as_of: pd.Timestamp, params: FeatureParams, shared: SharedTables | None = None
) -> pd.DataFrame:
    """The population's features at as_of, by the same code that built the training rows; indexed by customer."""
    shared = scoring_tables(inputs, params) if shared is None else shared
    return as_frame(features_at(inputs, as_of, params, shared)).set_index("customer_id")


def scoring_tables(inputs: FeatureInputs, params: FeatureParams, cache: bool = False) -> SharedTables:
    """The shared tables for features at one time: without the order lines' flags, which serve many cutoffs
    (`features.build.shared_tables`); at 1M customers they were the largest part of the daily list's time."""
    return shared_tables(inputs, params, cache=cache, line_flags=False)


def as_frame(table: ibis.Table) -> pd.DataFrame:
    """The rows of `table` in pandas by way of Arrow, as the features stage writes the training rows. Not Ibis's
    `execute`, which makes a Python object of every value in a column holding a null: at 1M customers about 3 GiB
    more at the peak of scoring."""
    return table.to_pyarrow().to_pandas()


def with_overrides(params: RiskParams, as_of: str | None, filters: Filters) -> RiskParams:
    overrides: dict[str, Any] = {name: value for name, value in vars(filters).items() if value is not None}
    if as_of is not None:
        overrides["as_of"] = as_of
    return replace(params, **overrides)


def resolve_model(reference: str) -> ChurnModel:
    """A local model folder, or an MLflow model URI (models:/<name>@<alias>, runs:/...) whose scorer is fetched
    from the tracking store."""
    if not reference.startswith(MLFLOW_SCHEMES):
        return load_model(Path(reference))
    import mlflow

    from models.tracking_settings import tracking_uri

    mlflow.set_tracking_uri(tracking_uri())
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=reference))
    logged = mlflow.models.Model.load(str(local)).flavors["python_function"]["artifacts"]
    if MLFLOW_ARTIFACT not in logged:
        raise ScoringRefused(f"{reference} is not a churn-pipeline scorer: it has no {MLFLOW_ARTIFACT} artifact")
    return load_model(local / logged[MLFLOW_ARTIFACT]["path"])


def latest_event_times(inputs: FeatureInputs) -> dict[str, pd.Timestamp]:
    """The latest order and the latest event of any kind in the validated tables."""
    latest: dict[str, pd.Timestamp] = {}
    for name, columns in EVENT_TIMES.items():
        table = getattr(inputs, name)
        if table is None:
            continue
        values = table.aggregate(**{column: table[column].max() for column in columns}).execute().iloc[0]
        for column, value in values.items():
            if pd.notna(value):
                latest[f"{name}.{column}"] = pd.Timestamp(value)
    if "orders.ordered_at" not in latest:
        raise ScoringRefused("the orders table is empty")
    return {"order": latest["orders.ordered_at"], "event": max(latest.values())}


def choose_as_of(
    requested: str | None, latest_event: pd.Timestamp, exported_at: pd.Timestamp, model: ChurnModel
) -> pd.Timestamp:
    """The requested time, or the end of the latest event's day (capped at the export time), after the checks:
    not after the data's end, not before the model's training period."""
    if requested is None:
        as_of = min(latest_event.normalize() + pd.Timedelta(days=1), exported_at)
    else:
        as_of = pd.Timestamp(requested)
    if as_of > exported_at:
        raise ScoringRefused(
            f"as_of {as_of} is after the data's end (exported at {exported_at}): the orders after the export are "
            "unknown, and every customer would look like they had stopped buying"
        )
    training_start = pd.Timestamp(model.training["fitting_cutoffs"][0])
    if as_of < training_start:
        raise ScoringRefused(
            f"as_of {as_of} is before the model's training period (its first cutoff is {training_start.date()})"
        )
    return as_of


def unless_forced(misfit: str, force: bool) -> None:
    """Refuse for `misfit` (a model trained on other data, or too old), unless forced; '' is no misfit."""
    if misfit and not force:
        raise ScoringRefused(f"{misfit} (or --force to score anyway)")
    if misfit:
        log.warning("scoring anyway (--force): %s", misfit)


def known_customers(inputs: FeatureInputs) -> pd.Series:
    """Every customer id in the data: those with an order and those in the customers table."""
    tables = [inputs.orders, *([inputs.customers] if inputs.customers is not None else [])]
    ids = ibis.union(*(table.select("customer_id") for table in tables), distinct=True)
    return ids.execute()["customer_id"]


def inputs_like_training(inputs: FeatureInputs, model: ChurnModel) -> FeatureInputs:
    """The inputs with the feature sources the model was trained on, or a refusal when one is missing.

    A feature the data provides now but did not at training time was always missing for the model, so it is made
    missing here too (the availability is narrowed to the training data's)."""
    known = {spec.name for spec in FEATURE_SPECS}
    unknown = [name for name in model.model_input.features if name not in known]
    if unknown:
        raise ScoringRefused(f"model and feature schema mismatch: the model uses features this code does not build: "
                             f"{unknown}")  # fmt: skip
    dictionary = feature_dictionary(inputs).set_index("name")
    trained_with = set(model.training["available_features"])
    lacking = sorted(name for name in trained_with if not dictionary.loc[name, "available"])
    if lacking:
        needs = sorted({dictionary.loc[name, "needs"] for name in lacking})
        raise ScoringRefused(
            f"model and feature schema mismatch: the model was trained with {lacking}, but the data lacks their "
            f"sources ({'; '.join(needs)})"
        )
    needed = {need for spec in FEATURE_SPECS if spec.name in trained_with for need in spec.all_needs()}
    return replace(inputs, available=inputs.available & frozenset(needed | {"orders"}))


def write_outputs(written: pd.DataFrame, report: dict[str, Any], outputs: ScoreOutputs, parquet: bool = True) -> None:
    """Every output, all or nothing; without `parquet`, all but the list's Parquet (written by Spark)."""
    writers: dict[Path, Any] = {
        Path(outputs.risk_list): lambda path: written.to_parquet(path, index=False),
        outputs.risk_list_csv: lambda path: for_people(written).to_csv(path, index=False),
        outputs.report: lambda path: path.write_text(json.dumps(report, indent=2) + "\n"),
        outputs.report_markdown: lambda path: path.write_text(report_markdown(report)),
    }
    if not parquet:
        del writers[Path(outputs.risk_list)]
    write_all_or_nothing(writers)
