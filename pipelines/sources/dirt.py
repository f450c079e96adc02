"""Dirty rows of every kind validation must catch, injected into generated tables.

Each kind makes extra rows (copies of real rows, broken in one way), so the clean data and the ground truth stay
as generated. The returned `dirt` table lists every injected row with the validation rule that must catch it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd


class DirtContext:
    """What breakers draw on: the data's as-of time, the random generator and identifiers no other row has."""

    def __init__(self, as_of: pd.Timestamp, rng: np.random.Generator) -> None:
        self.as_of = as_of
        self.rng = rng
        self._next_id = 0

    def fresh_ids(self, n: int) -> np.ndarray:
        """Identifiers unique across all dirt (X0, X1, ...); real ids never start with X."""
        ids = np.char.add("X", np.arange(self._next_id, self._next_id + n).astype(str))
        self._next_id += n
        return ids


Breaker = Callable[[pd.DataFrame, DirtContext], pd.DataFrame]


@dataclass(frozen=True)
class DirtKind:
    table: str
    name: str
    rule: str
    # Turns copies of real rows into dirty rows.
    breaker: Breaker


def _duplicate(rows: pd.DataFrame, dirt: DirtContext) -> pd.DataFrame:
    return rows


def _negative_value(rows: pd.DataFrame, dirt: DirtContext) -> pd.DataFrame:
    return rows.assign(order_id=dirt.fresh_ids(len(rows)), order_value=-rows["order_value"] - 1)


def _missing_customer(rows: pd.DataFrame, dirt: DirtContext) -> pd.DataFrame:
    return rows.assign(order_id=dirt.fresh_ids(len(rows)), customer_id=None)


def _unknown_status(rows: pd.DataFrame, dirt: DirtContext) -> pd.DataFrame:
    return rows.assign(order_id=dirt.fresh_ids(len(rows)), status="lost_in_space")


def _delivered_before_ordered(rows: pd.DataFrame, dirt: DirtContext) -> pd.DataFrame:
    return rows.assign(
        order_id=dirt.fresh_ids(len(rows)),
        status="delivered",
        promised_delivery_at=rows["ordered_at"] + pd.Timedelta(days=3),
        delivered_at=rows["ordered_at"] - pd.Timedelta(days=2),
    )


def _future_order(rows: pd.DataFrame, dirt: DirtContext) -> pd.DataFrame:
    return rows.assign(
        order_id=dirt.fresh_ids(len(rows)),
        ordered_at=dirt.as_of + pd.Timedelta(days=30),
        status="placed",
        cancel_reason=None,
        promised_delivery_at=pd.NaT,
        delivered_at=pd.NaT,
    )


def _orphan_order(rows: pd.DataFrame, dirt: DirtContext) -> pd.DataFrame:
    # A line named by a return belongs to the real order: dropped, so the row breaks the one rule it is for.
    lines = {"line_id": None} if "line_id" in rows else {}
    return rows.assign(order_id=dirt.fresh_ids(len(rows)), **lines)


def _orphan_line(rows: pd.DataFrame, dirt: DirtContext) -> pd.DataFrame:
    return rows.assign(line_id=dirt.fresh_ids(len(rows)), order_id=dirt.fresh_ids(len(rows)))


def _no_units(rows: pd.DataFrame, dirt: DirtContext) -> pd.DataFrame:
    return rows.assign(line_id=dirt.fresh_ids(len(rows)), quantity=0.0)


def _negative_price(rows: pd.DataFrame, dirt: DirtContext) -> pd.DataFrame:
    return rows.assign(line_id=dirt.fresh_ids(len(rows)), unit_price=-rows["unit_price"] - 1)


def _score_out_of_range(rows: pd.DataFrame, dirt: DirtContext) -> pd.DataFrame:
    return rows.assign(review_score=dirt.rng.choice([0, 6, 10], size=len(rows)))


def _review_before_order(rows: pd.DataFrame, dirt: DirtContext) -> pd.DataFrame:
    return rows.assign(reviewed_at=pd.Timestamp("1999-01-01"))


def _orphan_ticket_customer(rows: pd.DataFrame, dirt: DirtContext) -> pd.DataFrame:
    return rows.assign(ticket_id=dirt.fresh_ids(len(rows)), customer_id=dirt.fresh_ids(len(rows)), order_id=None)


def _resolved_before_opened(rows: pd.DataFrame, dirt: DirtContext) -> pd.DataFrame:
    return rows.assign(ticket_id=dirt.fresh_ids(len(rows)), resolved_at=rows["opened_at"] - pd.Timedelta(hours=5))


