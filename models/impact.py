"""What each kind of bad experience costs the shop, and what fast complaint resolution wins back.

**Question.** The unit is an order; the outcome is whether its customer orders again (an order of any status)
within `horizon_days` of it; the treatment is a kind of bad experience on that order. The estimand is the average
effect on the treated (ATT): among the orders that had the experience, how much more (less) often the customer
came back than they would have, had the order gone fine.

**Method: AIPW (doubly robust) for the ATT with cross-fitting, written here on scikit-learn-style LightGBM
models.** Per kind, a propensity model e(x) = P(treated | x) and an outcome model m0(x) = P(ordered again | x,
not treated) are fitted on folds of customers (every order of a customer in one fold) and predicted on the fold
held out; the ATT is

    theta = sum_i w_i [T_i (Y_i - m0_i) - (1 - T_i) e_i / (1 - e_i) (Y_i - m0_i)] / sum_i w_i T_i

(Chernozhukov et al. 2018, the ATT score of double machine learning; consistent when either model is right). Its
95 % interval uses the influence function summed per customer (cluster-robust: one customer's orders share their
fate), which cross-fitting makes valid with flexible models. Why not EconML or DoWhy: neither gives the ATT with
customer-clustered errors and case-control weights out of the box, EconML pins scikit-learn and NumPy ranges that
would move this project's lock, and the estimator is twenty lines whose every step the tests check against the
generator's truth. LightGBM is already the project's model; scikit-learn gives the fold logic.

**Speed.** Control orders are sampled (`controls_per_treated` per treated order, at random) and weighted by the
inverse of their sampling share, which leaves the estimator unbiased; above `max_orders` a stable sample of
customers is analysed (reported).

**Designs** (what an order is compared with):
- a failure (late, retailer cancellation, wrong item, damaged, retailer-fault return, any return) against orders
  with no failure at all, the treated having no failure of another kind (a wrong item and its return are one
  failure); the adjustment set is what was known before the order (HISTORY_COLUMNS) and its context
  (CONTEXT_COLUMNS: value, channel, payment method, loyalty, country, month);
- a complaint or a low review (the customer's response to a failure) against orders without one, adjusting in
  addition for the failures on the same order, which came before the response: the estimate is what the response
  itself adds, not the failure behind it; only combinations of failures that both groups have are compared (a
  wrong item that was not returned shows only through a complaint about it, so it has no complaint-free twin);
- service recovery: among orders with a failure and a complaint, resolved within `recovery_days` against later (or
  never), adjusting as for a response.

**Checks.** Overlap (propensity ranges, the share trimmed above 1 - `trim`); refutations: a placebo treatment
drawn at random among the controls (its interval should cover 0), a random common cause added to the adjustment
set (the estimate should move by less than its standard error), and two disjoint halves of the customers (their
95 % intervals should overlap; the z of the difference is reported too); the unadjusted difference beside each
estimate.

**Money.** Per kind: orders it hit per month (the twelve months before the last observed horizon) x the effect x
what a returning customer spends over the next horizon, from the customer's own pace: their mean order value so
far (this order included) times the orders their pace gives in `horizon_days` (orders before this one per day
since the first, counting at least `horizon_days`, as the risk list's expected_future_value; at least one order).
The interval carries the effect's interval only.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from features.blocks import from_block
from features.impact import CONTEXT_COLUMNS, FAILURE_KINDS, HISTORY_COLUMNS, RESPONSE_KINDS

log = logging.getLogger(__name__)

Z95 = 1.959963984540054
CATEGORICAL = ("channel", "payment_method", "loyalty_member", "country")
# A failure and its return are one failure: the kinds a treated order may carry besides its own.
FAMILY: dict[str, frozenset[str]] = {
    "late_delivery": frozenset({"late_delivery"}),
    "retailer_cancellation": frozenset({"retailer_cancellation"}),
    "wrong_item": frozenset({"wrong_item", "retailer_return", "any_return"}),
    "damaged": frozenset({"damaged", "retailer_return", "any_return"}),
    "retailer_return": frozenset({"retailer_return", "wrong_item", "damaged", "any_return"}),
    "any_return": frozenset({"any_return", "retailer_return", "wrong_item", "damaged"}),
}
RECOVERY = "fast_recovery"
DAYS_PER_MONTH = 365.25 / 12


@dataclass(frozen=True)
class ImpactParams:
    """The `impact` block of params.yaml."""

    folds: int = 2
    controls_per_treated: float | None = 3.0
    max_orders: int | None = 500_000
    trim: float = 0.01
    min_treated: int = 50
    refutations: bool = True
    n_estimators: int = 80
    learning_rate: float = 0.1
    num_leaves: int = 15
    min_child_samples: int = 50
    num_threads: int = 1
    seed: int = 42
    oracle: bool = True

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ImpactParams:
        params = from_block(cls, values, "impact")
        if params.folds < 2:
            raise ValueError(f"impact.folds = {params.folds}: cross-fitting needs at least 2 folds")
        if not 0.0 <= params.trim < 0.5:
            raise ValueError(f"impact.trim = {params.trim}: a share in [0, 0.5)")
        if params.controls_per_treated is not None and params.controls_per_treated <= 0:
            raise ValueError("impact.controls_per_treated must be positive, or null to keep every control order")
        if params.max_orders is not None and params.max_orders < 1000:
            raise ValueError(f"impact.max_orders = {params.max_orders}: at least 1000, or null for no limit")
        return params


@dataclass
class AttFit:
    """One AIPW estimate. `kept` marks the rows inside the overlap; `propensity` is out of fold."""

    att: float
    se: float
    treated: int
    controls: int
    propensity: np.ndarray
    control_outcome: np.ndarray
    kept: np.ndarray

    @property
    def ci(self) -> tuple[float, float]:
        return (self.att - Z95 * self.se, self.att + Z95 * self.se)


@dataclass
class Design:
    """The rows, treatment and adjustment set of one estimand."""

    name: str
    rows: pd.DataFrame
    treated: np.ndarray
    covariates: list[str]
    comparison: str
    # control orders never sampled away (those with a failure, in the designs that adjust for failures: rare
    # strata the outcome model must see)
    keep_controls: np.ndarray | None = None
    # treated orders left out for want of comparable controls (no overlap on the failures)
    left_out: int = 0


@dataclass
class ImpactResult:
    report: dict[str, Any]
    # estimand -> order ids of the treated orders it averages over (for the synthetic shop's truth)
    treated_orders: dict[str, np.ndarray] = field(default_factory=dict)


def stable_unit(ids: pd.Series, salt: str) -> np.ndarray:
    """A uniform number in [0, 1) per id, the same on every run and machine (a hash, not a random draw)."""
    codes = pd.util.hash_pandas_object(ids.astype("string"), index=False, hash_key=_hash_key(salt))
    return (codes.to_numpy() >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def _hash_key(salt: str) -> str:
    return hashlib.sha256(salt.encode()).hexdigest()[:16]


def model_matrix(rows: pd.DataFrame, covariates: list[str]) -> pd.DataFrame:
    """Numbers as floats, categories as pandas categories (LightGBM splits on them natively)."""
    matrix = {}
    for column in covariates:
        values = rows[column]
        if column in CATEGORICAL:
            matrix[column] = values.astype("string").astype("category")
        else:
            matrix[column] = pd.to_numeric(values, errors="coerce").astype("float64")
    return pd.DataFrame(matrix, index=rows.index)


def usable_covariates(orders: pd.DataFrame, extra: tuple[str, ...] = ()) -> list[str]:
    """The adjustment columns that hold any value (a source without channels has none to adjust for)."""
    columns = [*HISTORY_COLUMNS, *CONTEXT_COLUMNS, *extra]
    return [c for c in columns if c in orders.columns and orders[c].notna().any() and orders[c].nunique() > 1]


def _classifier(params: ImpactParams) -> Any:
    from lightgbm import LGBMClassifier

    return LGBMClassifier(
        n_estimators=params.n_estimators,
        learning_rate=params.learning_rate,
        num_leaves=params.num_leaves,
        min_child_samples=params.min_child_samples,
        max_bin=63,
        subsample_freq=0,
        n_jobs=params.num_threads,
        random_state=params.seed,
        verbose=-1,
    )


def _fit_predict(
    x: pd.DataFrame, target: np.ndarray, weight: np.ndarray, fit_rows: np.ndarray, predict_rows: np.ndarray,
    params: ImpactParams,
) -> np.ndarray:  # fmt: skip
    """P(target | x) on `predict_rows` from a model fitted on `fit_rows` (a constant when one class is seen)."""
    y = target[fit_rows]
    if y.min() == y.max():
        return np.full(int(predict_rows.sum()), float(y[0]))
    model = _classifier(params).fit(x[fit_rows], y.astype(int), sample_weight=weight[fit_rows])
    return np.asarray(model.predict_proba(x[predict_rows])[:, 1], dtype=float)


def aipw_att(
    x: pd.DataFrame, treated: np.ndarray, outcome: np.ndarray, customers: pd.Series, weight: np.ndarray,
    params: ImpactParams,
) -> AttFit:  # fmt: skip
    """The ATT by AIPW with cross-fitting over folds of customers and a customer-clustered standard error."""
    treated = np.asarray(treated, dtype=bool)
    y = np.asarray(outcome, dtype=float)
    if treated.all() or not treated.any():
        raise ValueError("the ATT needs treated and control orders")
    fold = np.minimum((stable_unit(customers, f"fold{params.seed}") * params.folds).astype(int), params.folds - 1)
    propensity = np.empty(len(y))
    control_outcome = np.empty(len(y))
    for k in range(params.folds):
        held_out = fold == k
        fitting = ~held_out
        propensity[held_out] = _fit_predict(x, treated, weight, fitting, held_out, params)
        control_outcome[held_out] = _fit_predict(x, y, weight, fitting & ~treated, held_out, params)
    kept = propensity <= 1.0 - params.trim
    e = np.clip(propensity, 1e-6, 1.0 - max(params.trim, 1e-6))
    residual = y - control_outcome
    t = treated.astype(float)
    numerator = kept * weight * (t * residual - (1 - t) * e / (1 - e) * residual)
    denominator = kept * weight * t
    att = float(numerator.sum() / denominator.sum())
    influence = (numerator - att * denominator) / denominator.sum()
    return AttFit(
        att=att,
        se=_cluster_se(influence, customers),
        treated=int((treated & kept).sum()),
        controls=int((~treated & kept).sum()),
        propensity=propensity,
        control_outcome=control_outcome,
        kept=kept,
    )


def _att_on(
    part: np.ndarray, treated: np.ndarray, y: np.ndarray, customers: pd.Series, weight: np.ndarray, fit: AttFit,
    params: ImpactParams,
) -> dict[str, Any]:  # fmt: skip
    """The AIPW ATT on the rows `part` (a subset of customers) from the cross-fitted predictions of `fit`."""
    keep = part & fit.kept
    e = np.clip(fit.propensity[keep], 1e-6, 1.0 - max(params.trim, 1e-6))
    t = treated[keep].astype(float)
    residual = y[keep] - fit.control_outcome[keep]
    numerator = weight[keep] * (t * residual - (1 - t) * e / (1 - e) * residual)
    denominator = weight[keep] * t
    att = float(numerator.sum() / denominator.sum())
    se = _cluster_se((numerator - att * denominator) / denominator.sum(), customers[keep].reset_index(drop=True))
    return {"att": att, "ci": [att - Z95 * se, att + Z95 * se], "treated_orders": int(t.sum())}


def _cluster_se(influence: np.ndarray, customers: pd.Series) -> float:
    per_customer = pd.Series(influence).groupby(customers.to_numpy()).sum().to_numpy()
    return float(np.sqrt(np.sum(per_customer**2)))


def unadjusted_difference(
    treated: np.ndarray, outcome: np.ndarray, customers: pd.Series, weight: np.ndarray
) -> tuple[float, tuple[float, float]]:
    """Return rate of the treated minus that of the controls (weighted), with a customer-clustered 95 % interval."""
    t = np.asarray(treated, dtype=float)
    y = np.asarray(outcome, dtype=float)
    w1, w0 = weight * t, weight * (1 - t)
    mean1, mean0 = (w1 * y).sum() / w1.sum(), (w0 * y).sum() / w0.sum()
    influence = w1 * (y - mean1) / w1.sum() - w0 * (y - mean0) / w0.sum()
    se = _cluster_se(influence, customers)
    diff = float(mean1 - mean0)
    return diff, (diff - Z95 * se, diff + Z95 * se)


def sampled_design(design: Design, params: ImpactParams, salt: str) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Every treated order and a random share of the controls, with inverse-share weights."""
    rows, treated = design.rows, design.treated
    n_treated, n_controls = int(treated.sum()), int((~treated).sum())
    share = 1.0
    if params.controls_per_treated is not None and n_controls:
        share = min(1.0, params.controls_per_treated * n_treated / n_controls)
    always = np.zeros(len(rows), dtype=bool) if design.keep_controls is None else design.keep_controls
    if params.controls_per_treated is not None and n_controls:
        sampled = int((~treated & ~always).sum())
        wanted = params.controls_per_treated * n_treated - int((~treated & always).sum())
        share = min(1.0, max(wanted, params.controls_per_treated * n_treated / 2) / max(sampled, 1))
    keep = treated | always | (stable_unit(rows["order_id"], f"controls{salt}{params.seed}") < share)
    weight = np.where(treated | always, 1.0, 1.0 / share)[keep]
    return rows.loc[keep], treated[keep], weight


