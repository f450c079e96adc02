"""params.yaml means the same after `dvc exp run -S` rewrites it, to this project's YAML 1.2 reader and to a YAML
1.1 reader (PyYAML) alike."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml
from conftest import REPO
from dvc.utils.hydra import apply_overrides

from pipelines.params import load_params


def test_a_dvc_rewrite_keeps_every_value(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", path)
    original = load_params(path)
    # What `dvc exp run -S train.num_leaves=...` does to the file, here with the value it already has.
    apply_overrides(path, [f"train.num_leaves={original['train']['num_leaves']}"])
    assert path.read_text() != (REPO / "params.yaml").read_text()  # DVC did rewrite it (quotes, layout)
    assert load_params(path) == original
    assert yaml.safe_load(path.read_text()) == original
    assert yaml.safe_load((REPO / "params.yaml").read_text()) == original


def test_a_dvc_rewrite_changes_only_the_value_it_sets(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", path)
    original = load_params(path)
    apply_overrides(path, ["train.num_leaves=63"])
    expected = {**original, "train": {**original["train"], "num_leaves": 63}}
    assert load_params(path) == expected == yaml.safe_load(path.read_text())
    comments = [line.strip() for line in (REPO / "params.yaml").read_text().splitlines() if "#" in line]
    rewritten = path.read_text()
    assert [comment for comment in comments if comment.split("#", 1)[1].strip() not in rewritten] == []
