"""Stage `features`: point-in-time features and labels at every cutoff, from the validated tables."""

from __future__ import annotations

import json
import logging
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from features.build import (
    LABEL,
    feature_dictionary,
    feature_groups,
    feature_table,
    features_at,
    release_cutoff,
    shared_tables,
)
from features.checks import check_feature_invariants
from features.cutoffs import FeatureParams, check_label_windows, cutoff_schedule, label_observed
from features.inputs import FeatureInputs, read_validated
from pipelines.engine import connect, drop_in_memory_tables, engine_settings, input_location, local_path
from pipelines.params import block, load_params
from pipelines.validation.outcome import validated_as_of

log = logging.getLogger(__name__)

STRATEGIES = ("per_cutoff", "one_query")


@dataclass(frozen=True)
class FeatureOutputs:
    features: Path
    dictionary_csv: Path
    dictionary_markdown: Path
    summary: Path

    @classmethod
    def at(cls, features: str, dictionary_csv: Path, dictionary_markdown: Path, summary: Path) -> FeatureOutputs:
        """The outputs where the command line puts them: the feature table as a local path or file:// URI (training
        reads it on one node)."""
        return cls(local_path(features, "--out"), dictionary_csv, dictionary_markdown, summary)


def run(
    params_path: Path,
    validated_dir: Path | str,
    validation_report: Path,
    outputs: FeatureOutputs,
    engine: str | None = None,
) -> dict[str, object]:
    """Build and write the feature table; returns the summary also written to `outputs.summary`. `engine` overrides
    params' `engine` (duckdb or spark)."""
    params = load_params(params_path)
    engine_name, spark_settings = engine_settings(params, engine)
    block_values = dict(block(params, "features"))
    strategy = block_values.pop("strategy", "per_cutoff")
    feature_params = FeatureParams.from_dict(block_values)
    as_of = validated_as_of(validation_report)
    con = connect(engine_name, spark_settings)
    inputs = read_validated(con, input_location(con, engine_name, validated_dir, "--validated"), as_of)
    cutoffs = cutoff_schedule(pd.Timestamp(feature_params.first_cutoff), feature_params.every_days, as_of)
    first_order_at = pd.Timestamp(inputs.orders.ordered_at.min().to_pyarrow().as_py())
    check_label_windows(cutoffs, feature_params.horizon_days, as_of, first_order_at)
    log.info("features at %d cutoffs, %s to %s", len(cutoffs), cutoffs[0].date(), cutoffs[-1].date())
    write_features(inputs, cutoffs, feature_params, outputs.features, strategy)
    if strategy == "one_query":  # per_cutoff checked each cutoff's rows before writing them
        check_written_features(outputs.features, cutoffs)
    dictionary = write_dictionary(inputs, outputs)
    summary = {
        **summary_json(summarise(outputs.features, feature_params, as_of)),
        "feature_groups": feature_groups(set(dictionary.loc[dictionary["available"], "name"])),
    }
    outputs.summary.parent.mkdir(parents=True, exist_ok=True)
    outputs.summary.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def write_features(
    inputs: FeatureInputs, cutoffs: list[pd.Timestamp], params: FeatureParams, path: Path, strategy: str
) -> None:
    """One Parquet file with every (customer, cutoff) row, written by cutoff (with progress) or as one query. By
    cutoff, each cutoff's rows are checked (`check_feature_invariants`) before they are written, so the file is not
    read again to check it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown features.strategy {strategy!r}; choose one of {STRATEGIES}")
    if strategy == "one_query":
        feature_table(inputs, cutoffs, params, shared_tables(inputs, params, cache=True)).to_parquet(path)
        return
    # Computed once here, read by every cutoff's query. The cutoffs come in time order, so on one machine the basket
    # runs along them in memory, and each cutoff's order summary is computed in memory too; on Spark the lines and
    # the orders stay on the cluster.
    one_machine = inputs.orders.get_backend().name == "duckdb"
    shared = shared_tables(inputs, params, cache=True, running_basket=one_machine, in_memory_orders=one_machine)
    writer: pq.ParquetWriter | None = None
    try:
        # A cutoff's rows are encoded and written on a thread of their own while the next cutoff is computed
        # (Arrow's writer releases the GIL): the next cutoff's BG/NBD fit holds one core, and the writing (about a
        # CPU second per cutoff at 1M customers) takes the other. One cutoff at a time is in flight.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="features-writer") as background:
            written: Future[None] | None = None
            for cutoff in tqdm(cutoffs, desc="cutoffs", unit="cutoff"):
                rows = features_at(inputs, cutoff, params, shared)
                batch: pa.Table = rows.to_pyarrow()
                # What only this cutoff read goes now, not when Python collects it: the next cutoff needs the memory.
                release_cutoff(rows, shared)
                drop_in_memory_tables(rows)
                check_feature_invariants(batch)
                if writer is None:
                    writer = pq.ParquetWriter(path, batch.schema)
                if written is not None:
                    written.result()
                written = background.submit(writer.write_table, batch)
            if written is not None:
                written.result()
    finally:
        if writer is not None:
            writer.close()


def check_written_features(path: Path, cutoffs: list[pd.Timestamp]) -> None:
    """The invariants, one cutoff at a time: each holds within a cutoff (the cutoff is part of the key), and a
    large table is never read whole."""
    for cutoff in cutoffs:
        check_feature_invariants(pq.read_table(path, filters=[("cutoff", "=", cutoff.to_pydatetime())]))


def summarise(path: Path, params: FeatureParams, as_of: pd.Timestamp) -> pd.DataFrame:
    table = pd.read_parquet(path, columns=["cutoff", LABEL])
    summary = table.groupby("cutoff").agg(customers=(LABEL, "size"), churn_rate=(LABEL, "mean")).reset_index()
    summary["label_observed"] = [label_observed(c, params.horizon_days, as_of) for c in summary["cutoff"]]
    return summary


def summary_json(summary: pd.DataFrame) -> dict[str, object]:
    labelled = summary[summary["label_observed"]]
    return {
        "cutoffs": len(summary),
        "labelled_cutoffs": len(labelled),
        "rows": int(summary["customers"].sum()),
        "labelled_rows": int(labelled["customers"].sum()),
        "churn_rate": round(
            float((labelled["churn_rate"] * labelled["customers"]).sum() / labelled["customers"].sum()), 6
        )
        if len(labelled)
        else None,
        "per_cutoff": [
            {
                "cutoff": row.cutoff.date().isoformat(),
                "customers": int(row.customers),
                "churn_rate": None if pd.isna(row.churn_rate) else round(float(row.churn_rate), 6),
            }
            for row in summary.itertuples()
        ],
    }


def write_dictionary(inputs: FeatureInputs, outputs: FeatureOutputs) -> pd.DataFrame:
    dictionary = feature_dictionary(inputs)
    outputs.dictionary_csv.parent.mkdir(parents=True, exist_ok=True)
    dictionary.to_csv(outputs.dictionary_csv, index=False)
    outputs.dictionary_markdown.parent.mkdir(parents=True, exist_ok=True)
    outputs.dictionary_markdown.write_text(dictionary_markdown(dictionary))
    return dictionary


def dictionary_markdown(dictionary: pd.DataFrame) -> str:
    lines = [
        "# Feature dictionary",
        "",
        "Generated from `features/` by the `features` stage. Every feature at cutoff t sees only events known "
        "before t. Unavailable features (their source is absent) are null in the feature table. An **export-time "
        "snapshot** reads a value as the export gives it (an order's status, a loyalty flag, a country) without the "
        "time it changed, so an earlier cutoff sees it as if it had always held: a leak the model uses only where "
        "`train.allowed_snapshots` names it.",
        "",
        "| feature | group | unit | window | definition | available |",
        "|---|---|---|---|---|---|",
    ]
    for row in dictionary.itertuples():
        available = "yes" if getattr(row, "available", True) else f"no (needs {row.needs})"
        snapshot = getattr(row, "snapshot", "")
        if available == "yes" and isinstance(snapshot, str) and snapshot:
            available = f"yes, **export-time snapshot** of {snapshot}"
        lines.append(f"| `{row.name}` | {row.group} | {row.unit} | {row.window} | {row.definition} | {available} |")
    return "\n".join(lines) + "\n"
