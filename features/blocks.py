"""A params.yaml block as a frozen dataclass: unknown keys are an error, not silently ignored."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

T = TypeVar("T")


def from_block(cls: type[T], values: dict[str, Any], block: str) -> T:
    known = {field.name for field in fields(cls)}  # type: ignore[arg-type]
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"unknown {block} params: {sorted(unknown)}; known: {sorted(known)}")
    return cls(**values)
