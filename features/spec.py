"""Feature specifications: the feature dictionary is generated from these, and the builders must produce exactly
these columns (a test checks both directions)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Literal

Group = Literal["rfm", "satisfaction", "returns", "relationship", "trend", "seasonal", "btyd", "basket"]
# (a value an export gives as it stands at export time, what dates it): without the second, the first is read into
# earlier cutoffs as if it had always held.
Snapshot = tuple[str, str]
# Whether an order was cancelled: the export's status, dated by cancelled_at.
ORDER_STATUS: Snapshot = ("orders.status", "orders.cancelled_at")


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    group: Group
    dtype: Literal["float64", "int64", "boolean", "string"]
    unit: str
    window: str
    definition: str
    # Contract "table" or "table.column" the feature needs; without it the feature is missing (null), not zero.
    needs: tuple[str, ...] = ("orders",)
    # Besides `needs`, at least one of these sets (e.g. what some kind of bad experience needs): a count of bad
    # experiences is unknown, not zero, where the source can show none of them.
    needs_one_of: tuple[tuple[str, ...], ...] = ()
    # Snapshots the feature reads where the source has them undated.
    snapshots: tuple[Snapshot, ...] = ()

    def available(self, has: Callable[[str], bool]) -> bool:
        """Whether a source that has what `has` says can provide this feature."""
        if not all(has(need) for need in self.needs):
            return False
        return not self.needs_one_of or any(all(has(need) for need in group) for group in self.needs_one_of)

    def undated_snapshots(self, has: Callable[[str], bool]) -> list[str]:
        """The export-time snapshots this feature reads in a source that has what `has` says, without the time
        that would date them (empty: point in time)."""
        return [value for value, dated_by in self.snapshots if has(value) and not has(dated_by)]

    def all_needs(self) -> set[str]:
        """Every table and column the feature can read."""
        return {*self.needs, *(need for group in self.needs_one_of for need in group)}

    def needs_text(self) -> str:
        text = ", ".join(self.needs)
        if self.needs_one_of:
            text += "; and one of: " + " | ".join(" + ".join(group) for group in self.needs_one_of)
        return text


def reading_order_status(specs: Iterable[FeatureSpec], unless: Iterable[str] = ()) -> tuple[FeatureSpec, ...]:
    """The specs, those not named in `unless` marked as reading whether an order was cancelled (ORDER_STATUS)."""
    skipped = set(unless)
    return tuple(spec if spec.name in skipped else replace(spec, snapshots=(ORDER_STATUS,)) for spec in specs)
