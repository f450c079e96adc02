"""The buy-till-you-die baseline: its inputs by hand, the clear error without pymc-marketing, and parameter recovery
on data simulated from a BG/NBD process."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

from models.btyd import BTYDUnavailable, btyd_churn_scores, fit_bg_nbd, rfm_summary


def history(first: list[float], last: list[float | None], orders: list[int]) -> pd.DataFrame:
    return pd.DataFrame(
        {"days_since_first_order": first, "days_since_last_order": last, "orders_total": orders},
        index=pd.Index([f"c{i}" for i in range(len(first))], name="customer_id"),
    )


def test_rfm_summary_by_hand() -> None:
    # Three orders, the first 70 days and the last 14 days before the cutoff: 2 repeats, T 10 weeks, recency 8.
    # A one-time buyer: no repeats, recency 0. All orders cancelled: nothing to go on but the age.
    summary = rfm_summary(history([70.0, 21.0, 35.0], [14.0, 21.0, None], [3, 1, 0]))
    assert summary["frequency"].tolist() == [2.0, 0.0, 0.0]
    assert summary["T"].tolist() == pytest.approx([10.0, 3.0, 5.0])
    assert summary["recency"].tolist() == pytest.approx([8.0, 0.0, 0.0])


def test_without_pymc_marketing_the_error_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pymc_marketing", None)  # makes the import fail
    with pytest.raises(BTYDUnavailable, match=r"churn-pipeline\[btyd\]"):
        fit_bg_nbd(history([70.0], [14.0], [3]), seed=0)
    assert issubclass(BTYDUnavailable, ImportError)  # the evaluate stage skips on ImportError


def simulate_bg_nbd(n: int, r: float, alpha: float, a: float, b: float, seed: int) -> pd.DataFrame:
    """Customers whose first purchase was T weeks before the cutoff; purchases at rate lambda ~ Gamma(r, alpha)
    while alive; after each purchase they drop out with probability p ~ Beta(a, b)."""
    rng = np.random.default_rng(seed)
    rates = rng.gamma(r, 1.0 / alpha, n)
    dropout = rng.beta(a, b, n)
    ages = rng.uniform(10.0, 100.0, n)
    rows = []
    for rate, p, age in zip(rates, dropout, ages, strict=True):
        t, purchases = 0.0, 0
        while True:
            gap = rng.exponential(1.0 / rate)
            if t + gap > age:
                break
            t, purchases = t + gap, purchases + 1
            if rng.uniform() < p:
                break
        rows.append((age * 7.0, (age - t) * 7.0, purchases + 1))
    first, last, orders = (list(column) for column in zip(*rows, strict=True))
    return history(first, last, orders)


@pytest.fixture(scope="module")
def fitted() -> tuple[object, pd.DataFrame]:
    pytest.importorskip("pymc_marketing", reason="pymc-marketing (the btyd extra) is not installed")
    shop = simulate_bg_nbd(3000, r=0.8, alpha=4.0, a=0.8, b=3.0, seed=1)
    return fit_bg_nbd(shop, seed=0), shop


def test_bg_nbd_recovers_the_simulated_parameters(fitted: tuple[object, pd.DataFrame]) -> None:
    model, _ = fitted
    estimates = model.fit_summary()  # type: ignore[attr-defined]
    assert estimates["r"] == pytest.approx(0.8, rel=0.3)
    assert estimates["alpha"] == pytest.approx(4.0, rel=0.3)
    assert estimates["a"] / (estimates["a"] + estimates["b"]) == pytest.approx(0.8 / 3.8, rel=0.3)


def test_scores_rank_the_silent_below_the_regular_and_grow_with_the_horizon(
    fitted: tuple[object, pd.DataFrame],
) -> None:
    model, _ = fitted
    pair = history([140.0, 140.0, 140.0], [3.0, 130.0, 140.0], [15, 15, 1])  # regular, gone quiet, one-time
    scores = btyd_churn_scores(model, pair, horizon_days=90.0)
    assert list(scores.index) == list(pair.index)
    expected = scores["expected_purchases"]
    assert expected["c0"] > expected["c1"] and expected["c0"] > expected["c2"]
    assert scores["p_no_purchase"]["c1"] > scores["p_no_purchase"]["c0"]
    assert scores["p_no_purchase"].between(0.0, 1.0).all()
    longer = btyd_churn_scores(model, pair, horizon_days=180.0)
    assert (longer["expected_purchases"] > expected).all()
