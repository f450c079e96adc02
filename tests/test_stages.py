"""The generate and validate stages on a small synthetic shop in tmp_path, through the `churn` command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import invoke, write_params
from typer.testing import CliRunner

from features.contract import TABLES
from pipelines.cli import app
from pipelines.stages.generate import TRUTH_DIRT
from pipelines.validation.run import RULES_COLUMN, SOURCE_ROW_COLUMN


def test_every_injected_dirty_row_is_quarantined_with_its_rule(shop: dict[str, Path]) -> None:
    dirt = pd.read_parquet(shop["truth"] / TRUTH_DIRT)
    assert set(dirt["table"]) == {table.name for table in TABLES}  # the synthetic shop dirties every table
    for table, expected in dirt.groupby("table"):
        quarantined = pd.read_parquet(shop["quarantine"] / f"{table}.parquet")
        rules = dict(zip(quarantined[SOURCE_ROW_COLUMN], quarantined[RULES_COLUMN].str.split("; "), strict=True))
        for row, rule in zip(expected["row"], expected["rule"], strict=True):
            assert rule in rules.get(row, []), f"{table} row {row} should break {rule}"


def test_only_dirty_rows_are_quarantined(shop: dict[str, Path]) -> None:
    dirt = pd.read_parquet(shop["truth"] / TRUTH_DIRT)
    for table, expected in dirt.groupby("table"):
        quarantined = pd.read_parquet(shop["quarantine"] / f"{table}.parquet")
        assert set(quarantined[SOURCE_ROW_COLUMN]) == set(expected["row"]), table


def test_rows_in_equal_accepted_plus_quarantined(shop: dict[str, Path]) -> None:
    report = json.loads(shop["report"].read_text())
    assert report["passed"] is True
    for name, table in report["tables"].items():
        raw = pd.read_parquet(shop["raw"] / f"{name}.parquet")
        validated = pd.read_parquet(shop["validated"] / f"{name}.parquet")
        quarantined = pd.read_parquet(shop["quarantine"] / f"{name}.parquet")
        assert table["rows_in"] == len(raw) == len(validated) + len(quarantined), name
        assert table["accepted"] == len(validated)


def test_markdown_report_lists_tables_and_rules(shop: dict[str, Path]) -> None:
    text = shop["report_md"].read_text()
    for name in ("customers", "orders", "reviews", "tickets", "returns"):
        assert f"| {name} |" in text
    assert "`orders.order_value.range`" in text


def test_validate_fails_over_the_quarantine_limit_and_keeps_the_rows(shop: dict[str, Path], tmp_path: Path) -> None:
    params = write_params(
        tmp_path / "params.yaml", data={"path": str(shop["raw"])}, validate={"max_quarantine_share": 0.001}
    )
    quarantine = tmp_path / "quarantine"
    validated = tmp_path / "v"
    validated.mkdir()
    (validated / "orders.parquet").write_bytes(b"an earlier run's accepted rows")
    result = CliRunner().invoke(
        app,
        ["validate", "--params", str(params), "--validated", str(validated), "--quarantine", str(quarantine),
         "--report", str(tmp_path / "r.json"), "--report-md", str(tmp_path / "r.md")],
    )  # fmt: skip
    assert result.exit_code == 1
    assert list(validated.iterdir()) == []  # nothing a later stage could take as valid
    assert "too much bad data (limit validate.max_quarantine_share = 0.1%)" in result.output
    assert "orders: 0.5% of" in result.output
    assert "orders.duplicate_row" in result.output or "orders.order_value.range" in result.output
    assert (quarantine / "orders.parquet").is_file()
    assert json.loads((tmp_path / "r.json").read_text())["passed"] is False


def test_unknown_source_is_rejected(tmp_path: Path) -> None:
    params = write_params(tmp_path / "params.yaml", data={"source": "ftp"})
    result = CliRunner().invoke(app, ["validate", "--params", str(params)])
    assert result.exit_code == 1
    assert "data.source = 'ftp': Input should be 'files', 'online_retail' or 'olist'" in result.output


def test_unknown_generate_param_is_rejected(tmp_path: Path) -> None:
    params = write_params(tmp_path / "params.yaml", generate={"n_custmers": 5})
    result = CliRunner().invoke(app, ["generate", "--params", str(params)])
    assert result.exit_code == 1
    assert "generate.n_custmers is not a param; did you mean generate.n_customers?" in result.output


def test_help_lists_stages_without_importing_heavy_libraries() -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from pipelines.cli import app\n"
        "out = CliRunner().invoke(app, ['--help']).output\n"
        "assert 'generate' in out and 'validate' in out, out\n"
        "heavy = [m for m in ('great_expectations', 'mlflow', 'lightgbm', 'sklearn', 'ibis') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_validate_does_not_load_duckdb(shop: dict[str, Path], tmp_path: Path) -> None:
    """Validation has no use for DuckDB. A module-level import of Ibis's DuckDB backend in `pipelines.engine`
    raised validate's peak at 1M customers from 7.7 to 9.5 GiB (benchmarks/README.md); the backend loads duckdb."""
    outputs = {"--validated": "validated", "--quarantine": "quarantine", "--report": "validation.json",
               "--report-md": "validation.md"}  # fmt: skip
    args = ["validate", "--params", str(shop["params"])]
    for option, name in outputs.items():
        args += [option, str(tmp_path / name)]
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from pipelines.cli import app\n"
        f"args = {args!r}\n"
        "result = CliRunner().invoke(app, args)\n"
        "assert result.exit_code == 0, result.output\n"
        "assert 'duckdb' not in sys.modules, 'validate loaded duckdb'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_contract_command_prints_the_table() -> None:
    assert "| orders | order_id | string |" in invoke("contract")


