"""The BTYD feature group: BG/NBD's quantities worked out by hand and checked against pymc-marketing's own functions,
the fit against pymc-marketing's, the inputs equal to the RFM features, and point in time: nothing at or after the
cutoff changes the group's values, nor does the order or naming of customers."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize
from scipy.special import betaln, digamma, expit, gammaln, hyp2f1
from test_btyd import simulate_bg_nbd

from features.btyd import (
    BTYD_COLUMNS,
    LOG_BOUND,
    BGNBDParams,
    btyd_history,
    btyd_part,
    btyd_quantities,
    btyd_values,
    expected_purchases,
    fit_bg_nbd,
    log_likelihood,
    log_likelihood_gradient,
    probability_alive,
    probability_no_purchase,
    rfm_summary,
    sorted_by_value,
)
from features.build import feature_dictionary, features_at, shared_tables
from features.cutoffs import FeatureParams
from features.inputs import inputs_from_frames
from features.leakage import feature_differences, known_before
from features.orders import order_summary

CUTOFF = pd.Timestamp("2024-06-01")
AS_OF = pd.Timestamp("2024-12-01")
PARAMS = FeatureParams(horizon_days=91, active_window_days=120)
HAND = BGNBDParams(r=1.0, alpha=2.0, a=2.0, b=3.0)


def test_quantities_by_hand() -> None:
    # x = 1 repeat purchase at t_x = 2 weeks, age T = 4 weeks: the odds of having dropped out after it are
    # a / (b + x - 1) * ((alpha + T) / (alpha + t_x))^(r + x) = 2/3 * (6/4)^2 = 1.5, so P(alive) = 1 / 2.5 = 0.4.
    # Silent for 2 more weeks if alive: ((alpha + T) / (alpha + T + 2))^(r + x) = (6/8)^2 = 0.5625; no purchase:
    # 0.6 + 0.4 * 0.5625 = 0.825. Without a repeat purchase the customer is alive, silent with (6/8)^1 = 0.75.
    x, t_x, age = np.array([1.0, 0.0]), np.array([2.0, 0.0]), np.array([4.0, 4.0])
    assert probability_alive(HAND, x, t_x, age) == pytest.approx([0.4, 1.0], rel=1e-12)
    assert probability_no_purchase(HAND, x, t_x, age, 2.0) == pytest.approx([0.825, 0.75], rel=1e-12)
    # Without a repeat purchase and with a = 2, b = 3, E[Y(t)] = (a + b - 1)/(a - 1) (1 - (6/8)^r 2F1(r, b; a + b - 1;
    # 2/8)); 2F1(1, 3; 4; z) = -3 (z^2/2 + z + ln(1 - z)) / z^3, so E = 4 (1 - 0.75 * 1.1366...) = 0.5898...
    z = 0.25
    hyp = -3.0 * (z**2 / 2 + z + np.log(1 - z)) / z**3
    assert expected_purchases(HAND, x[1:], t_x[1:], age[1:], 2.0) == pytest.approx(4.0 * (1 - 0.75 * hyp), rel=1e-9)


def test_expected_purchases_stay_finite_where_one_form_overflows() -> None:
    # A fit with almost no dropout (a and b in the hundreds and thousands, as on a young synthetic shop) and customers
    # a day old: the transformed series overflows there, the direct one does not; with many repeat purchases the
    # other way round. Both give the same value where both are finite.
    params = BGNBDParams(r=1.095, alpha=4.81, a=586.0, b=9961.0)
    x, t_x, age = np.array([0.0, 3.0, 50.0, 3.0]), np.array([0.0, 0.1, 0.15, 4.0]), np.array([0.12, 0.166, 0.166, 5.0])
    expected = expected_purchases(params, x, t_x, age, 90 / 7)
    assert np.isfinite(expected).all() and (expected > 0).all()
    # The direct form at the day-old customer without a repeat purchase, worked out with scipy:
    z = (90 / 7) / (params.alpha + 0.12 + 90 / 7)
    direct = (1 - z) ** params.r * hyp2f1(params.r, params.b, params.a + params.b - 1, z)
    assert expected[0] == pytest.approx((params.a + params.b - 1) / (params.a - 1) * (1 - direct), rel=1e-9)
    large = BGNBDParams(r=0.8, alpha=4.0, a=0.8, b=3.0)
    many = expected_purchases(large, np.array([400.0]), np.array([99.0]), np.array([100.0]), 13.0)
    assert np.isfinite(many).all() and many[0] > 0


def test_a_shop_without_repeat_purchases_gets_finite_values() -> None:
    # Nobody bought twice: a and b do not change the likelihood, the fit leaves them at 1, where the expected
    # purchases' formula divides 0 by 0; its value there is the limit from either side.
    rows = pd.DataFrame(
        {"customer_id": ["c1", "c2", "c3"], "orders_total": [1, 1, 1], "days_since_first_order": [10.0, 40.0, 90.0],
         "days_since_last_order": [10.0, 40.0, 90.0]}
    )  # fmt: skip
    quantities = btyd_quantities(rows, 91.0)
    assert np.isfinite(quantities.to_numpy()).all()
    assert (quantities["btyd_p_alive"] == 1.0).all()
    x, t_x, age = np.zeros(3), np.zeros(3), np.array([10.0, 40.0, 90.0]) / 7
    params = fit_bg_nbd(rfm_summary(rows))
    below, above = (expected_purchases(replace(params, a=a), x, t_x, age, 13.0) for a in (1.0 - 1e-4, 1.0 + 1e-4))
    assert quantities["btyd_expected_purchases"].to_numpy() == pytest.approx((below + above) / 2, rel=1e-3)


def test_log_likelihood_is_pymc_marketings() -> None:
    pytest.importorskip("pymc_marketing", reason="pymc-marketing (the btyd extra) is not installed")
    import pymc as pm
    from pymc_marketing.clv.distributions import BetaGeoNBD

    x, t_x, age = np.array([0.0, 1.0, 5.0, 40.0]), np.array([0.0, 2.0, 9.5, 30.0]), np.array([4.0, 4.0, 10.0, 52.0])
    dist = BetaGeoNBD.dist(a=HAND.a, b=HAND.b, r=HAND.r, alpha=HAND.alpha, T=age)
    library = pm.logp(dist, np.column_stack([t_x, x])).eval()
    # (pytensor's log-gamma agrees with scipy's to about 1e-8)
    assert log_likelihood(HAND, x, t_x, age) == pytest.approx(library, rel=1e-7)


@pytest.fixture(scope="module")
def pymc_fit() -> tuple[Any, pd.DataFrame]:
    pytest.importorskip("pymc_marketing", reason="pymc-marketing (the btyd extra) is not installed")
    from models.btyd import fit_bg_nbd as fit_with_pymc

    shop = simulate_bg_nbd(3000, r=0.8, alpha=4.0, a=0.8, b=3.0, seed=1)
    return fit_with_pymc(shop, seed=0), shop


def test_quantities_are_pymc_marketings_at_its_parameters(pymc_fit: tuple[Any, pd.DataFrame]) -> None:
    model, shop = pymc_fit
    params = BGNBDParams(*(float(model.fit_result[name].mean()) for name in ("r", "alpha", "a", "b")))
    summary = rfm_summary(shop.iloc[:300])
    x, t_x, age = (summary[name].to_numpy() for name in ("frequency", "recency", "T"))
    alive = model.expected_probability_alive(data=summary).to_numpy().reshape(-1)
    expected = model.expected_purchases(data=summary, future_t=13.0).to_numpy().reshape(-1)
    assert probability_alive(params, x, t_x, age) == pytest.approx(alive, rel=1e-6)
    assert expected_purchases(params, x, t_x, age, 13.0) == pytest.approx(expected, rel=1e-6)


def test_maximum_likelihood_agrees_with_pymc_marketings_map(pymc_fit: tuple[Any, pd.DataFrame]) -> None:
    model, shop = pymc_fit
    fitted = fit_bg_nbd(rfm_summary(shop))
    # pymc-marketing's MAP has weak priors; on 3,000 customers the estimates are within a few per cent.
    for name in ("r", "alpha", "a", "b"):
        assert getattr(fitted, name) == pytest.approx(float(model.fit_result[name].mean()), rel=0.05), name


def test_row_order_and_customer_names_change_no_byte() -> None:
    shop = simulate_bg_nbd(500, r=0.8, alpha=4.0, a=0.8, b=3.0, seed=4).drop(columns="purchases_after")
    quantities = btyd_quantities(shop, 91.0)
    renamed = shop.sample(frac=1.0, random_state=7).assign(customer_id=lambda rows: rows["customer_id"] + "-new")
    pd.testing.assert_frame_equal(btyd_quantities(renamed, 91.0).loc[shop.index], quantities, check_exact=True)
    assert list(quantities.columns) == list(BTYD_COLUMNS)
    assert quantities.notna().all().all()


def test_a_large_shop_is_fitted_on_a_sample_that_depends_on_no_order(monkeypatch: pytest.MonkeyPatch) -> None:
    import features.btyd

    summary = rfm_summary(simulate_bg_nbd(400, r=0.8, alpha=4.0, a=0.8, b=3.0, seed=5))
    everyone = fit_bg_nbd(summary)
    monkeypatch.setattr(features.btyd, "MAX_FIT_CUSTOMERS", 200)
    sampled = fit_bg_nbd(summary)
    assert sampled != everyone
    assert fit_bg_nbd(summary.iloc[::-1]) == sampled


# The formulation before session 10, verbatim: per customer throughout, the fit on a sorted copy of the summaries,
# both 2F1 forms everywhere. The shared terms, the terms computed once per run of x, the direct form only where the
# transformed one overflows and the quantities of the population only must give the same bytes.
def reference_log_likelihood(params: BGNBDParams, x: np.ndarray, t_x: np.ndarray, age: np.ndarray) -> np.ndarray:
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    common = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    alive = betaln(a, b + x) - betaln(a, b) - (r + x) * np.log(alpha + age)
    with np.errstate(divide="ignore", invalid="ignore"):
        dropped = betaln(a + 1.0, b + x - 1.0) - betaln(a, b) - (r + x) * np.log(alpha + t_x)
    return common + np.where(x > 0, np.logaddexp(alive, np.where(x > 0, dropped, -np.inf)), alive)


def reference_gradient(params: BGNBDParams, x: np.ndarray, t_x: np.ndarray, age: np.ndarray) -> np.ndarray:
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    repeat = x > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        alive = betaln(a, b + x) - (r + x) * np.log(alpha + age)
        dropped = betaln(a + 1.0, b + x - 1.0) - (r + x) * np.log(alpha + t_x)
        w = np.where(repeat, expit(alive - dropped), 1.0)
        d_r = digamma(r + x) - digamma(r) + np.log(alpha) - w * np.log(alpha + age) - (1 - w) * np.log(alpha + t_x)
        d_alpha = r / alpha - (r + x) * (w / (alpha + age) + (1 - w) / (alpha + t_x))
        d_norm_a, d_norm_b = digamma(a) - digamma(a + b), digamma(b) - digamma(a + b)
        d_a = w * (digamma(a) - digamma(a + b + x)) + (1 - w) * np.where(
            repeat, digamma(a + 1.0) - digamma(a + b + x), 0.0
        )
        d_b = w * (digamma(b + x) - digamma(a + b + x)) + (1 - w) * np.where(
            repeat, digamma(b + x - 1.0) - digamma(a + b + x), 0.0
        )
    per_param = np.array([d_r.sum(), d_alpha.sum(), d_a.sum() - len(x) * d_norm_a, d_b.sum() - len(x) * d_norm_b])
    return per_param * np.array([r, alpha, a, b])


def reference_fit(summary: pd.DataFrame, max_customers: int) -> BGNBDParams:
    values = summary[["frequency", "recency", "T"]].to_numpy(dtype=np.float64)
    values = values[np.lexsort((values[:, 2], values[:, 1], values[:, 0]))]
    if len(values) > max_customers:
        values = values[np.linspace(0, len(values) - 1, max_customers).round().astype(np.int64)]
    x, t_x, age = values[:, 0], values[:, 1], values[:, 2]

    def negative_mean(log_params: np.ndarray) -> tuple[float, np.ndarray]:
        params = BGNBDParams(*np.exp(log_params))
        value = -float(np.mean(reference_log_likelihood(params, x, t_x, age)))
        return value, -reference_gradient(params, x, t_x, age) / len(x)

    result = minimize(
        negative_mean, np.zeros(4), jac=True, method="L-BFGS-B", bounds=[(-LOG_BOUND, LOG_BOUND)] * 4,
        options={"maxiter": 500},
    )  # fmt: skip
    return BGNBDParams(*(float(value) for value in np.exp(result.x)))


def reference_quantities(params: BGNBDParams, summary: pd.DataFrame, future: float) -> dict[str, np.ndarray]:
    x, t_x, age = (summary[name].to_numpy() for name in ("frequency", "recency", "T"))
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    with np.errstate(divide="ignore", invalid="ignore"):
        log_odds_dead = np.log(a) - np.log(b + x - 1.0) + (r + x) * (np.log(alpha + age) - np.log(alpha + t_x))
    alive = np.where(x > 0, expit(-log_odds_dead), 1.0)
    a = a if abs(a - 1.0) > 1e-6 else 1.0 + 1e-6
    z = future / (alpha + age + future)
    with np.errstate(all="ignore"):
        transformed = (1.0 - z) ** (a - 1.0) * hyp2f1(a + b - 1.0 - r, a - 1.0, a + b + x - 1.0, z)
        direct = ((alpha + age) / (alpha + age + future)) ** (r + x) * hyp2f1(r + x, b + x, a + b + x - 1.0, z)
    silent_part = np.where(np.isfinite(transformed), transformed, direct)
    silent = ((params.alpha + age) / (params.alpha + age + future)) ** (params.r + x)
    return {
        "btyd_p_alive": alive,
        "btyd_expected_purchases": (a + b + x - 1.0) / (a - 1.0) * (1.0 - silent_part) * alive,
        "btyd_p_no_purchase": 1.0 - alive + alive * silent,
    }


def same_bits(left: np.ndarray, right: np.ndarray) -> bool:
    return left.dtype == right.dtype == np.float64 and np.array_equal(left.view(np.uint64), right.view(np.uint64))


def edge_history(n: int, seed: int) -> pd.DataFrame:
    """Simulated customers with ties (repeated summaries), single purchases (zero recency), repeat purchases on the
    day of the first (zero recency with a repeat), customers whose every order was cancelled, and one whose only
    order was placed at the cutoff's second (age 0)."""
    shop = simulate_bg_nbd(n, r=0.8, alpha=4.0, a=0.8, b=3.0, seed=seed).drop(columns="purchases_after")
    edges = pd.DataFrame(
        {"customer_id": [f"e{i}" for i in range(6)], "orders_total": [1, 1, 3, 0, 0, 1],
         "days_since_first_order": [30.0, 30.0, 12.5, 40.0, 3.0, 0.0],
         "days_since_last_order": [30.0, 30.0, 12.5, np.nan, np.nan, 0.0]}
    )  # fmt: skip
    return pd.concat([shop, shop.iloc[:40].assign(customer_id=lambda rows: rows["customer_id"] + "-tie"), edges],
                     ignore_index=True)  # fmt: skip


