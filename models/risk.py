"""The risk list: who is about to leave, what they are worth, why, and what to do.

Expected future value is what the customer would spend in the next `horizon_days` at their own historical pace:
their mean order value times their order rate (non-cancelled orders per day since their first order, counting at
least `horizon_days` so a brand-new customer's single order is not read as a daily habit) times `horizon_days`.
Value at risk is the churn probability times that. The list is ranked by value at risk, highest first.

Time windows of the action rules count whole days elapsed (a bad experience 30.4 days ago is 30 days ago), the
unit the CSV shows, so a customer never misses a rule by a fraction of a day nobody sees.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from features.blocks import from_block

ACTION_CONDITIONS = frozenset(
    {
        "min_probability",
        "bad_experience_within_days",
        "unresolved",
        "open_complaint",
        "last_order_went_wrong",
        "min_overdue_ratio",
        "loyalty_member",
        "min_orders_total",
        "max_orders_total",
    }
)
NO_ACTION = "monitor"
# Features carried into the list as they are: what the action rules read, and context for the call.
CONTEXT_FEATURES = (
    "overdue_ratio", "last_bad_experience_recovered", "last_order_went_wrong", "orders_total",
    "days_since_first_order", "loyalty_member",
)  # fmt: skip


@dataclass(frozen=True)
class ActionRule:
    """A suggested action and the conditions a customer must all meet; the first matching rule wins."""

    name: str
    conditions: dict[str, Any]

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ActionRule:
        values = dict(values)
        name = values.pop("action", None)
        if not name:
            raise ValueError(f"score.actions: every rule needs an `action` name, got {values}")
        unknown = set(values) - ACTION_CONDITIONS
        if unknown:
            raise ValueError(f"score.actions rule {name!r}: unknown conditions {sorted(unknown)}; "
                             f"known: {sorted(ACTION_CONDITIONS)}")  # fmt: skip
        return cls(str(name), values)


@dataclass(frozen=True)
class RiskParams:
    """The `score` block of params.yaml (file locations come from the command line)."""

    # null: the end of the day of the data's latest event, capped at the export time.
    as_of: str | None = None
    # Probability thresholds of the tiers; below `medium` is low.
    tiers: dict[str, float] = field(default_factory=lambda: {"high": 0.7, "medium": 0.4})
    # Filters of the written list; null keeps everyone.
    bad_experience_within_days: int | None = None
    min_probability: float = 0.0
    top_k: int | None = None
    # A feature whose PSI against the training rows exceeds this is flagged in the report.
    psi_warning: float = 0.2
    # A model deployed longer ago than this at as-of is refused (null: no limit).
    max_model_age_days: float | None = 90.0
    actions: tuple[ActionRule, ...] = ()

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RiskParams:
        values = dict(values)
        rules = tuple(ActionRule.from_dict(rule) for rule in values.pop("actions", []) or [])
        params = from_block(cls, {**values, "actions": rules}, "score")
        if not 0.0 <= params.tiers.get("medium", 0.0) <= params.tiers.get("high", 1.0) <= 1.0:
            raise ValueError(f"score.tiers must satisfy 0 <= medium <= high <= 1, got {params.tiers}")
        return params


RISK_LIST_COLUMNS = (
    "rank", "customer_id", "churn_probability", "risk_tier", "value_at_risk", "expected_future_value",
    "last_order_at", "overdue_ratio", "last_bad_experience", "last_bad_experience_at", "last_bad_experience_days_ago",
    "last_bad_experience_recovered", "last_order_went_wrong", "open_tickets", "reason_1", "reason_2", "reason_3",
    "suggested_action", "orders_total", "days_since_first_order", "loyalty_member",
)  # fmt: skip
# How the CSV, read by people, rounds: probabilities to 3 decimals, money to cents, days to whole days elapsed.
CSV_DECIMALS = {"churn_probability": 3, "value_at_risk": 2, "expected_future_value": 2, "overdue_ratio": 1}
CSV_WHOLE_DAYS = ("last_bad_experience_days_ago", "days_since_first_order")


def assemble_risk_list(
    features: pd.DataFrame,
    probability: np.ndarray,
    last_bad: pd.DataFrame,
    as_of: pd.Timestamp,
    horizon_days: int,
    params: RiskParams,
) -> pd.DataFrame:
    """One row per customer, ranked by value at risk, without the reasons (see `with_reasons`). `features` and
    `last_bad` (last_bad_kind, last_bad_known_at) are indexed by customer_id."""
    risk = pd.DataFrame(index=features.index)
    risk["churn_probability"] = probability
    risk["risk_tier"] = risk_tiers(risk["churn_probability"], params.tiers)
    risk["expected_future_value"] = expected_future_value(features, horizon_days)
    risk["value_at_risk"] = risk["churn_probability"] * risk["expected_future_value"]
    risk["last_order_at"] = (as_of - pd.to_timedelta(features["days_since_last_order"], unit="D")).dt.round("s")
    bad = last_bad.reindex(features.index)
    risk["last_bad_experience"] = bad["last_bad_kind"]
    risk["last_bad_experience_at"] = bad["last_bad_known_at"]
    risk["last_bad_experience_days_ago"] = (as_of - bad["last_bad_known_at"]).dt.total_seconds() / 86_400
    risk["open_tickets"] = features["tickets_open"]
    for column in CONTEXT_FEATURES:
        risk[column] = features[column]
    risk["suggested_action"] = suggested_actions(risk, params.actions)
    risk = risk.rename_axis("customer_id").reset_index()
    risk = risk.sort_values(
        ["value_at_risk", "churn_probability", "customer_id"], ascending=[False, False, True], ignore_index=True
    )
    risk["rank"] = np.arange(1, len(risk) + 1)
    return risk[[column for column in RISK_LIST_COLUMNS if not column.startswith("reason_")]]


def for_people(risk: pd.DataFrame) -> pd.DataFrame:
    """The risk list rounded for reading (CSV_DECIMALS, CSV_WHOLE_DAYS); the Parquet keeps full precision."""
    rounded = risk.copy()
    for column, decimals in CSV_DECIMALS.items():
        rounded[column] = rounded[column].astype(float).round(decimals)
    for column in CSV_WHOLE_DAYS:
        rounded[column] = whole_days(rounded[column]).astype("Int64")
    return rounded


def whole_days(days: pd.Series) -> pd.Series:
    """Whole days elapsed (missing stays missing)."""
    return np.floor(days.astype(float))


def with_reasons(risk: pd.DataFrame, reasons: pd.DataFrame) -> pd.DataFrame:
    """The risk list with its reason_1..3 columns (`reasons` is indexed by customer_id), in the list's order."""
    joined = risk.join(reasons, on="customer_id")
    return joined[list(RISK_LIST_COLUMNS)]