def test_features_stage_writes_table_dictionary_and_summary(shop: dict[str, Path], tmp_path: Path) -> None:
    params = write_params(tmp_path / "params.yaml", features={"first_cutoff": "2025-06-01", "every_days": 60})
    paths = {name: tmp_path / name for name in ("features.parquet", "dictionary.csv", "dictionary.md", "summary.json")}
    output = invoke(
        "features", "--params", params, "--validated", shop["validated"], "--validation-report", shop["report"],
        "--out", paths["features.parquet"], "--dictionary", paths["dictionary.csv"],
        "--dictionary-md", paths["dictionary.md"], "--summary", paths["summary.json"],
    )  # fmt: skip
    summary = json.loads(paths["summary.json"].read_text())
    assert (summary["cutoffs"], summary["labelled_cutoffs"]) == (4, 3)  # 06-01, 07-31, 09-29, 11-28 (+90 d > as-of)
    assert f"{summary['rows']:,} rows" in output
    table = pd.read_parquet(paths["features.parquet"])
    assert len(table) == summary["rows"]
    assert table.groupby("cutoff")["churned"].apply(lambda s: s.isna().all()).tolist() == [False, False, False, True]
    dictionary = pd.read_csv(paths["dictionary.csv"])
    assert set(dictionary["name"]) == set(table.columns) - {"customer_id", "cutoff", "churned"}
    assert dictionary["available"].all()  # the synthetic shop has every table and column
    assert "| `late_delivery_90d` |" in paths["dictionary.md"].read_text()


