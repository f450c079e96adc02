"""Reading `params.yaml`: each stage takes its own block.

Read as YAML 1.2, as DVC reads and rewrites it: `dvc exp run -S` writes the file back without the quotes a YAML 1.1
reader (PyYAML) needs, and under 1.1 a bare `NO` (Norway) is false.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ruamel.yaml import YAML


def load_params(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ValueError(f"params file {path} does not exist")
    params = YAML(typ="safe", pure=True).load(path.read_text()) or {}
    if not isinstance(params, dict):
        raise ValueError(f"{path} must hold a mapping of stage blocks, not {type(params).__name__}")
    return params


def block(params: dict[str, Any], name: str) -> dict[str, Any]:
    if name not in params:
        raise ValueError(f"params.yaml has no {name!r} block (blocks: {sorted(params)})")
    return params[name] or {}
