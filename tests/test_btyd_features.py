"""The BTYD feature group: BG/NBD's quantities worked out by hand and checked against pymc-marketing's own functions,
the fit against pymc-marketing's, the inputs equal to the RFM features, and point in time: nothing at or after the
cutoff changes the group's values, nor does the order or naming of customers."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.special import hyp2f1
from test_btyd import simulate_bg_nbd

from features.btyd import (
    BTYD_COLUMNS,
    BGNBDParams,
    btyd_history,
    btyd_quantities,
    expected_purchases,
    fit_bg_nbd,
    log_likelihood,
    probability_alive,
    probability_no_purchase,
    rfm_summary,
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