def estimate(design: Design, params: ImpactParams, refute: bool = True) -> tuple[dict[str, Any], np.ndarray]:
    """The ATT of one design with overlap, unadjusted difference and refutations; returns the report entry and the
    order ids of the treated orders it averages over."""
    rows, treated, weight = sampled_design(design, params, design.name)
    x = model_matrix(rows, design.covariates)
    y = rows["ordered_again"].to_numpy(dtype=bool)
    customers = rows["customer_id"].reset_index(drop=True)
    x = x.reset_index(drop=True)
    fit = aipw_att(x, treated, y, customers, weight, params)
    unadjusted, unadjusted_ci = unadjusted_difference(treated, y, customers, weight)
    treated_rate = float(y[treated & fit.kept].mean())
    entry: dict[str, Any] = {
        "comparison": design.comparison,
        "treated_orders": fit.treated,
        "control_orders": int((~design.treated).sum()),
        "control_orders_sampled": fit.controls,
        "att": fit.att,
        "ci": list(fit.ci),
        "se": fit.se,
        "return_rate_treated": treated_rate,
        "return_rate_had_it_gone_fine": treated_rate - fit.att,
        "unadjusted": unadjusted,
        "unadjusted_ci": list(unadjusted_ci),
        "overlap": {**overlap_summary(fit, treated), "treated_without_comparable_failures": design.left_out},
        "adjusted_for": design.covariates,
    }
    if refute and params.refutations:
        entry["refutations"] = refutations(x, treated, y, customers, weight, fit, params)
    ids = rows["order_id"].to_numpy()[treated & fit.kept]
    return entry, ids


