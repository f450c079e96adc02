"""A params.yaml block as a frozen dataclass: unknown keys and wrong types are errors, not silently ignored."""

from __future__ import annotations

import difflib
from dataclasses import fields
from typing import Any, TypeVar

from pydantic import TypeAdapter, ValidationError

T = TypeVar("T")


def from_block(cls: type[T], values: dict[str, Any], block: str) -> T:
    """The dataclass `cls` from a params block; the types are checked against its annotations (pydantic)."""
    if not isinstance(values, dict):
        raise ValueError(f"params block {block!r} must be a mapping of keys to values, not {values!r}")
    known = [field.name for field in fields(cls)]  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(unknown_key_message(block, unknown[0], known))
    try:
        return TypeAdapter(cls).validate_python(values)
    except ValidationError as error:
        raise ValueError(validation_message(block, error)) from None


def unknown_key_message(block: str, key: str, known: list[str]) -> str:
    nearest = difflib.get_close_matches(key, known, n=1, cutoff=0.5)
    suggestion = f"did you mean {block}.{nearest[0]}?" if nearest else f"the keys of {block} are {sorted(known)}"
    return f"{block}.{key} is not a param; {suggestion}"


def validation_message(block: str, error: ValidationError) -> str:
    """The first problem pydantic found, as one line: where, the value given and what was expected."""
    first = error.errors()[0]
    if first["type"] == "value_error":  # the dataclass's own check, whose message names the param
        return str(first["ctx"]["error"])
    where = ".".join(str(part) for part in (block, *first["loc"]))
    return f"{where} = {first['input']!r}: {first['msg']}"
