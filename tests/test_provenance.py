"""Where a run came from: the commit (dirty only for code and params), the DVC experiment and a readable name."""

from __future__ import annotations

import subprocess
from datetime import datetime
from pathlib import Path

import pytest

from pipelines.provenance import git_commit, run_name


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    git(tmp_path, "init", "-q")
    (tmp_path / "reports").mkdir()
    for name in ("code.py", "params.yaml", "dvc.lock", "reports/metrics.json"):
        (tmp_path / name).write_text("a\n")
    git(tmp_path, "add", ".")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first")
    return tmp_path


def test_files_dvc_rewrites_during_a_run_do_not_make_the_commit_dirty(repo: Path) -> None:
    head = git(repo, "rev-parse", "HEAD")
    (repo / "dvc.lock").write_text("b\n")
    (repo / "reports" / "metrics.json").write_text("b\n")
    assert git_commit(repo) == head


@pytest.mark.parametrize("changed", ["code.py", "params.yaml"])
def test_changed_code_or_params_make_the_commit_dirty(repo: Path, changed: str) -> None:
    (repo / changed).write_text("b\n")
    assert git_commit(repo) == git(repo, "rev-parse", "HEAD") + "-dirty"


def test_run_name_is_the_dvc_experiment_else_stage_and_time(monkeypatch: pytest.MonkeyPatch) -> None:
    now = datetime(2026, 1, 2, 3, 4)
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    assert run_name("evaluate", now) == "evaluate 2026-01-02 03:04"
    monkeypatch.setenv("DVC_EXP_NAME", "urban-leaf")
    assert run_name("evaluate", now) == "urban-leaf"
