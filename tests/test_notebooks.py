"""The notebooks run top to bottom on the outputs of the whole pipeline on a small shop, and are stored without
outputs (what the pre-commit hook nbstripout does; this is the check CI runs)."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

import nbformat
import pytest
from conftest import REPO, SHARED_DATA, invoke, write_params
from nbclient import NotebookClient

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
EXPECTED = ["01_orders_and_bad_experiences.ipynb", "02_features.ipynb", "03_model.ipynb"]
# Fewer cutoffs than the default params (the small shop needs no more to train and evaluate).
FEATURES = {"first_cutoff": "2024-07-01", "every_days": 60}
CELL_TIMEOUT_SECONDS = 300


@pytest.fixture(scope="module")
def project(shop: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project folder laid out like the repository's (params.yaml, data/, reports/) holding every stage's outputs
    on the shared small shop: what `dvc repro` leaves behind, without MLflow."""
    root = tmp_path_factory.mktemp("project")
    params = write_params(root / "params.yaml", features=FEATURES, train={"num_threads": 1}, evaluate={"contact_k": 50})
    data, reports = root / "data", root / "reports"
    reports.mkdir()
    data.mkdir()
    (data / "validated").symlink_to(shop["validated"], target_is_directory=True)
    shutil.copy(shop["report"], reports / "validation.json")
    features, models = data / "features", data / "models"
    invoke(
        "features", "--params", params, "--validated", data / "validated",
        "--validation-report", reports / "validation.json", "--out", features / "features.parquet",
        "--dictionary", features / "feature_dictionary.csv", "--dictionary-md", reports / "feature_dictionary.md",
        "--summary", reports / "features.json",
    )  # fmt: skip
    invoke(
        "train", "--params", params, "--features", features / "features.parquet",
        "--dictionary", features / "feature_dictionary.csv", "--validation-report", reports / "validation.json",
        "--backtest", models / "backtest", "--current", models / "current",
    )  # fmt: skip
    invoke(
        "evaluate", "--params", params, "--features", features / "features.parquet",
        "--backtest", models / "backtest", "--current", models / "current", "--truth", shop["truth"],
        "--validated", data / "validated",
        "--metrics", reports / "metrics.json", "--evaluation", reports / "evaluation.json",
        "--plots", reports / "plots", "--figures", reports / "figures",
        "--no-track",
    )  # fmt: skip
    invoke(
        "score", "--params", params, "--model", models / "current", "--validated", data / "validated",
        "--validation-report", reports / "validation.json", "--out", data / "risk" / "risk_list.parquet",
        "--out-csv", data / "risk" / "risk_list.csv", "--report", reports / "scoring.json",
        "--report-md", reports / "scoring.md",
    )  # fmt: skip
    invoke(
        "impact", "--params", params, "--validated", data / "validated", "--validation-report",
        reports / "validation.json", "--truth", shop["truth"], "--metrics", reports / "impact.json",
        "--report", reports / "impact_detail.json", "--report-md", reports / "impact.md",
        "--figures", reports / "figures", "--no-track",
    )  # fmt: skip
    return root


def test_the_three_notebooks_are_there() -> None:
    assert [path.name for path in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_is_stored_without_outputs(notebook: Path) -> None:
    cells = nbformat.read(notebook, as_version=4).cells
    for number, cell in enumerate(cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{notebook.name} cell {number} has outputs: run nbstripout"
            assert cell.execution_count is None, f"{notebook.name} cell {number} has an execution count"


@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_runs_top_to_bottom(
    notebook: Path, project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any failing cell fails the test (nbclient raises CellExecutionError with the cell and its traceback); the
    executed copy is kept in tmp_path for a look, never written over the stored notebook."""
    monkeypatch.setenv("CHURN_PROJECT_DIR", str(project))
    # The public datasets next to the repository; a notebook skips its real-data section, saying so, without them.
    monkeypatch.setenv("CHURN_SHARED_DATA", str(SHARED_DATA))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "jupyter"))  # kernel connection files, not in $HOME
    executed = nbformat.read(notebook, as_version=4)
    client = NotebookClient(
        executed,
        timeout=CELL_TIMEOUT_SECONDS,
        kernel_name="python3",
        resources={"metadata": {"path": str(notebook.parent)}},
    )
    try:
        client.execute()
    finally:
        nbformat.write(executed, tmp_path / notebook.name)
    images = [
        base64.b64decode(output["data"]["image/png"])
        for cell in executed.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if "image/png" in output.get("data", {})
    ]
    assert images, f"{notebook.name} showed no plot"
    printed = "".join(
        output.get("text", "") for cell in executed.cells if cell.cell_type == "code" for output in cell.outputs
    )
    if SHARED_DATA.is_dir():
        assert "skipped" not in printed, f"{notebook.name} skipped a section although {SHARED_DATA} exists"
