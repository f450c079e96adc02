"""Reading `params.yaml`: each stage takes its own block."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def load_params(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ValueError(f"params file {path} does not exist")
    params = yaml.safe_load(path.read_text()) or {}
    if not isinstance(params, dict):
        raise ValueError(f"{path} must hold a mapping of stage blocks, not {type(params).__name__}")
    return params


def block(params: dict[str, Any], name: str) -> dict[str, Any]:
    if name not in params:
        raise ValueError(f"params.yaml has no {name!r} block (blocks: {sorted(params)})")
    return params[name] or {}
