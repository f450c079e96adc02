"""The `churn` command: one subcommand per pipeline stage, so a scheduler can run a stage without DVC.

Heavy libraries (Great Expectations, MLflow, LightGBM) are imported inside the commands that use them, which keeps
`churn --help` fast.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, cast

import typer

app = typer.Typer(
    help="Churn risk for an online shop: which customers are about to stop buying, why, and what they are worth.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ParamsOption = Annotated[Path, typer.Option("--params", help="The params file; each stage reads its own block.")]
EngineOption = Annotated[
    str | None,
    typer.Option("--engine", help="duckdb or spark (the `spark` block's session); default: params `engine`."),
]


@contextmanager
def refusals(what: str) -> Iterator[None]:
    """A user error (params, files, data that cannot be used) as one line on stderr and exit code 1."""
    try:
        yield
    except ValueError as error:
        typer.echo(f"{what}: {error}", err=True)
        raise typer.Exit(code=1) from None
    except OSError as error:  # a path that does not exist or cannot be read
        typer.echo(f"{what}: {error.filename or ''}: {error.strerror or error}", err=True)
        raise typer.Exit(code=1) from None
    except Exception as error:
        java_error = spark_out_of_memory(error)
        if java_error is None:
            raise
        typer.echo(
            f"{what}: Spark ran out of memory ({java_error}); give it more in params.yaml's spark.config "
            "(spark.driver.memory with a local master, spark.executor.memory on a cluster)",
            err=True,
        )
        raise typer.Exit(code=1) from None


def spark_out_of_memory(error: BaseException) -> str | None:
    """The Java error when `error` is Spark's JVM running out of memory (a setting to change, not a bug), else None."""
    try:
        from py4j.protocol import Py4JError, Py4JJavaError
    except ImportError:  # pyspark is an optional extra
        return None
    if not isinstance(error, Py4JJavaError):
        return None
    try:
        java_error = str(error.java_exception.toString())
    except Py4JError:  # the JVM is gone: nothing more to ask it
        return None
    return java_error if "OutOfMemoryError" in java_error else None


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    # Great Expectations, the BG/NBD baseline's libraries and Py4J (Spark) log their own set-up at INFO; only
    # warnings are news.
    for library in ("great_expectations", "arviz", "pymc", "pytensor", "py4j"):
        logging.getLogger(library).setLevel(logging.WARNING)


@app.command()
def generate(
    params: ParamsOption = Path("params.yaml"),
    out: Annotated[Path, typer.Option(help="Folder for the shop's tables (the default data source).")] = Path(
        "data/raw/synthetic"
    ),
    truth: Annotated[Path, typer.Option(help="Folder for the ground truth (latent state, injected dirt).")] = Path(
        "data/truth"
    ),
) -> None:
    """Generate the synthetic shop (block `generate`)."""
    from pipelines.stages import generate as stage

    with refusals("generate failed"):
        shop = stage.run(params, out, truth)
    for name, table in shop.tables.items():
        typer.echo(f"{name:>10}: {len(table):>10,} rows")
    typer.echo(f"tables in {out}, ground truth in {truth}")


@app.command()
def validate(
    params: ParamsOption = Path("params.yaml"),
    validated: Annotated[str, typer.Option(help="Folder for accepted rows (a path or file:// URI).")] = (
        "data/validated"
    ),
    quarantine: Annotated[
        str, typer.Option(help="Folder for rejected rows and the rules they broke (a path or file:// URI).")
    ] = "data/quarantine",
    report: Annotated[Path, typer.Option(help="Validation report (JSON).")] = Path("reports/validation.json"),
    report_md: Annotated[Path, typer.Option(help="Validation report (Markdown).")] = Path("reports/validation.md"),
    engine: EngineOption = None,
) -> None:
    """Validate the source named in block `data` against the contract (limits in block `validate`)."""
    from pipelines.stages import validate as stage

    with refusals("validation failed"):
        outputs = stage.ValidateOutputs.at(validated, quarantine, report, report_md)
        result = stage.run(params, outputs, engine)
    for table_report in result.reports:
        if table_report.present:
            typer.echo(
                f"{table_report.table:>10}: {table_report.accepted:>10,} accepted, "
                f"{table_report.quarantined:>7,} quarantined ({table_report.quarantined_share:.2%})"
            )
        else:
            typer.echo(f"{table_report.table:>10}: absent")
    typer.echo(f"report: {report_md}; quarantined rows: {quarantine}")