def overlap_summary(fit: AttFit, treated: np.ndarray) -> dict[str, Any]:
    def spread(values: np.ndarray) -> dict[str, float]:
        if values.size == 0:
            return {}
        q = np.quantile(values, [0.0, 0.01, 0.5, 0.99, 1.0])
        return dict(zip(("min", "p01", "median", "p99", "max"), map(float, q), strict=True))

    return {
        "propensity_treated": spread(fit.propensity[treated]),
        "propensity_controls": spread(fit.propensity[~treated]),
        "trimmed_share": float(1.0 - fit.kept.mean()),
        "trimmed_treated_share": float(1.0 - fit.kept[treated].mean()),
    }


def refutations(
    x: pd.DataFrame, treated: np.ndarray, y: np.ndarray, customers: pd.Series, weight: np.ndarray, fit: AttFit,
    params: ImpactParams,
) -> dict[str, Any]:  # fmt: skip
    """Placebo treatment, random common cause, and two disjoint halves of the customers."""
    rng = np.random.default_rng(params.seed)
    # placebo: a fake treatment among the controls only, with the real treated share; nothing real differs
    controls = ~treated
    share = float((weight * treated).sum() / weight.sum())
    fake = rng.random(int(controls.sum())) < max(share, 0.02)
    placebo = aipw_att(
        x[controls].reset_index(drop=True), fake, y[controls], customers[controls].reset_index(drop=True),
        weight[controls], params,
    )  # fmt: skip
    low, high = placebo.ci
    # random common cause: an extra covariate of noise must not move the estimate
    noisy = x.assign(random_common_cause=rng.normal(size=len(x)))
    moved = aipw_att(noisy, treated, y, customers, weight, params)
    # halves: two disjoint samples of customers, on the same cross-fitted predictions
    half = stable_unit(customers, f"halves{params.seed}") < 0.5
    halves = [_att_on(part, treated, y, customers, weight, fit, params) for part in (half, ~half)]
    gap = abs(halves[0]["att"] - halves[1]["att"])
    se = [(h["ci"][1] - h["att"]) / Z95 for h in halves]
    # agree within their intervals: the two 95 % intervals overlap; the stricter test of the difference is reported
    overlap = bool(halves[0]["ci"][0] <= halves[1]["ci"][1] and halves[1]["ci"][0] <= halves[0]["ci"][1])
    z = gap / float(np.hypot(*se)) if any(se) else 0.0
    return {
        "placebo_treatment": {"att": placebo.att, "ci": [low, high], "passed": bool(low <= 0.0 <= high)},
        "random_common_cause": {
            "att": moved.att,
            "change": moved.att - fit.att,
            "passed": bool(abs(moved.att - fit.att) <= fit.se),
        },
        "halves": {
            "estimates": halves,
            "difference": gap,
            "difference_z": z,
            "difference_within_95": bool(z <= Z95),
            "passed": overlap,
        },
    }


