"""Reading `params.yaml`: the whole file is checked before any stage works (`pipelines.params_check`), then each
stage takes its own block.

Read as YAML 1.2, as DVC reads and rewrites it: `dvc exp run -S` writes the file back without the quotes a YAML 1.1
reader (PyYAML) needs, and under 1.1 a bare `NO` (Norway) is false.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from pipelines.params_check import check_params


def load_params(path: Path) -> dict[str, Any]:
    """The params file, checked whole: unknown blocks and keys, wrong types and impossible combinations."""
    if not path.is_file():
        raise ValueError(f"params file {path} does not exist")
    try:
        params = YAML(typ="safe", pure=True).load(path.read_text()) or {}
    except YAMLError as error:
        raise ValueError(f"{path} is not valid YAML: {' '.join(str(error).split())}") from None
    if not isinstance(params, dict):
        raise ValueError(f"{path} must hold a mapping of stage blocks, not {type(params).__name__}")
    params = _dates_as_text(params)
    check_params(params)
    return params


def block(params: dict[str, Any], name: str) -> dict[str, Any]:
    if name not in params:
        raise ValueError(f"params.yaml has no {name!r} block (blocks: {sorted(params)})")
    return params[name] or {}


def _dates_as_text(value: Any) -> Any:
    """YAML reads an unquoted 2024-07-01 (as `dvc exp run -S` writes it) as a date; params hold dates as text."""
    if isinstance(value, dict):
        return {key: _dates_as_text(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_dates_as_text(item) for item in value]
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value