@app.command()
def features(
    params: ParamsOption = Path("params.yaml"),
    validated: Annotated[
        str, typer.Option(help="Folder of validated tables; on Spark any URI it reads (s3a://, abfss://).")
    ] = "data/validated",
    validation_report: Annotated[Path, typer.Option(help="Validation report (gives the data's as-of time).")] = Path(
        "reports/validation.json"
    ),
    out: Annotated[
        str, typer.Option(help="Feature table (Parquet; a path or file:// URI: training reads it on one node).")
    ] = "data/features/features.parquet",
    dictionary: Annotated[Path, typer.Option(help="Feature dictionary (CSV).")] = Path(
        "data/features/feature_dictionary.csv"
    ),
    dictionary_md: Annotated[Path, typer.Option(help="Feature dictionary (Markdown).")] = Path(
        "reports/feature_dictionary.md"
    ),
    summary: Annotated[Path, typer.Option(help="Rows and churn rate per cutoff (JSON).")] = Path(
        "reports/features.json"
    ),
    engine: EngineOption = None,
) -> None:
    """Point-in-time features and churn labels at every cutoff (block `features`)."""
    from pipelines.stages import features as stage

    with refusals("features failed"):
        outputs = stage.FeatureOutputs.at(out, dictionary, dictionary_md, summary)
        result = stage.run(params, validated, validation_report, outputs, engine)
    churn_rate = "no labelled cutoff" if result["churn_rate"] is None else f"churn rate {result['churn_rate']:.1%}"
    typer.echo(
        f"{result['cutoffs']} cutoffs ({result['labelled_cutoffs']} with labels), {result['rows']:,} rows; "
        f"{churn_rate} over the labelled rows. Features in {out}, dictionary in {dictionary_md}"
    )
    groups = cast(dict[str, dict[str, list[str]]], result["feature_groups"])
    typer.echo(
        "feature groups (features the data provides): "
        + ", ".join(
            f"{name} {len(g['available'])}/{len(g['available']) + len(g['missing'])}" for name, g in groups.items()
        )
    )


@app.command()
def train(
    params: ParamsOption = Path("params.yaml"),
    features: Annotated[Path, typer.Option(help="Feature table (Parquet) from `churn features`.")] = Path(
        "data/features/features.parquet"
    ),
    dictionary: Annotated[Path, typer.Option(help="Feature dictionary (CSV): which features the data provides.")] = (
        Path("data/features/feature_dictionary.csv")
    ),
    validation_report: Annotated[Path, typer.Option(help="Validation report (gives the data's as-of time).")] = Path(
        "reports/validation.json"
    ),
    backtest: Annotated[Path, typer.Option(help="Folder for the model deployed at the test cutoff.")] = Path(
        "data/models/backtest"
    ),
    current: Annotated[Path, typer.Option(help="Folder for the model deployed at the as-of time (scores today).")] = (
        Path("data/models/current")
    ),
) -> None:
    """Fit the LightGBM recipe twice: at the test cutoff (for evaluation) and at the as-of time (block `train`)."""
    from pipelines.stages import train as stage

    with refusals("training failed"):
        summary = stage.run(params, features, dictionary, validation_report, stage.TrainOutputs(backtest, current))
    for name in ("backtest", "current"):
        model = summary[name]
        assert isinstance(model, dict)
        typer.echo(
            f"{name:>8}: deployed at {model['deploy_at'][:10]}, {model['train_rows']:,} training rows, "
            f"{model['best_iteration']} rounds, {model['calibration']} calibration"
        )
    if summary["data_warning"]:
        typer.echo(f"WARNING: {summary['data_warning']}", err=True)