def test_train_and_evaluate_stages_write_models_metrics_plots_and_an_mlflow_run(
    shop: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("DVC_EXP_NAME", "tidy-tern")  # as `dvc exp run` sets it
    params = write_params(
        tmp_path / "params.yaml",
        features={"first_cutoff": "2024-07-01", "every_days": 60},
        train={"num_threads": 1},
        evaluate={"contact_k": 50},
    )
    features = tmp_path / "features.parquet"
    invoke(
        "features", "--params", params, "--validated", shop["validated"], "--validation-report", shop["report"],
        "--out", features, "--dictionary", tmp_path / "d.csv", "--dictionary-md", tmp_path / "d.md",
        "--summary", tmp_path / "features.json",
    )  # fmt: skip
    models = {name: tmp_path / name for name in ("backtest", "current")}
    output = invoke(
        "train", "--params", params, "--features", features, "--dictionary", tmp_path / "d.csv",
        "--validation-report", shop["report"],
        "--backtest", models["backtest"], "--current", models["current"],
    )  # fmt: skip
    # Cutoffs every 60 days from 2024-07-01; 2025-08-25 is the last whose 90 days end by the as-of time 2026-01-01.
    assert "backtest: deployed at 2025-08-25" in output
    assert "current: deployed at 2026-01-01" in output
    metrics_path, plots, figures = tmp_path / "metrics.json", tmp_path / "plots", tmp_path / "figures"
    output = invoke(
        "evaluate", "--params", params, "--features", features, "--backtest", models["backtest"],
        "--current", models["current"], "--truth", shop["truth"], "--validated", shop["validated"],
        "--metrics", metrics_path, "--evaluation", tmp_path / "evaluation.json", "--plots", plots,
        "--figures", figures,
    )  # fmt: skip
    headline = json.loads(metrics_path.read_text())
    metrics = json.loads((tmp_path / "evaluation.json").read_text())
    assert headline["roc_auc"] == round(metrics["overall"]["lightgbm"]["roc_auc"], 4)
    assert headline["gain_lo"] < headline["gain"] < headline["gain_hi"]
    assert headline["baseline"] == metrics["comparison"]["best_baseline"]
    assert metrics["test_cutoff"] == "2025-08-25"
    overall = metrics["overall"]
    assert {"lightgbm", "recency_rule", "rfm_logistic", "oracle"} <= set(overall)
    assert overall["oracle"]["roc_auc"] > overall["lightgbm"]["roc_auc"] > 0.5
    # The observable oracle knows the mechanism but not the latent state: between the best baseline and the latent
    # oracle, and no model beats it by more than noise (~0.015 standard error of a test AUC at this size).
    best = overall[metrics["comparison"]["best_baseline"]]["roc_auc"]
    observable = overall["observable_oracle"]["roc_auc"]
    assert best < observable < overall["oracle"]["roc_auc"]
    assert observable > overall["lightgbm"]["roc_auc"] - 0.03
    gap_closed = (overall["lightgbm"]["roc_auc"] - best) / (observable - best)
    assert metrics["comparison"]["observable_oracle_gap_closed"] == pytest.approx(gap_closed)
    assert set(metrics["bootstrap"]["roc_auc"]) >= {"observable_oracle", "oracle"}
    assert "observable" not in json.dumps(headline)  # dvc metrics show stays narrow
    assert {"bad_experience_90d", "first_time_buyer", "repeat_buyer"} == set(metrics["cohorts"])
    cohort_rows = [metrics["cohorts"][name]["lightgbm"]["rows"] for name in ("first_time_buyer", "repeat_buyer")]
    assert sum(cohort_rows) == overall["lightgbm"]["rows"]
    assert "roc_auc_gain_over_best_baseline" in metrics["comparison"]
    roc = pd.read_csv(plots / "roc.csv")
    assert list(roc.columns) == ["fpr", "lightgbm", "recency_rule", "rfm_logistic", "bg_nbd", "pareto_nbd", "oracle"]
    assert {path.name for path in plots.iterdir()} == {"roc.csv", "pr.csv", "gains.csv", "calibration.csv"}
    for figure in ("shap_summary", "roc", "pr", "gains", "calibration"):
        assert (figures / f"{figure}.png").stat().st_size > 10_000, figure
    assert "lightgbm" in output
    from mlflow.tracking import MlflowClient

    # registered under the shop's own name: data.source files, data.path data/raw/synthetic
    champion = MlflowClient().get_model_version_by_alias("churn-files-synthetic", "champion")
    run = MlflowClient().get_run(champion.run_id)
    assert run.data.metrics["roc_auc"] == headline["roc_auc"]
    assert run.data.metrics["model/log_loss"] == pytest.approx(overall["lightgbm"]["log_loss"])
    assert run.data.metrics["rfm_logistic/roc_auc"] == pytest.approx(overall["rfm_logistic"]["roc_auc"])
    assert "test_roc_auc" not in run.data.metrics and "model/roc_auc" not in run.data.metrics
    figures_logged = {artifact.path for artifact in MlflowClient().list_artifacts(champion.run_id, "figures")}
    assert {"figures/roc.png", "figures/pr.png", "figures/gains.png", "figures/calibration.png"} <= figures_logged
    assert run.data.tags["test_cutoff"] == "2025-08-25"
    assert run.info.run_name == run.data.tags["dvc_experiment"] == "tidy-tern"
    assert champion.tags["promotion"] == "champion"


def test_params_read_as_dvc_writes_them(tmp_path: Path) -> None:
    """`dvc exp run -S` rewrites params.yaml as YAML 1.2, dropping the quotes around "NO" (Norway)."""
    from pipelines.params import load_params
    from pipelines.sources.synthetic import SyntheticShopParams

    path = tmp_path / "params.yaml"
    path.write_text("generate:\n  country_shares: {SE: 0.45, NO: 0.2, DK: 0.2, FI: 0.15}\n")
    shares = SyntheticShopParams.from_dict(load_params(path)["generate"]).country_shares
    assert list(shares) == ["SE", "NO", "DK", "FI"]