def failure_design(orders: pd.DataFrame, kind: str, failures: list[str], covariates: list[str]) -> Design:
    """Orders with this failure (and none outside its family) against orders with no failure at all."""
    flags = orders[failures].to_numpy(dtype=bool)
    any_failure = flags.any(axis=1)
    outside = [i for i, name in enumerate(failures) if name not in FAMILY[kind]]
    clean_otherwise = ~flags[:, outside].any(axis=1) if outside else np.ones(len(orders), dtype=bool)
    treated = orders[kind].to_numpy(dtype=bool) & clean_otherwise
    rows = treated | ~any_failure
    return Design(kind, orders.loc[rows], treated[rows], covariates, "orders that went fine")


def response_design(orders: pd.DataFrame, kind: str, failures: list[str], covariates: list[str]) -> Design:
    """Orders with this response against orders without, the order's own failures adjusted for, within the
    combinations of failures that both groups have (`common_failures`)."""
    treated = orders[kind].to_numpy(dtype=bool)
    rows = common_failures(orders, treated, failures)
    return Design(
        kind, orders.loc[rows], treated[rows], [*covariates, *failures],
        "orders with the same failures and no " + kind.replace("_", " "),
        keep_controls=orders.loc[rows, failures].to_numpy(dtype=bool).any(axis=1),
        left_out=int((~rows & treated).sum()),
    )  # fmt: skip