@app.command()
def evaluate(
    params: ParamsOption = Path("params.yaml"),
    features: Annotated[Path, typer.Option(help="Feature table (Parquet).")] = Path("data/features/features.parquet"),
    backtest: Annotated[Path, typer.Option(help="The model deployed at the test cutoff.")] = Path(
        "data/models/backtest"
    ),
    current: Annotated[Path, typer.Option(help="The model that scores today (logged and registered).")] = Path(
        "data/models/current"
    ),
    truth: Annotated[Path, typer.Option(help="Ground truth of the synthetic shop (for the oracle).")] = Path(
        "data/truth"
    ),
    validated: Annotated[
        Path, typer.Option(help="Validated tables (for the synthetic shop's observable oracle).")
    ] = Path("data/validated"),
    metrics: Annotated[Path, typer.Option(help="Headline metrics (JSON, DVC metrics).")] = Path("reports/metrics.json"),
    evaluation: Annotated[Path, typer.Option(help="Every metric in full (JSON, not a DVC metric).")] = Path(
        "reports/evaluation.json"
    ),
    plots: Annotated[Path, typer.Option(help="Folder for plot data (CSV, DVC plots).")] = Path("reports/plots"),
    figures: Annotated[Path, typer.Option(help="Folder for images (importance, SHAP).")] = Path("reports/figures"),
    track: Annotated[bool, typer.Option(help="Log the run to MLflow and register the current model.")] = True,
) -> None:
    """Out-of-time evaluation on the test cutoff against baselines; logs to MLflow (blocks `evaluate`, `mlflow`)."""
    from pipelines.stages import evaluate as stage

    outputs = stage.EvaluateOutputs(metrics, evaluation, plots, figures)
    with refusals("evaluation failed"):
        result = stage.run(params, features, (backtest, current), truth, outputs, track=track, validated_dir=validated)
    typer.echo(f"test cutoff {result['test_cutoff']}: ROC-AUC, PR-AUC, Brier, ECE")
    for method, values in result["overall"].items():
        typer.echo(
            f"{method:>17}: {values['roc_auc']:.4f}  {values['pr_auc']:.4f}  "
            f"{values.get('brier', float('nan')):.4f}  {values.get('ece', float('nan')):.4f}"
        )
    for method, reason in result["skipped"].items():
        typer.echo(f"{method:>17}: skipped ({reason})")
    if "bootstrap" in result:
        intervals = result["bootstrap"]
        typer.echo(f"{intervals['level']:.0%} bootstrap intervals ({intervals['resamples']} paired resamples):")
        for method, (low, high) in intervals["roc_auc"].items():
            gain = intervals["gain_over"].get(method)
            versus = "" if gain is None else f"; {intervals['reference']} gains [{gain[0]:+.4f}, {gain[1]:+.4f}]"
            typer.echo(f"{method:>17}: ROC-AUC [{low:.4f}, {high:.4f}]{versus}")
    comparison = result["comparison"]
    intervals = result.get("bootstrap", {}).get("gap_closed", {})
    for oracle in ("oracle", "observable_oracle"):
        if comparison.get(f"{oracle}_gap_closed") is not None:
            interval = intervals.get(oracle)
            within = "" if interval is None else f" [{interval[0]:.0%}, {interval[1]:.0%}]"
            typer.echo(
                f"share of the gap from {comparison['best_baseline']} to the {oracle.replace('_', ' ')} "
                f"that the model closes: {comparison[f'{oracle}_gap_closed']:.0%}{within}"
            )
    typer.echo(f"headline metrics in {metrics}, all of them in {evaluation}, plots in {plots}, figures in {figures}")
    if result.get("data_warning"):
        typer.echo(f"WARNING: {result['data_warning']}", err=True)


