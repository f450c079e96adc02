"""The buy-till-you-die baseline: its inputs by hand, the input checks, the clear error without pymc-marketing, and
(with pymc-marketing) parameter recovery and calibration on data simulated from a BG/NBD process."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import pandas as pd
import pytest

from models.btyd import BTYDUnavailable, btyd_churn_scores, fit_bg_nbd, rfm_summary

HORIZON_WEEKS = 13.0


def history(first: list[float], last: list[float | None], orders: list[int]) -> pd.DataFrame:
    """Feature rows at one cutoff, with an index that is not a range so that alignment is tested."""
    ids = [f"c{i}" for i in range(len(first))]
    return pd.DataFrame(
        {"customer_id": ids, "orders_total": orders, "days_since_first_order": first, "days_since_last_order": last},
        index=pd.Index([f"row-{i}" for i in ids]),
    )


def test_rfm_summary_by_hand() -> None:
    # Three orders, the first 70 days and the last 14 days before the cutoff: 2 repeats, T 10 weeks, recency 8.
    # One order 21 days ago: no repeat, recency 0, T 3 weeks. One order 14 days ago after a cancelled one 35 days
    # ago: the purchase, not the cancelled order, starts the clock (T 2 weeks). All cancelled: nothing but the age.
    summary = rfm_summary(history([70.0, 21.0, 35.0, 35.0], [14.0, 21.0, 14.0, None], [3, 1, 1, 0]))
    assert summary["frequency"].tolist() == [2.0, 0.0, 0.0, 0.0]
    assert summary["T"].tolist() == pytest.approx([10.0, 3.0, 2.0, 5.0])
    assert summary["recency"].tolist() == pytest.approx([8.0, 0.0, 0.0, 0.0])
    assert summary["customer_id"].tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (history([70.0], [14.0], [3]).drop(columns="orders_total"), "lacks the column"),
        (pd.concat([history([70.0], [14.0], [3])] * 2), "more than one row for a customer"),
        (history([70.0], [14.0], [-1]), "orders_total must be a count"),
        (history([70.0], [None], [3]), "missing exactly where orders_total is 0"),
        (history([70.0], [7.0], [0]), "missing exactly where orders_total is 0"),
        (history([70.0], [71.0], [3]), "between 0 and days_since_first_order"),
        (history([float("nan")], [None], [0]), "days_since_first_order must be >= 0"),
    ],
)
def test_inconsistent_history_is_refused(rows: pd.DataFrame, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fit_bg_nbd(rows, seed=0)


def test_without_pymc_marketing_the_error_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pymc_marketing", None)  # makes `import pymc_marketing` fail
    with pytest.raises(BTYDUnavailable, match=r"pip install 'churn-pipeline\[btyd\]'") as raised:
        fit_bg_nbd(history([70.0], [14.0], [3]), seed=0)
    # The evaluate stage skips the baseline on ImportError; RuntimeError is what the error is.
    assert isinstance(raised.value, ImportError) and isinstance(raised.value, RuntimeError)


def simulate_bg_nbd(n: int, r: float, alpha: float, a: float, b: float, seed: int) -> pd.DataFrame:
    """Customers whose first purchase was T ~ U(10, 100) weeks before the cutoff, buying at a rate lambda ~
    Gamma(r, alpha) while alive and dropping out right after each repeat purchase with probability p ~ Beta(a, b).
    The process runs on for HORIZON_WEEKS past the cutoff: `purchases_after` counts the purchases then."""
    rng = np.random.default_rng(seed)
    rows = []
    for rate, p, age in zip(rng.gamma(r, 1.0 / alpha, n), rng.beta(a, b, n), rng.uniform(10.0, 100.0, n), strict=True):
        times = [0.0]
        while (t := times[-1] + rng.exponential(1.0 / rate)) < age + HORIZON_WEEKS:
            times.append(t)
            if rng.uniform() < p:
                break
        before = [t for t in times if t < age]
        rows.append((age * 7.0, (age - before[-1]) * 7.0, len(before), len(times) - len(before)))
    first, last, orders, after = (list(column) for column in zip(*rows, strict=True))
    return history(first, last, orders).assign(purchases_after=after)


@pytest.fixture(scope="module")
def fitted() -> tuple[Any, pd.DataFrame]:
    pytest.importorskip("pymc_marketing", reason="pymc-marketing (the btyd extra) is not installed")
    shop = simulate_bg_nbd(3000, r=0.8, alpha=4.0, a=0.8, b=3.0, seed=1)
    return fit_bg_nbd(shop, seed=0), shop


def test_bg_nbd_recovers_the_simulated_parameters(fitted: tuple[Any, pd.DataFrame]) -> None:
    model, _ = fitted
    estimates = model.fit_summary()
    assert estimates["r"] == pytest.approx(0.8, rel=0.3)
    assert estimates["alpha"] == pytest.approx(4.0, rel=0.3)
    # a and b are weakly identified one by one; their mean dropout probability is not.
    assert estimates["a"] / (estimates["a"] + estimates["b"]) == pytest.approx(0.8 / 3.8, rel=0.3)


def test_scores_are_calibrated_on_the_simulated_horizon(fitted: tuple[Any, pd.DataFrame]) -> None:
    model, shop = fitted
    scores = btyd_churn_scores(model, shop, horizon_days=HORIZON_WEEKS * 7.0)
    silent = shop["purchases_after"] == 0
    one_time = shop["orders_total"] == 1
    assert scores["p_no_purchase"].mean() == pytest.approx(silent.mean(), abs=0.03)
    # pymc-marketing's own expected_probability_no_purchase says about 0.93 here, for an observed 0.77.
    assert scores["p_no_purchase"][one_time].mean() == pytest.approx(silent[one_time].mean(), abs=0.05)
    assert scores["expected_purchases"].mean() == pytest.approx(shop["purchases_after"].mean(), rel=0.1)


def test_p_no_purchase_is_the_closed_form_from_p_alive(fitted: tuple[Any, pd.DataFrame]) -> None:
    model, shop = fitted
    rows = shop.iloc[:200]
    summary = rfm_summary(rows)
    alive = model.expected_probability_alive(data=summary).to_numpy().reshape(-1)
    r, alpha = (float(model.fit_result[name].mean()) for name in ("r", "alpha"))
    x, age, future = summary["frequency"].to_numpy(), summary["T"].to_numpy(), HORIZON_WEEKS
    closed_form = 1.0 - alive + alive * ((alpha + age) / (alpha + age + future)) ** (r + x)
    scores = btyd_churn_scores(model, rows, horizon_days=future * 7.0)
    assert scores["p_no_purchase"].to_numpy() == pytest.approx(closed_form, rel=1e-9)
    # Where pymc-marketing's own method is right (after a repeat purchase), both agree.
    library = model.expected_probability_no_purchase(t=future, data=summary).to_numpy().reshape(-1)
    assert scores["p_no_purchase"].to_numpy()[x > 0] == pytest.approx(library[x > 0], rel=1e-6)


def test_scores_by_hand_on_tiny_data(fitted: tuple[Any, pd.DataFrame]) -> None:
    model, _ = fitted
    # A regular who bought 3 days ago, the same customer silent for 130 days, and one-time buyers of 1 and 20 weeks.
    rows = history([140.0, 140.0, 7.0, 140.0], [3.0, 130.0, 7.0, 140.0], [15, 15, 1, 1])
    scores = btyd_churn_scores(model, rows, horizon_days=91.0)
    assert list(scores.index) == list(rows.index)
    assert list(scores.columns) == ["expected_purchases", "p_no_purchase"]
    expected, no_purchase = scores["expected_purchases"], scores["p_no_purchase"]
    assert expected["row-c0"] > expected["row-c1"] and no_purchase["row-c0"] < no_purchase["row-c1"]
    # One-time buyers are not tied: silence since the first purchase says the rate is low.
    assert expected["row-c2"] > expected["row-c3"] and no_purchase["row-c2"] < no_purchase["row-c3"]
    assert no_purchase.between(0.0, 1.0).all() and (expected > 0).all()
    longer = btyd_churn_scores(model, rows, horizon_days=182.0)
    assert (longer["expected_purchases"] > expected).all()
    assert (longer["p_no_purchase"] < no_purchase).all()


def test_row_order_changes_no_score(fitted: tuple[Any, pd.DataFrame]) -> None:
    model, shop = fitted
    rows = shop.iloc[:300]
    shuffled = rows.sample(frac=1.0, random_state=3)
    pd.testing.assert_frame_equal(
        btyd_churn_scores(model, shuffled, 90.0).loc[rows.index], btyd_churn_scores(model, rows, 90.0)
    )


def test_customers_with_every_order_cancelled_are_scored_not_fitted(fitted: tuple[Any, pd.DataFrame]) -> None:
    model, _ = fitted
    scores = btyd_churn_scores(model, history([70.0], [None], [0]), horizon_days=90.0)
    assert scores["p_no_purchase"].between(0.0, 1.0).all()
    with pytest.raises(ValueError, match="no customer in the history has a non-cancelled order"):
        fit_bg_nbd(history([70.0, 35.0], [None, None], [0, 0]), seed=0)


def simulate_pareto_nbd(n: int, r: float, alpha: float, s: float, beta: float, seed: int) -> pd.DataFrame:
    """Customers whose first purchase was T ~ U(10, 100) weeks before the cutoff, buying at a rate lambda ~
    Gamma(r, alpha) until a lifetime ~ Exponential(mu), mu ~ Gamma(s, beta), ends; the process runs on for
    HORIZON_WEEKS past the cutoff (`purchases_after`)."""
    rng = np.random.default_rng(seed)
    rows = []
    for rate, mu, age in zip(
        rng.gamma(r, 1.0 / alpha, n), rng.gamma(s, 1.0 / beta, n), rng.uniform(10.0, 100.0, n), strict=True
    ):
        lifetime = rng.exponential(1.0 / mu)
        times = [0.0]
        while (t := times[-1] + rng.exponential(1.0 / rate)) < min(lifetime, age + HORIZON_WEEKS):
            times.append(t)
        before = [t for t in times if t < age]
        rows.append((age * 7.0, (age - before[-1]) * 7.0, len(before), len(times) - len(before)))
    first, last, orders, after = (list(column) for column in zip(*rows, strict=True))
    return history(first, last, orders).assign(purchases_after=after)


def test_pareto_nbd_scores_are_calibrated_on_its_own_process() -> None:
    pytest.importorskip("pymc_marketing", reason="pymc-marketing (the btyd extra) is not installed")
    from models.btyd import fit_pareto_nbd

    shop = simulate_pareto_nbd(2000, r=0.8, alpha=4.0, s=0.6, beta=20.0, seed=2)
    model = fit_pareto_nbd(shop, seed=0)
    assert set(model.fit_summary().index) >= {"r", "alpha", "s", "beta"}
    scores = btyd_churn_scores(model, shop, horizon_days=HORIZON_WEEKS * 7.0)
    silent = shop["purchases_after"] == 0
    assert scores["p_no_purchase"].between(0.0, 1.0).all()
    assert scores["p_no_purchase"].mean() == pytest.approx(silent.mean(), abs=0.03)
    assert scores["expected_purchases"].mean() == pytest.approx(shop["purchases_after"].mean(), rel=0.1)
    # Ranked by expected purchases, the silent customers come first: far better than chance.
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(silent, -scores["expected_purchases"]) > 0.75


def test_an_unknown_btyd_model_is_refused() -> None:
    from models.btyd import fit_btyd

    with pytest.raises(ValueError, match="unknown buy-till-you-die model"):
        fit_btyd(history([70.0], [14.0], [3]), seed=0, kind="pareto")