def common_failures(orders: pd.DataFrame, treated: np.ndarray, failures: list[str], least: int = 5) -> np.ndarray:
    """Orders whose combination of failures has at least `least` treated and `least` control orders. A failure the
    data shows only through the treatment itself (a wrong item neither returned nor complained about is invisible,
    so "wrong item, not returned" exists only among complaints) has nothing to compare with: exact overlap on the
    failures, before the propensity model smooths over it."""
    if not failures:
        return np.ones(len(orders), dtype=bool)
    stratum = pd.Series(orders[failures].to_numpy(dtype=np.int64) @ (1 << np.arange(len(failures))))
    counts = pd.crosstab(stratum, treated)
    both = counts.index[(counts.get(True, 0) >= least) & (counts.get(False, 0) >= least)]
    return np.asarray(stratum.isin(both).to_numpy(), dtype=bool)


def recovery_design(orders: pd.DataFrame, failures: list[str], covariates: list[str], fast: bool = True) -> Design:
    """Orders with a failure and a complaint: resolved within recovery_days (fast=True treats those) or not."""
    any_failure = orders[failures].to_numpy(dtype=bool).any(axis=1)
    complained = orders["complaint"].to_numpy(dtype=bool) & orders["ticket_fast"].notna().to_numpy()
    candidates = orders.loc[any_failure & complained]
    resolved_fast = candidates["ticket_fast"].astype(bool).to_numpy()
    treated = resolved_fast if fast else ~resolved_fast
    rows = common_failures(candidates, treated, failures)
    return Design(
        RECOVERY, candidates.loc[rows], treated[rows], [*covariates, *failures],
        "complaints on failed orders resolved later or never", left_out=int((~rows & treated).sum()),
    )  # fmt: skip


