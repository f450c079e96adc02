"""The contract's Great Expectations suite run through GX's Spark datasource (`engine: spark`).

The same suite (`pipelines.validation.suite`), on the same checked rows with the same lookup columns, so the same
rows end in quarantine with the same rules: only where the expectations are evaluated changes. A Spark DataFrame
has no index, so each row carries its position in a column GX reports the failing rows by
(`unexpected_index_column_names`).

What runs before the suite (reading the export, parsing text cells under the `data.csv` conventions, types,
duplicates, the lookups of referenced tables) stays pandas on the driver: see README "Scaling out".
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from pipelines.validation.run import SuiteRunner, broken_rows, gx_context

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

POSITION = "__position"
DATASOURCE = "contract_spark"
COLUMN_FIELDS = ("column", "column_A", "column_B")


def spark_name(column: str) -> str:
    """A column name Spark takes as one name: a dot would read as a struct field (`__orders.ordered_at`, the
    lookup of a referenced table's column), and GX would find nothing to check."""
    return column.replace(".", "__dot__")


def with_spark_names(suite: Any) -> Any:
    """The suite with its columns named as `spark_name` names them in the Spark frame."""
    import great_expectations as gx

    renamed = gx.ExpectationSuite(name=f"{suite.name}.spark")
    for expectation in suite.expectations:
        names = {
            field: spark_name(getattr(expectation, field))
            for field in COLUMN_FIELDS
            if isinstance(getattr(expectation, field, None), str)
        }
        renamed.add_expectation(expectation.copy(update={**names, "id": None}))
    return renamed


def spark_suite_runner(session: SparkSession) -> SuiteRunner:
    """A suite runner for `validate_tables` that evaluates each table's suite on `session`."""
    context = gx_context()

    def run(frame: pd.DataFrame, table_name: str, suite: Any) -> dict[str, np.ndarray]:
        # A datasource keeps every batch it loaded for as long as it exists (as on pandas): one per table, deleted
        # after it, so that the JVM does not hold a validated table (at 10M orders, the orders) beside the next.
        # Not persisted: the frame is the Arrow batches the driver handed over, already in the JVM's memory; GX's
        # cached copy would hold the table twice.
        datasource = context.data_sources.add_spark(f"{DATASOURCE}.{table_name}.{uuid.uuid4().hex[:8]}", persist=False)
        try:
            batch = (
                datasource.add_dataframe_asset(table_name)
                .add_batch_definition_whole_dataframe("all rows")
                .get_batch(batch_parameters={"dataframe": to_spark_frame(session, frame)})
            )
            result = batch.validate(
                with_spark_names(suite),
                result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [POSITION]},
            )
        finally:
            context.data_sources.delete(datasource.name)
        return broken_rows(result, table_name, index_column=POSITION)

    return run


def to_spark_frame(session: SparkSession, frame: pd.DataFrame) -> DataFrame:
    """`frame` with its columns named by `spark_name` and its index labels in POSITION, handed to Spark as Arrow: the
    Arrow table shares the frame's buffers where it can (Arrow-backed text, numbers), and the names and the position
    are added on the Arrow side, so the driver makes no pandas copy of the table (`assign` and `rename` would each
    copy it whole). A column of nothing but nulls (an optional column the source lacks) becomes a string column,
    since Spark has no type to give it."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.rename_columns([spark_name(str(name)) for name in table.column_names])
    table = table.append_column(POSITION, pa.array(frame.index.to_numpy()))
    fields = [pa.field(f.name, pa.string()) if pa.types.is_null(f.type) else f for f in table.schema]
    return session.createDataFrame(table.cast(pa.schema(fields)))