def expected_future_value(features: pd.DataFrame, horizon_days: int) -> pd.Series:
    """Mean order value x own order rate x horizon (see the module docstring); 0 without a qualifying order."""
    days = np.maximum(features["days_since_first_order"].astype(float), float(horizon_days))
    rate = features["orders_total"].astype(float) / days
    return (features["value_mean"].astype(float).fillna(0.0) * rate * horizon_days).fillna(0.0)


def risk_tiers(probability: pd.Series, tiers: dict[str, float]) -> pd.Series:
    labels = np.where(probability >= tiers["high"], "high", np.where(probability >= tiers["medium"], "medium", "low"))
    return pd.Series(
        pd.Categorical(labels, categories=["low", "medium", "high"], ordered=True), index=probability.index
    )


def suggested_actions(risk: pd.DataFrame, rules: tuple[ActionRule, ...]) -> pd.Series:
    """The first rule each customer meets, else "monitor"."""
    action = pd.Series(NO_ACTION, index=risk.index, dtype=object)
    undecided = pd.Series(True, index=risk.index)
    for rule in rules:
        matches = undecided & _meets(risk, rule.conditions)
        action[matches] = rule.name
        undecided &= ~matches
    return action


def _meets(risk: pd.DataFrame, conditions: dict[str, Any]) -> pd.Series:
    met = pd.Series(True, index=risk.index)
    for key, value in conditions.items():
        if key == "min_probability":
            met &= risk["churn_probability"] >= value
        elif key == "bad_experience_within_days":
            met &= whole_days(risk["last_bad_experience_days_ago"]).fillna(np.inf) <= value
        elif key == "unresolved":
            unresolved = _open_complaint(risk) | ~_flag(risk["last_bad_experience_recovered"])
            met &= unresolved if value else ~unresolved
        elif key == "open_complaint":
            met &= _open_complaint(risk) == bool(value)
        elif key == "last_order_went_wrong":
            met &= _flag(risk["last_order_went_wrong"]) == bool(value)
        elif key == "min_overdue_ratio":
            met &= risk["overdue_ratio"].fillna(0.0) >= value
        elif key == "loyalty_member":
            # Unknown membership (a shop without a loyalty programme in its data) meets neither true nor false.
            met &= (risk["loyalty_member"].astype("boolean") == bool(value)).fillna(False).astype(bool)
        elif key == "min_orders_total":
            met &= risk["orders_total"] >= value
        elif key == "max_orders_total":
            met &= risk["orders_total"] <= value
    return met


def _open_complaint(risk: pd.DataFrame) -> pd.Series:
    # Without a tickets table the column is all missing (no complaint is known to be open).
    return pd.to_numeric(risk["open_tickets"], errors="coerce").fillna(0) > 0


def _flag(values: pd.Series) -> pd.Series:
    """A true/false column as bool; unknown (no bad experience, or no tickets in the data) is false."""
    return values.astype("boolean").fillna(False).astype(bool)


def filter_risk_list(
    risk: pd.DataFrame, bad_experience_within_days: int | None, min_probability: float, top_k: int | None
) -> pd.DataFrame:
    """Keep customers with a bad experience in the last N days and at least the minimum probability, then the top
    k by value at risk; ranks stay those of the whole population."""
    kept = risk[risk["churn_probability"] >= min_probability]
    if bad_experience_within_days is not None:
        kept = kept[whole_days(kept["last_bad_experience_days_ago"]) <= bad_experience_within_days]
    if top_k is not None:
        kept = kept.head(top_k)
    return kept