def returning_customer_value(rows: pd.DataFrame, horizon_days: int) -> np.ndarray:
    """What the customer of each order spends over the next horizon if they return, from their own pace."""
    previous = rows["prev_orders"].to_numpy(dtype=float)
    prior_mean = rows["prev_value_mean"].to_numpy(dtype=float)
    value = rows["order_value"].to_numpy(dtype=float)
    mean_value = np.where(previous > 0, (np.nan_to_num(prior_mean) * previous + value) / (previous + 1), value)
    tenure = np.maximum(rows["days_since_first_order"].to_numpy(dtype=float), float(horizon_days))
    expected_orders = np.maximum(1.0, previous / tenure * horizon_days)
    return np.asarray(mean_value * expected_orders, dtype=float)


def per_month(flagged: np.ndarray, ordered_at: pd.Series, end: pd.Timestamp) -> float:
    """Flagged orders per month over the twelve months before `end`."""
    recent = (ordered_at >= end - pd.Timedelta(days=365)).to_numpy() & (ordered_at < end).to_numpy()
    return float((flagged & recent).sum() / 12.0)


def money(entry: dict[str, Any], rows: pd.DataFrame, flagged: np.ndarray, horizon_days: int, end: pd.Timestamp,
          sign: float = -1.0, share: float = 1.0) -> dict[str, Any]:  # fmt: skip
    """Orders hit per month x effect x value of a returning customer; sign -1 turns a fall in returns into a loss.
    `share`: the share of the shop's customers in `rows`, whose monthly count is scaled back to the whole shop."""
    monthly = per_month(flagged, rows["ordered_at"], end) / share
    value = float(np.mean(returning_customer_value(rows.loc[flagged], horizon_days))) if flagged.any() else 0.0
    low, high = sorted(sign * np.array(entry["ci"]) * monthly * value)
    return {
        "orders_per_month": monthly,
        "value_per_returning_customer": value,
        "revenue_per_month": sign * entry["att"] * monthly * value,
        "revenue_per_month_ci": [float(low), float(high)],
    }


def analyse(
    orders: pd.DataFrame,
    available: dict[str, bool],
    params: ImpactParams,
    horizon_days: int,
    refute: bool = True,
    share: float = 1.0,
) -> ImpactResult:
    """Every available kind and service recovery; kinds the data cannot show are listed as unavailable. `share` is
    the share of the shop's customers `orders` holds (a sample): orders per month are scaled back to the shop."""
    before = len(orders)
    orders = sample_customers(orders, params)
    share = share * (len(orders) / before if before else 1.0)
    end = orders["ordered_at"].max() if len(orders) else pd.Timestamp("1970-01-01")
    failures = [k for k in FAILURE_KINDS if available.get(k)]
    covariates = usable_covariates(orders)
    kinds: dict[str, Any] = {}
    ids: dict[str, np.ndarray] = {}
    for kind in (*FAILURE_KINDS, *RESPONSE_KINDS):
        if not available.get(kind):
            kinds[kind] = {"status": "unavailable", "reason": _unavailable_reason(kind)}
            continue
        if kind in FAILURE_KINDS:
            design = failure_design(orders, kind, failures, covariates)
        else:
            design = response_design(orders, kind, failures, covariates)
        entry, treated_ids = _estimate_or_skip(design, params, refute)
        if entry["status"] == "estimated":
            flagged = orders[kind].to_numpy(dtype=bool)
            entry["money"] = money(entry, orders, flagged, horizon_days, end, share=share)
            ids[kind] = treated_ids
        kinds[kind] = entry
    recovery = _recovery(orders, available, failures, covariates, params, horizon_days, end, refute, ids, share)
    report = {
        "orders_analysed": len(orders),
        "customer_share_analysed": share,
        "customers_analysed": int(orders["customer_id"].nunique()),
        "horizon_days": horizon_days,
        "period": {
            "first_order": orders["ordered_at"].min().isoformat() if len(orders) else None,
            "last_order": end.isoformat() if len(orders) else None,
        },
        "method": "AIPW (doubly robust) ATT, LightGBM nuisance models, "
        f"{params.folds}-fold cross-fitting by customer, customer-clustered 95% intervals",
        "kinds": kinds,
        "recovery": recovery,
        "ranking": ranking(kinds),
    }
    return ImpactResult(report, ids)