@pytest.mark.parametrize("max_customers", [20_000, 150])
def test_quantities_are_the_bytes_of_the_formulation_before(
    max_customers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    import features.btyd

    monkeypatch.setattr(features.btyd, "MAX_FIT_CUSTOMERS", max_customers)
    history = edge_history(400, seed=11)
    summary = rfm_summary(history)
    params = reference_fit(summary[history["orders_total"].to_numpy() > 0], max_customers)
    assert fit_bg_nbd(summary[history["orders_total"].to_numpy() > 0]) == params
    expected = reference_quantities(params, summary, 91.0 / 7)
    quantities = btyd_quantities(history, 91.0)
    for name in BTYD_COLUMNS:
        assert same_bits(quantities[name].to_numpy(), expected[name]), name
    # The quantities of a subset (the population) are the same bytes as those rows of everyone's.
    rows = np.flatnonzero(np.arange(len(summary)) % 3 != 1)
    x, t_x, age = (summary[name].to_numpy()[rows] for name in ("frequency", "recency", "T"))
    for name, values in btyd_values(params, x, t_x, age, 91.0 / 7).items():
        assert same_bits(values, expected[name][rows]), name


def test_the_direct_form_where_the_transformed_overflows_is_the_bytes_of_both_everywhere() -> None:
    # The parameters of test_expected_purchases_stay_finite_where_one_form_overflows: day-old customers overflow the
    # transformed series, the others do not.
    params = BGNBDParams(r=1.095, alpha=4.81, a=586.0, b=9961.0)
    summary = pd.DataFrame(
        {"frequency": [0.0, 3.0, 50.0, 3.0, 0.0, 1.0], "recency": [0.0, 0.1, 0.15, 4.0, 0.0, 2.0],
         "T": [0.12, 0.166, 0.166, 5.0, 30.0, 60.0]}
    )  # fmt: skip
    z = (90 / 7) / (params.alpha + summary["T"].to_numpy() + 90 / 7)
    transformed = (1.0 - z) ** (params.a - 1.0) * hyp2f1(
        params.a + params.b - 1.0 - params.r, params.a - 1.0, params.a + params.b + summary["frequency"] - 1.0, z
    )
    assert not np.isfinite(transformed).all() and np.isfinite(transformed).any()
    expected = reference_quantities(params, summary, 90 / 7)
    x, t_x, age = (summary[name].to_numpy() for name in ("frequency", "recency", "T"))
    assert same_bits(expected_purchases(params, x, t_x, age, 90 / 7), expected["btyd_expected_purchases"])
    assert same_bits(probability_no_purchase(params, x, t_x, age, 90 / 7), expected["btyd_p_no_purchase"])


def test_summaries_sorted_by_value_are_lexsorts_values() -> None:
    summary = rfm_summary(edge_history(300, seed=13))
    x, t_x, age = (summary[name].to_numpy() for name in ("frequency", "recency", "T"))
    order = np.lexsort((age, t_x, x))
    # repeat purchases as counts (grouped, complex sort) and, in the fallback, not counts
    for frequency in (x, x + 0.5):
        for left, right in zip(
            sorted_by_value(frequency, t_x, age), (frequency[order], t_x[order], age[order]), strict=True
        ):
            assert same_bits(left, right)


def test_the_likelihood_and_gradient_are_the_bytes_of_the_formulation_before() -> None:
    summary = rfm_summary(edge_history(300, seed=12))
    values = summary.sort_values(["frequency", "recency", "T"])  # runs of x, as the fit's sample has them
    for frame in (summary, values):
        x, t_x, age = (frame[name].to_numpy() for name in ("frequency", "recency", "T"))
        for params in (HAND, BGNBDParams(r=0.3, alpha=0.5, a=1.0, b=0.4)):
            assert same_bits(log_likelihood(params, x, t_x, age), reference_log_likelihood(params, x, t_x, age))
            assert same_bits(log_likelihood_gradient(params, x, t_x, age), reference_gradient(params, x, t_x, age))


def orders(rows: list[tuple[str, str, str, str | None]]) -> pd.DataFrame:
    """(order_id, customer_id, ordered_at, cancelled_at)"""
    frame = pd.DataFrame(rows, columns=["order_id", "customer_id", "ordered_at", "cancelled_at"])
    frame["ordered_at"] = pd.to_datetime(frame["ordered_at"], format="ISO8601")
    frame["cancelled_at"] = pd.to_datetime(frame["cancelled_at"])
    frame["order_value"] = 10.0
    frame["status"] = frame["cancelled_at"].notna().map({True: "cancelled", False: "delivered"})
    return frame


def shop() -> dict[str, pd.DataFrame]:
    return {
        "returns": pd.DataFrame(
            {"order_id": pd.Series([], dtype="string"), "returned_at": pd.Series([], dtype="datetime64[ns]")}
        ),
        "orders": orders(
            [
                ("o1", "c1", "2023-09-01", None),  # c1: four purchases, the last in May
                ("o2", "c1", "2024-01-10", None),
                ("o3", "c1", "2024-03-05 12:00", None),
                ("o4", "c1", "2024-05-20", None),
                ("o5", "c2", "2024-04-02", None),  # c2: one purchase
                ("o6", "c3", "2023-10-01", None),  # c3: inactive at the cutoff, but in the fit
                ("o7", "c3", "2023-11-15", None),
                ("o8", "c4", "2024-02-01", None),  # c4: a purchase and an order cancelled before the cutoff
                ("o9", "c4", "2024-05-01", "2024-05-03"),
                ("o10", "c5", "2024-03-01", None),  # c5: a second order cancelled only after the cutoff
                ("o11", "c5", "2024-05-25", "2024-06-10"),
                ("o12", "c2", "2024-06-01", None),  # at the cutoff: in the label window, not the features
                ("o13", "c6", "2024-07-01", None),  # a customer whose first order is after the cutoff
                ("o14", "c1", "2024-08-01", None),
            ]
        ),
    }


def test_inputs_are_the_rfm_features() -> None:
    inputs = inputs_from_frames(shop(), AS_OF)
    table = features_at(inputs, CUTOFF, PARAMS).execute().set_index("customer_id").sort_index()
    summary = order_summary(shared_tables(inputs, PARAMS).orders, CUTOFF)
    history = btyd_history(summary, CUTOFF, PARAMS.active_window_days).execute()
    history = history.set_index("customer_id").sort_index()
    assert history.index.tolist() == ["c1", "c2", "c3", "c4", "c5"]
    assert history["active"].tolist() == [True, True, False, True, True]
    active = history[history["active"]]
    for column in ("orders_total", "days_since_first_order", "days_since_last_order"):
        pd.testing.assert_series_equal(active[column], table.loc[active.index, column], check_dtype=False)
    # c5's second order counts (cancelled only after the cutoff), c4's does not.
    assert table.loc[["c4", "c5"], "orders_total"].tolist() == [1, 2]
    assert table[list(BTYD_COLUMNS)].notna().all().all()
    assert table.loc["c2", "btyd_p_alive"] == 1.0  # no repeat purchase: BG/NBD cannot have dropped them


def test_the_fit_reads_inactive_customers_too() -> None:
    inputs = inputs_from_frames(shop(), AS_OF)
    table = features_at(inputs, CUTOFF, PARAMS).execute().set_index("customer_id")
    without_c3 = {**shop(), "orders": shop()["orders"].query("customer_id != 'c3'")}
    other = features_at(inputs_from_frames(without_c3, AS_OF), CUTOFF, PARAMS).execute().set_index("customer_id")
    assert "c3" not in table.index
    columns = list(BTYD_COLUMNS)
    assert not np.allclose(table.loc["c1", columns].to_numpy(float), other.loc["c1", columns].to_numpy(float))


def test_events_at_or_after_the_cutoff_change_no_btyd_feature() -> None:
    full = inputs_from_frames(shop(), AS_OF)
    expected = features_at(full, CUTOFF, PARAMS).execute()
    truncated = inputs_from_frames(known_before(shop(), CUTOFF), CUTOFF, full.available)
    differences = feature_differences(expected, features_at(truncated, CUTOFF, PARAMS).execute())
    assert differences[list(BTYD_COLUMNS)].sum() == 0, differences[differences > 0]
    # More future: new customers and orders after the cutoff, and every order cancelled the day after it.
    later = shop()
    future = orders([("o20", "c7", "2024-06-02", None), ("o21", "c1", "2024-06-03", None)])
    later["orders"] = pd.concat([later["orders"], future], ignore_index=True)
    later["orders"] = later["orders"].assign(
        cancelled_at=later["orders"]["cancelled_at"].fillna(pd.Timestamp("2024-06-02")), status="cancelled"
    )
    changed = features_at(inputs_from_frames(later, AS_OF), CUTOFF, PARAMS).execute()
    assert feature_differences(expected, changed)[list(BTYD_COLUMNS)].sum() == 0


def test_the_dictionary_lists_the_group() -> None:
    dictionary = feature_dictionary()
    group = dictionary[dictionary["group"] == "btyd"]
    assert group["name"].tolist() == list(BTYD_COLUMNS)
    assert group["definition"].str.len().gt(40).all()


def test_the_part_from_arrow_is_the_bytes_of_the_quantities_of_every_customer() -> None:
    # btyd_part reads the history's columns through Arrow and computes the population's quantities only; the
    # pandas path computes everyone's. c3 is in the fit but not the population.
    inputs = inputs_from_frames(shop(), AS_OF)
    summary = order_summary(shared_tables(inputs, PARAMS).orders, CUTOFF)
    part = btyd_part(summary, CUTOFF, PARAMS.horizon_days, PARAMS.active_window_days).to_pyarrow()
    history = btyd_history(summary, CUTOFF, PARAMS.active_window_days).execute()
    everyone = btyd_quantities(history.drop(columns="active"), PARAMS.horizon_days)
    expected = everyone.assign(customer_id=history["customer_id"])[history["active"].to_numpy()]
    expected = expected.set_index("customer_id").sort_index()
    rows = part.to_pandas().set_index("customer_id").sort_index()
    assert rows.index.tolist() == ["c1", "c2", "c4", "c5"]
    assert list(rows.columns) == list(BTYD_COLUMNS)
    for name in BTYD_COLUMNS:
        assert same_bits(rows[name].to_numpy(), expected[name].to_numpy()), name
