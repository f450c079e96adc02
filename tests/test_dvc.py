"""dvc.yaml is complete (every stage lists the code it runs) and `dvc repro` works in a scratch copy."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO

PACKAGES = ("pipelines", "features", "models")
STAGE_MODULES = {
    "generate": "pipelines.stages.generate",
    "validate": "pipelines.stages.validate",
    "features": "pipelines.stages.features",
    "train": "pipelines.stages.train",
    "evaluate": "pipelines.stages.evaluate",
    "score": "pipelines.stages.score",
    "impact": "pipelines.stages.impact",
}


def project_imports(module: str, skip: frozenset[str], seen: set[str] | None = None) -> set[str]:
    """Project modules `module` imports, directly or not, including imports inside functions; `skip` is not
    followed."""
    seen = set() if seen is None else seen
    if module in seen or module in skip:
        return seen
    seen.add(module)
    path = module_path(module)
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            if name.split(".")[0] in PACKAGES and module_path(name, must_exist=False).is_file():
                project_imports(name, skip, seen)
    return seen


def module_path(module: str, must_exist: bool = True) -> Path:
    base = REPO.joinpath(*module.split("."))
    path = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
    assert path.is_file() or not must_exist, module
    return path


def covered(path: Path, deps: list[str]) -> bool:
    relative = path.relative_to(REPO)
    return any(relative == Path(dep) or Path(dep) in relative.parents for dep in deps)


@pytest.mark.parametrize(("stage", "module"), sorted(STAGE_MODULES.items()))
def test_stage_deps_list_the_code_it_runs(stage: str, module: str) -> None:
    deps = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"][stage]["deps"]
    # The CLI imports every stage lazily; a DVC stage runs only its own, and `churn inspect` is no stage. The params
    # check imports every stage's schema, but only decides whether a stage starts (pipelines/params_check.py says
    # why it is no dependency).
    not_followed = frozenset(STAGE_MODULES.values()) - {module} | {
        "pipelines.params_check",
        "pipelines.sources.inspect",
    }
    for imported in project_imports("pipelines.cli", not_followed):
        path = module_path(imported)
        if path.name == "__init__.py" and not path.read_text().strip():
            continue
        assert covered(path, deps), f"dvc.yaml stage {stage} runs {path.relative_to(REPO)} but does not list it"


@pytest.mark.slow
def test_dvc_repro_in_a_scratch_copy_then_nothing_to_do(tmp_path: Path) -> None:
    work = tmp_path / "repo"
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    for name in tracked.split():
        if (REPO / name).is_file():
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, work / name)
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["generate"]["n_customers"] = 2000
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # A wide terminal, so that DVC prints its tables whole and their own width is what is measured.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "COLUMNS": "1000"}
    run = {"cwd": work, "env": env, "capture_output": True, "text": True}
    subprocess.run(["git", "init", "-q"], check=True, **run)  # type: ignore[call-overload]
    first = subprocess.run(["dvc", "repro"], **run)  # type: ignore[call-overload]
    assert first.returncode == 0, first.stdout + first.stderr
    assert "orders:" in first.stdout and "quarantined" in first.stdout
    outputs = (
        "data/validated/orders.parquet",
        "data/quarantine/orders.parquet",
        "reports/validation.md",
        "data/features/features.parquet",
        "reports/feature_dictionary.md",
        "reports/features.json",
    )
    for output in outputs:
        assert (work / output).is_file(), output
    second = subprocess.run(["dvc", "repro"], **run)  # type: ignore[call-overload]
    assert second.returncode == 0, second.stdout + second.stderr
    assert "Data and pipelines are up to date" in second.stdout
    assert_readable_results(work, run)


def assert_readable_results(work: Path, run: dict[str, Any]) -> None:
    """After a `dvc repro`: `dvc metrics show`, and `dvc exp show --only-changed` after one experiment, print
    tables under 200 characters wide; the precision-recall curve served by DVC is not flat."""
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com"]
    subprocess.run([*git, "add", "-A"], check=True, **run)  # type: ignore[call-overload]
    subprocess.run([*git, "commit", "-qm", "baseline"], check=True, **run)  # type: ignore[call-overload]
    metrics = subprocess.run(["dvc", "metrics", "show"], check=True, **run)  # type: ignore[call-overload]
    assert "roc_auc" in metrics.stdout and "…" not in metrics.stdout
    assert max(map(len, metrics.stdout.splitlines())) < 200, metrics.stdout
    plots = subprocess.run(["dvc", "plots", "show", "--json"], check=True, **run)  # type: ignore[call-overload]
    (pr,) = json.loads(plots.stdout)["data"]["Precision-recall on the test cutoff"]
    precision = {float(point["dvc_inferred_y_value"]) for point in pr["content"]["data"]["values"]
                 if point["field"] == "lightgbm"}  # fmt: skip
    assert len(precision) > 10 and min(precision) < 0.9
    experiment = subprocess.run(["dvc", "exp", "run", "-S", "train.num_leaves=15"], **run)  # type: ignore[call-overload]
    assert experiment.returncode == 0, experiment.stdout + experiment.stderr
    shown = subprocess.run(["dvc", "exp", "show", "--only-changed", "--no-pager"], check=True, **run)  # type: ignore[call-overload]
    assert "roc_auc" in shown.stdout and "train.num_leaves" in shown.stdout, shown.stdout
    assert max(map(len, shown.stdout.splitlines())) < 200, shown.stdout