def _estimate_or_skip(design: Design, params: ImpactParams, refute: bool) -> tuple[dict[str, Any], np.ndarray]:
    n_treated, n_controls = int(design.treated.sum()), int((~design.treated).sum())
    if n_treated < params.min_treated or n_controls < params.min_treated:
        return {
            "status": "too_few",
            "reason": f"{n_treated} treated and {n_controls} control orders; impact.min_treated is "
            f"{params.min_treated}",
            "treated_orders": n_treated,
        }, np.array([], dtype=object)
    entry, ids = estimate(design, params, refute)
    return {"status": "estimated", **entry}, ids


def _recovery(
    orders: pd.DataFrame, available: dict[str, bool], failures: list[str], covariates: list[str],
    params: ImpactParams, horizon_days: int, end: pd.Timestamp, refute: bool, ids: dict[str, np.ndarray],
    share: float = 1.0,
) -> dict[str, Any]:  # fmt: skip
    if not available.get("complaint") or not failures or "ticket_fast" not in orders:
        return {"status": "unavailable", "reason": "needs tickets with resolution times and a failure kind"}
    design = recovery_design(orders, failures, covariates)
    entry, treated_ids = _estimate_or_skip(design, params, refute)
    if entry["status"] != "estimated":
        return entry
    ids[RECOVERY] = treated_ids
    fast = design.treated
    entry["money_now"] = money(entry, design.rows, fast, horizon_days, end, sign=1.0, share=share)
    slow_design = recovery_design(orders, failures, covariates, fast=False)
    slow_entry, _ = estimate(slow_design, params, refute=False)
    # the effect on the slow ones of being resolved fast (ATC) is minus their ATT of being slow
    flipped = {"att": -slow_entry["att"], "ci": sorted(-np.array(slow_entry["ci"]))}
    entry["effect_on_slow"] = {"att": flipped["att"], "ci": [float(v) for v in flipped["ci"]]}
    entry["money_if_all_fast"] = money(flipped, design.rows, ~fast, horizon_days, end, sign=1.0, share=share)
    return entry


def _unavailable_reason(kind: str) -> str:
    if kind == "any_return":
        return "not needed: returns carry reasons, so retailer_return separates the shop's faults"
    from features.impact import IMPACT_KINDS

    options = " or ".join(", ".join(option) for option in IMPACT_KINDS[kind])
    return f"the data has no {options}"


def ranking(kinds: dict[str, Any]) -> list[str]:
    """Estimated kinds by revenue lost per month, largest first."""
    estimated = [k for k, v in kinds.items() if v.get("status") == "estimated"]
    return sorted(estimated, key=lambda k: -kinds[k]["money"]["revenue_per_month"])


def sample_customers(orders: pd.DataFrame, params: ImpactParams) -> pd.DataFrame:
    """Above max_orders, the orders of a stable sample of customers (the same customers on every run)."""
    if params.max_orders is None or len(orders) <= params.max_orders:
        return orders.reset_index(drop=True)
    share = params.max_orders / len(orders)
    keep = stable_unit(orders["customer_id"], f"sample{params.seed}") < share
    log.info("impact: %d of %d orders (a stable %.0f%% of customers)", keep.sum(), len(orders), 100 * share)
    return orders.loc[keep].reset_index(drop=True)