def _unknown_reason(rows: pd.DataFrame, dirt: DirtContext) -> pd.DataFrame:
    ids = {"ticket_id": dirt.fresh_ids(len(rows))} if "ticket_id" in rows else {}
    return rows.assign(reason="gremlins", **ids)


def _missing_customer_id(rows: pd.DataFrame, dirt: DirtContext) -> pd.DataFrame:
    return rows.assign(customer_id=None)


DIRT_KINDS: tuple[DirtKind, ...] = (
    DirtKind("customers", "duplicate_row", "customers.duplicate_row", _duplicate),
    DirtKind("customers", "missing_customer_id", "customers.customer_id.not_null", _missing_customer_id),
    DirtKind("orders", "duplicate_row", "orders.duplicate_row", _duplicate),
    DirtKind("orders", "negative_value", "orders.order_value.range", _negative_value),
    DirtKind("orders", "missing_customer", "orders.customer_id.not_null", _missing_customer),
    DirtKind("orders", "unknown_status", "orders.status.allowed", _unknown_status),
    DirtKind("orders", "delivered_before_ordered", "orders.delivered_at.not_before", _delivered_before_ordered),
    DirtKind("orders", "future_order", "orders.ordered_at.not_after_as_of", _future_order),
    DirtKind("reviews", "orphan_review", "reviews.order_id.references", _orphan_order),
    DirtKind("reviews", "score_out_of_range", "reviews.review_score.range", _score_out_of_range),
    DirtKind("reviews", "review_before_order", "reviews.reviewed_at.not_before", _review_before_order),
    DirtKind("tickets", "orphan_customer", "tickets.customer_id.references", _orphan_ticket_customer),
    DirtKind("tickets", "resolved_before_opened", "tickets.resolved_at.not_before", _resolved_before_opened),
    DirtKind("tickets", "unknown_reason", "tickets.reason.allowed", _unknown_reason),
    DirtKind("returns", "orphan_return", "returns.order_id.references", _orphan_order),
    DirtKind("returns", "unknown_reason", "returns.reason.allowed", _unknown_reason),
    DirtKind("order_lines", "duplicate_row", "order_lines.duplicate_row", _duplicate),
    DirtKind("order_lines", "orphan_line", "order_lines.order_id.references", _orphan_line),
    DirtKind("order_lines", "no_units", "order_lines.quantity.range", _no_units),
    DirtKind("order_lines", "negative_price", "order_lines.unit_price.range", _negative_price),
)


def inject_dirt(
    tables: dict[str, pd.DataFrame], share: float, as_of: pd.Timestamp, seed: int
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Add about `share` dirty rows per table, shuffled in among the clean ones.

    Returns the dirty tables and one row per injected row: table, row position (0-based, in the returned table),
    kind and the rule that must quarantine it.
    """
    rng = np.random.default_rng([seed, 3])
    context = DirtContext(as_of, rng)
    result: dict[str, pd.DataFrame] = {}
    records = []
    for name, table in tables.items():
        kinds = [kind for kind in DIRT_KINDS if kind.table == name]
        per_kind = round(share * len(table) / max(len(kinds), 1))
        if share > 0:
            per_kind = max(per_kind, 1)
        dirty_parts, kind_names, sort_keys = [], [], [np.arange(len(table), dtype=float)]
        for kind in kinds if len(table) else ():
            positions = rng.choice(len(table), size=per_kind, replace=False)
            dirty_parts.append(kind.breaker(table.iloc[positions], context).astype(table.dtypes.to_dict()))
            kind_names += [kind.name] * per_kind
            # Right after the row it was copied from, so "keep first" keeps an exact duplicate's original.
            sort_keys.append(positions + rng.uniform(0.01, 0.99, per_kind))
        order = np.argsort(np.concatenate(sort_keys), kind="stable")
        shuffled = pd.concat([table, *dirty_parts], ignore_index=True).take(order)
        # Renumbered in place: reset_index would copy the whole table once more at generate's peak of memory.
        shuffled.index = pd.RangeIndex(order.size)
        result[name] = shuffled
        new_position = np.empty(order.size, dtype=np.int64)
        new_position[order] = np.arange(order.size)
        rules = {kind.name: kind.rule for kind in kinds}
        dirty_positions = new_position[len(table) :]
        records += [(name, int(row), kind, rules[kind]) for row, kind in zip(dirty_positions, kind_names, strict=True)]
    dirt = pd.DataFrame(records, columns=["table", "row", "kind", "rule"])
    return result, dirt