@app.command()
def score(
    params: ParamsOption = Path("params.yaml"),
    model: Annotated[
        str, typer.Option(help="A model folder, or an MLflow model URI such as models:/churn-files-synthetic@champion.")
    ] = "data/models/current",
    validated: Annotated[
        str, typer.Option(help="Folder of validated tables; on Spark any URI it reads (s3a://, abfss://).")
    ] = "data/validated",
    validation_report: Annotated[Path, typer.Option(help="Validation report (gives the data's export time).")] = Path(
        "reports/validation.json"
    ),
    as_of: Annotated[
        str | None,
        typer.Option(
            help="Score as of this time (ISO). Default: params score.as_of, else the end of the day of "
            "the data's latest event."
        ),
    ] = None,
    bad_experience_within: Annotated[
        int | None, typer.Option(help="Only customers with a bad experience in the last N days.")
    ] = None,
    min_probability: Annotated[float | None, typer.Option(help="Only customers at least this likely to churn.")] = None,
    top_k: Annotated[int | None, typer.Option(help="Only the k customers with the most value at risk.")] = None,
    out: Annotated[
        str, typer.Option(help="Risk list (Parquet); on Spark a folder of parts at a path or URI (s3a://, abfss://).")
    ] = "data/risk/risk_list.parquet",
    out_csv: Annotated[Path, typer.Option(help="Risk list (CSV).")] = Path("data/risk/risk_list.csv"),
    report: Annotated[Path, typer.Option(help="Scoring report (JSON).")] = Path("reports/scoring.json"),
    report_md: Annotated[Path, typer.Option(help="Scoring report (Markdown).")] = Path("reports/scoring.md"),
    force: Annotated[
        bool, typer.Option(help="Score with a model trained on other data or too old anyway (the report says so).")
    ] = False,
    engine: EngineOption = None,
) -> None:
    """Write today's risk list: churn probability, tier, value at risk, reasons and a suggested action per customer
    (block `score`). Refuses, leaving the previous list untouched, when the model or data do not fit."""
    from pipelines.stages import score as stage

    outputs = stage.ScoreOutputs(out, out_csv, report, report_md)
    filters = stage.Filters(bad_experience_within, min_probability, top_k)
    with refusals("scoring refused"):  # ScoringRefused, ModelFileError, bad params, missing files
        result = stage.run(params, validated, validation_report, model, outputs, as_of, filters, force, engine)
    tiers = ", ".join(f"{tier} {values['customers']:,}" for tier, values in result["tiers"].items())
    typer.echo(
        f"as of {result['as_of']}: {result['customers_scored']:,} customers scored ({tiers}); "
        f"{result['customers_written']:,} in {out}; value at risk {result['value_at_risk']:,.0f}"
    )
    if result["model"].get("data_warning"):
        typer.echo(f"WARNING: {result['model']['data_warning']}", err=True)
    if result["drift_warnings"]:
        typer.echo(f"drift warning: {', '.join(result['drift_warnings'])} (see {report_md})")
    for misfit in result["model"]["forced_past"]:
        typer.echo(f"scored with --force although {misfit}")


