"""Reasons in plain words: the features that push a customer's risk up the most (LightGBM's SHAP values), each
written with the customer's own value, e.g. "late delivery 12 days ago" or "no order for 3.0x the usual gap".

Only features that say something a service lead can act on are reasons: lateness against the customer's own usual
gap (or, after a single order, the days since it), bad experiences, open complaints, low reviews and falling
activity, and each only when the customer's value says so (a late delivery counts when there was one, a review when
it was low). Plain facts (order counts, tenure, spend) raise or lower the risk too, but a call cannot change them:
they are the list's context columns. A missing value is never a reason.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

N_REASONS = 3

# Singular and plural.
KIND_WORDS = {
    "late_delivery": ("late delivery", "late deliveries"),
    "retailer_cancellation": ("order cancelled by the shop", "orders cancelled by the shop"),
    "retailer_return": ("return of a faulty or wrong item", "returns of faulty or wrong items"),
    "low_review": ("low review", "low reviews"),
    "complaint": ("complaint", "complaints"),
    "bad_experiences": ("bad experience", "bad experiences"),
    "returns": ("return", "returns"),
}
WINDOW_WORDS = {"90d": "in the last 90 days", "365d": "in the last year", "total": "in total"}
OVERDUE_SHOWN_UP_TO = 10.0
# A missing value that is itself a reason: what it means, in words.
MISSING_TEXTS = {
    "gap_mean_days": "only one order so far",
    "gap_std_days": "fewer than three orders so far",
    "overdue_ratio": "only one order so far",
    "days_since_last_order": "every order was cancelled",
    "days_since_last_return": "no return so far",
}

Template = Callable[[float | str], str]


def _count_template(words: tuple[str, str], when: str) -> Template:
    return lambda v: f"{v:.0f} {words[0] if v == 1 else words[1]} {when}"


def _whole_days(days: object) -> int:
    """Days elapsed as whole days, as the action windows count them: 30.4 days ago is 30 days ago."""
    return int(np.floor(float(days)))  # type: ignore[arg-type]


def _overdue(ratio: float | str) -> str:
    # Orders minutes apart (several invoices on one day) make the usual gap tiny and the ratio meaningless as a
    # number; past ten times the gap the customer is simply well overdue.
    if float(ratio) >= OVERDUE_SHOWN_UP_TO:
        return f"no order for over {OVERDUE_SHOWN_UP_TO:.0f}x the usual gap"
    return f"no order for {float(ratio):.1f}x the usual gap"


TEMPLATES: dict[str, Template] = {
    "days_since_last_order": lambda v: f"no order for {v:.0f} days",
    "days_since_first_order": lambda v: f"first order {v:.0f} days ago",
    "overdue_ratio": _overdue,
    "orders_30d": _count_template(("order", "orders"), "in the last 30 days"),
    "orders_90d": _count_template(("order", "orders"), "in the last 90 days"),
    "orders_365d": _count_template(("order", "orders"), "in the last year"),
    "orders_total": _count_template(("order", "orders"), "in total"),
    "value_sum": lambda v: f"spent {v:,.0f} in total",
    "value_mean": lambda v: f"average order {v:,.0f}",
    "value_max": lambda v: f"largest order {v:,.0f}",
    "value_365d": lambda v: f"spent {v:,.0f} in the last year",
    "gap_mean_days": lambda v: f"usually orders every {v:.0f} days",
    "gap_std_days": lambda v: f"irregular orders (gaps vary by {v:.0f} days)",
    "cancelled_share": lambda v: f"{v:.0%} of orders cancelled",
    "late_days_max_365d": lambda v: f"a delivery {v:.0f} days late in the last year",
    "bad_order_share": lambda v: f"{v:.0%} of orders went wrong",
    "last_order_went_wrong": lambda v: "the last order went wrong" if v else "the last order went fine",
    "days_since_last_bad_experience": lambda v: f"bad experience {_whole_days(v)} days ago",
    "review_score_mean": lambda v: f"average review {v:.1f} of 5",
    "review_score_min": lambda v: f"lowest review {v:.0f} of 5",
    "review_score_last": lambda v: f"last review {v:.0f} of 5",
    "tickets_open": lambda v: f"{v:.0f} complaint(s) still open",
    "ticket_resolution_days_mean": lambda v: f"complaints took {v:.1f} days to resolve",
    "last_bad_experience_recovered": lambda v: (
        "last bad experience was put right quickly" if v else "last bad experience was not put right quickly"
    ),
    "returned_order_share": lambda v: f"{v:.0%} of orders returned",
    "days_since_last_return": lambda v: f"returned an order {v:.0f} days ago",
    "tenure_days": lambda v: f"customer for {v:.0f} days",
    "loyalty_member": lambda v: "loyalty member" if v else "not a loyalty member",
    "country": lambda v: f"country {v}",
    "invoice_share": lambda v: f"pays by invoice {v:.0%} of the time",
    "channels_used": lambda v: f"uses {v:.0f} channel(s)",
    "main_channel": lambda v: f"mostly orders via {v}",
    "main_payment_method": lambda v: f"mostly pays by {v}",
    "orders_prev_90d": _count_template(("order", "orders"), "in the 90 days before the last 90"),
    "orders_90d_change": lambda v: f"{v:+.0f} orders against the 90 days before",
    "value_90d": lambda v: f"spent {v:,.0f} in the last 90 days",
    "value_90d_change": lambda v: f"spend {v:+,.0f} against the 90 days before",
    **{
        f"{kind}_{window}": _count_template(words, when)
        for kind, words in KIND_WORDS.items()
        for window, when in WINDOW_WORDS.items()
    },
}


Condition = Callable[[pd.DataFrame], pd.Series]
# Bad experiences by kind (the counts' feature names), and all kinds together.
BAD_KINDS = ("late_delivery", "retailer_cancellation", "retailer_return", "low_review", "complaint", "bad_experiences")
# A review at or below this says the customer was less than happy; a better one explains no risk.
REVIEW_CONCERN_MAX = 3.0


def _positive(name: str) -> Condition:
    return lambda features: features[name] > 0


def _negative(name: str) -> Condition:
    return lambda features: features[name] < 0


def _true(name: str) -> Condition:
    return lambda features: _flag(features[name]).eq(True)


def _false_after_a_bad_experience(name: str) -> Condition:
    return lambda features: _flag(features[name]).eq(False) & features["days_since_last_bad_experience"].notna()


def _low_review(name: str) -> Condition:
    return lambda features: features[name] <= REVIEW_CONCERN_MAX


def _flag(values: pd.Series) -> pd.Series:
    return values.astype("boolean")


# The features that can be a reason, each with the condition on the customer's value under which it is one.
REASON_WHEN: dict[str, Condition] = {
    "overdue_ratio": lambda features: features["overdue_ratio"] > 1,
    # Recency in days is a reason only without a usual gap to hold it against (a single order so far); with one,
    # it counts towards the overdue ratio (see `reason_contributions`).
    "days_since_last_order": lambda features: features["overdue_ratio"].isna(),
    **{f"{kind}_{window}": _positive(f"{kind}_{window}") for kind in BAD_KINDS for window in WINDOW_WORDS},
    "late_days_max_365d": _positive("late_days_max_365d"),
    "bad_order_share": _positive("bad_order_share"),
    "last_order_went_wrong": _true("last_order_went_wrong"),
    "days_since_last_bad_experience": lambda features: features["days_since_last_bad_experience"].notna(),
    "last_bad_experience_recovered": _false_after_a_bad_experience("last_bad_experience_recovered"),
    "tickets_open": _positive("tickets_open"),
    "review_score_mean": _low_review("review_score_mean"),
    "review_score_min": _low_review("review_score_min"),
    "review_score_last": _low_review("review_score_last"),
    "orders_90d_change": _negative("orders_90d_change"),
    "value_90d_change": _negative("value_90d_change"),
}


def reason_candidates(features: pd.DataFrame, columns: pd.Index) -> pd.DataFrame:
    """True where a feature of `columns` may be given as a reason for a customer (a row of `features`): it is in
    REASON_WHEN, its value is known and meets the condition there."""
    candidates = pd.DataFrame(False, index=features.index, columns=columns)
    for name in columns.intersection(list(REASON_WHEN), sort=False):
        met = REASON_WHEN[name](features)
        candidates[name] = features[name].notna().to_numpy() & met.fillna(False).to_numpy(dtype=bool)
    return candidates


def reason_contributions(contributions: pd.DataFrame, features: pd.DataFrame) -> pd.DataFrame:
    """The SHAP contributions that can be reasons, 0 elsewhere (`reason_candidates`). Recency is one reason: for a
    customer with a usual gap, the contribution of the days since the last order is added to the overdue ratio's
    (SHAP values add up), since the model may read lateness from either."""
    values = contributions.copy()
    if {"overdue_ratio", "days_since_last_order"} <= set(values.columns):
        has_gap = features["overdue_ratio"].notna().to_numpy()
        values.loc[has_gap, "overdue_ratio"] += values.loc[has_gap, "days_since_last_order"]
        values.loc[has_gap, "days_since_last_order"] = 0.0
    return values.where(reason_candidates(features, values.columns), 0.0)


def top_reasons(contributions: pd.DataFrame, features: pd.DataFrame, n: int = N_REASONS) -> pd.DataFrame:
    """Per customer, the n reasons (`reason_contributions`) with the largest positive SHAP contribution: columns
    reason_<i>_feature (None when fewer than i of them raise the risk)."""
    values = reason_contributions(contributions, features)
    names = values.columns.to_numpy()
    array = values.to_numpy()
    order = np.argsort(-array, axis=1, kind="stable")[:, :n]
    result = {}
    for rank in range(n):
        column = order[:, rank]
        raises = array[np.arange(len(array)), column] > 0
        result[f"reason_{rank + 1}_feature"] = np.where(raises, names[column], None)
    return pd.DataFrame(result, index=contributions.index)


def reason_texts(reasons: pd.DataFrame, features: pd.DataFrame, last_bad_kind: pd.Series | None = None) -> pd.DataFrame:
    """The reason features written in words with each customer's values: columns reason_1, reason_2, ...

    `describe` is called once per distinct value (and kind of the last bad experience) of each reason feature, not
    once per customer: counts and flags repeat across many customers."""
    if not features.index.equals(reasons.index):  # the loop below reads values by position
        features = features.loc[reasons.index]
    kinds = None
    if last_bad_kind is not None:
        aligned = last_bad_kind.reindex(reasons.index)
        kinds = aligned.astype(object).where(aligned.notna(), None).to_numpy()
    texts = {}
    for column in reasons.columns:
        feature_of = reasons[column].to_numpy()
        text = np.full(len(reasons), None, dtype=object)
        for name in pd.unique(feature_of[pd.notna(feature_of)]):
            rows = np.flatnonzero(feature_of == name)
            values = features[name].iloc[rows].to_numpy(dtype=object)
            kind_of = kinds[rows] if kinds is not None and name == "days_since_last_bad_experience" else None
            text[rows] = _described(name, values, kind_of)
        texts[column.removesuffix("_feature")] = pd.Series(text, index=reasons.index, dtype=object)
    return pd.DataFrame(texts, index=reasons.index)


def _described(name: str, values: np.ndarray, kinds: np.ndarray | None) -> list[str]:
    """`describe` of each value (with its kind), computed once per distinct pair."""
    pairs = zip(values, kinds if kinds is not None else [None] * len(values), strict=True)
    cache: dict[tuple[str, object], str] = {}
    written = []
    for value, kind in pairs:
        key = (repr(value), kind)  # repr: 0.0 and -0.0 (or 1 and True) are equal keys but may read differently
        if key not in cache:
            cache[key] = describe(name, value, kind)
        written.append(cache[key])
    return written


def describe(feature: str, value: object, last_bad_kind: str | None = None) -> str:
    """One feature value in words; the kind of the last bad experience names it when known."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return MISSING_TEXTS.get(feature, f"{feature.replace('_', ' ')} unknown")
    if feature == "days_since_last_bad_experience" and last_bad_kind:
        return f"{last_bad_kind.replace('_', ' ')} {_whole_days(value)} days ago"
    template = TEMPLATES.get(feature)
    if template is None:
        return f"{feature.replace('_', ' ')}: {value}"
    return template(value if isinstance(value, str) else shown(float(value)))  # type: ignore[arg-type]


def shown(value: float) -> float:
    """`value` rounded to 1e-6 before it is written in whole units: two engines' sums a last bit apart
    (-14.499999999999998 and -14.500000000000002) must read the same, not "-14" and "-15"."""
    return round(value, 6)
