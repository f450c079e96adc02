"""The CI check that dvc.lock was committed in step with the code (.ci/lock_in_step.py) on a tiny DVC project."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from conftest import REPO

DVC_YAML = """stages:
  count:
    cmd: python code.py
    deps: [code.py, data.txt]
    params: [size]
    outs: [data/out.txt]
    metrics:
      - report.json:
          cache: false
"""
CODE = "import pathlib\npathlib.Path('data').mkdir(exist_ok=True)\npathlib.Path('data/out.txt').write_text('x')\n"
CODE += "pathlib.Path('report.json').write_text('{\"n\": 1}')\n"


def checker() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lock_in_step", REPO / ".ci" / "lock_in_step.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A committed DVC project whose lock is in step; data.txt is data (git-ignored), the rest is tracked."""
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    files = {"dvc.yaml": DVC_YAML, "code.py": CODE, "params.yaml": "size: 1\n", "data.txt": "raw\n"}
    files[".gitignore"] = "/data\n/data.txt\n"
    for name, text in files.items():
        (tmp_path / name).write_text(text)

    def run(*command: str) -> None:
        subprocess.run(command, cwd=tmp_path, check=True, capture_output=True)

    run("git", "init", "-q")
    run("dvc", "init", "-q")
    run("dvc", "repro", "-q")
    run("git", "add", ".")
    run("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "in step")
    return tmp_path


def test_a_lock_in_step_passes_even_without_the_data(project: Path) -> None:
    (project / "data.txt").write_text("other raw data\n")
    (project / "data" / "out.txt").unlink()
    assert checker().main(project) == 0


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("code.py", CODE + "# changed\n"), "count: code.py modified"),
        (("params.yaml", "size: 2\n"), "count: param params.yaml:size modified"),
        (("report.json", '{"n": 2}'), "count: report.json modified"),
    ],
)
def test_changed_code_params_or_reports_are_drift(
    project: Path, change: tuple[str, str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / change[0]).write_text(change[1])
    assert checker().main(project) == 1
    assert f"dvc.lock is out of step: {expected}" in capsys.readouterr().err


def test_the_repository_leaves_python_and_numba_caches_out_of_the_code_it_hashes() -> None:
    # numba caches the compiled SHAP functions beside models/treeshap.py, stamped with the source's time: were they
    # hashed with the `models` folder, every fresh clone that ran the tests would be out of step with dvc.lock.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}

    def ignored(path: str) -> bool:
        return subprocess.run(["dvc", "check-ignore", path], cwd=REPO, env=env, capture_output=True).returncode == 0

    assert ignored("models/__pycache__/treeshap._contributions-304.py311.nbi")
    assert ignored("features/__pycache__/build.cpython-311.pyc")
    assert not ignored("models/treeshap.py")