@app.command()
def impact(
    params: ParamsOption = Path("params.yaml"),
    validated: Annotated[Path, typer.Option(help="Folder of validated tables.")] = Path("data/validated"),
    validation_report: Annotated[Path, typer.Option(help="Validation report (gives the data's export time).")] = Path(
        "reports/validation.json"
    ),
    truth: Annotated[Path, typer.Option(help="Ground truth of the synthetic shop (true effects, if there).")] = Path(
        "data/truth"
    ),
    metrics: Annotated[Path, typer.Option(help="Headline numbers (JSON, DVC metrics).")] = Path("reports/impact.json"),
    report: Annotated[Path, typer.Option(help="Full impact report (JSON).")] = Path("reports/impact_detail.json"),
    report_md: Annotated[Path, typer.Option(help="Impact report (Markdown).")] = Path("reports/impact.md"),
    figures: Annotated[Path, typer.Option(help="Folder for the chart (impact.png).")] = Path("reports/figures"),
    track: Annotated[bool, typer.Option(help="Log the analysis to MLflow as its own run.")] = True,
) -> None:
    """What each kind of bad experience costs a month and what fast complaint resolution wins back (blocks
    `impact`, `features`, `mlflow`)."""
    from pipelines.stages import impact as stage

    outputs = stage.ImpactOutputs(metrics, report, report_md, figures)
    with refusals("impact failed"):
        result = stage.run(params, validated, validation_report, truth, outputs, track=track)
    typer.echo(f"{result['orders_analysed']:,} orders, {result['horizon_days']}-day follow-up; ranked by revenue lost:")
    for kind in result["ranking"]:
        entry = result["kinds"][kind]
        low, high = entry["ci"]
        typer.echo(
            f"{kind:>22}: effect {100 * entry['att']:+.1f} pp [{100 * low:+.1f}, {100 * high:+.1f}], unadjusted "
            f"{100 * entry['unadjusted']:+.1f} pp; {entry['money']['revenue_per_month']:,.0f} lost a month"
        )
    recovery = result["recovery"]
    if recovery.get("status") == "estimated":
        typer.echo(
            f"{'fast_recovery':>22}: effect {100 * recovery['att']:+.1f} pp; "
            f"{recovery['money_now']['revenue_per_month']:,.0f} won back a month, "
            f"{recovery['money_if_all_fast']['revenue_per_month']:,.0f} more if every complaint were resolved fast"
        )
    unavailable = [kind for kind, entry in result["kinds"].items() if entry.get("status") != "estimated"]
    if unavailable:
        typer.echo(f"not shown by this data: {', '.join(unavailable)}")
    if "truth" in result:
        covered = sum(truth["covered"] for truth in result["truth"].values())
        typer.echo(f"synthetic truth covered by {covered} of {len(result['truth'])} intervals")
    typer.echo(f"headline in {metrics}, full report in {report} and {report_md}, chart in {figures}")


@app.command()
def inspect(
    path: Annotated[Path, typer.Argument(help="An export file (.csv, .parquet) or a folder of them.")],
) -> None:
    """Read a sample of each file and print the `data` block of params.yaml that reads it: encoding, delimiter,
    number and date conventions, the column mapping onto the contract, and warnings about ids. Exits 1 when a
    file cannot be read right by any settings, saying why."""
    import yaml

    from pipelines.sources.inspect import inspect_path, proposed_data_block

    with refusals("inspect failed"):
        inspections = inspect_path(path)
    for inspection in inspections:
        typer.echo(f"# {inspection.path}: {inspection.table or 'no contract table'}")
        for column, reading in inspection.dates.items():
            typer.echo(f"#   dates in {column}: {reading}")
        for warning in inspection.warnings:
            typer.echo(f"#   warning: {warning}")
        for problem in inspection.problems:
            typer.echo(f"#   cannot propose: {problem}")
    folder = path if path.is_dir() else path.parent
    block = {"data": proposed_data_block(inspections, folder)}
    typer.echo(yaml.safe_dump(block, sort_keys=False, allow_unicode=True, default_flow_style=False), nl=False)
    if any(inspection.problems for inspection in inspections):
        raise typer.Exit(code=1)


@app.command()
def contract() -> None:
    """Print the data contract as a Markdown table."""
    from features.contract import contract_markdown

    typer.echo(contract_markdown(), nl=False)


if __name__ == "__main__":  # spark-submit runs a .py file: spark-submit pipelines/cli.py features --engine spark ...
    app()
