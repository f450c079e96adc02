"""Tests of the synthetic shop generator: determinism, contract, rates, churn mechanism, oracle and dirt."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.contract import ORDER_STATUSES, RETURN_REASONS, TABLES_BY_NAME, TICKET_REASONS
from pipelines.sources.dirt import DIRT_KINDS
from pipelines.sources.synthetic import (
    SyntheticShop,
    SyntheticShopParams,
    _orders_by_time,
    epoch_days,
    generate_shop,
    seasonal_exposure,
    seasonal_multiplier,
    true_churn_probability,
)

SIGMAS = 4.0
PARAMS = SyntheticShopParams(n_customers=20_000, seed=7)
SMALL_PARAMS = SyntheticShopParams(n_customers=2_000, seed=11)
NO_EFFECT_PARAMS = replace(
    PARAMS, late_delivery_effect=0.0, wrong_item_effect=0.0, damaged_effect=0.0, out_of_stock_effect=0.0
)
END = pd.Timestamp(PARAMS.end_date)
# Late deliveries arrive a few days after the promise, so orders this old have every delivery visible.
DELIVERY_SETTLED = pd.Timedelta(days=60)
# First orders this old leave every customer time to order again.
REPEAT_WINDOW = pd.Timedelta(days=180)
BAD_RETURN_REASONS = ("wrong_item", "damaged")


# --- helpers


def clean_tables(shop: SyntheticShop) -> dict[str, pd.DataFrame]:
    """The tables without the injected dirty rows."""
    result = {}
    for name, table in shop.tables.items():
        dirty_rows = shop.dirt.loc[shop.dirt["table"] == name, "row"].to_numpy()
        result[name] = table.drop(index=dirty_rows).reset_index(drop=True)
    return result


def binomial_tolerance(share: float, n: int) -> float:
    """SIGMAS standard errors of a share observed on n independent trials."""
    return SIGMAS * np.sqrt(share * (1 - share) / n)


def assert_share_close(hits: pd.Series, expected: float) -> None:
    """The share of True in `hits` (independent trials) is within SIGMAS standard errors of `expected`."""
    observed = float(hits.mean())
    assert len(hits) > 1_000, "too few trials for a meaningful rate check"
    tolerance = binomial_tolerance(observed, len(hits))
    assert abs(observed - expected) <= tolerance, (observed, expected, tolerance)


def clustered_share(hits: pd.Series, clusters: pd.Series) -> tuple[float, float]:
    """Share of True in `hits` and its standard error when trials within a cluster are correlated."""
    per_cluster = pd.DataFrame({"hits": hits.to_numpy(), "cluster": clusters.to_numpy()}).groupby("cluster")
    totals = per_cluster["hits"].agg(["sum", "size"])
    share = totals["sum"].sum() / totals["size"].sum()
    residuals = totals["sum"] - share * totals["size"]
    n = len(totals)
    se = np.sqrt(n / (n - 1) * (residuals**2).sum()) / totals["size"].sum()
    return float(share), float(se)


def first_orders(orders: pd.DataFrame) -> pd.DataFrame:
    """Each customer's first order."""
    return orders.sort_values("ordered_at", kind="stable").groupby("customer_id").head(1)


def is_late(orders: pd.DataFrame) -> pd.Series:
    return (orders["delivered_at"] > orders["promised_delivery_at"]).fillna(False).astype(bool)


def is_out_of_stock(orders: pd.DataFrame) -> pd.Series:
    return (orders["cancel_reason"] == "out_of_stock").fillna(False).astype(bool)


EXPERIENCES = ("late", "out_of_stock", "bad_item_return")


def first_order_outcomes(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per customer: how the first order went (one column per experience) and whether they ordered again.

    Only first orders old enough to leave time for a repeat count.
    """
    orders, returns = tables["orders"], tables["returns"]
    n_orders = orders.groupby("customer_id").size()
    first = first_orders(orders)
    first = first[first["ordered_at"] < END - REPEAT_WINDOW]
    bad_returns = returns.loc[returns["reason"].isin(BAD_RETURN_REASONS), "order_id"]
    return pd.DataFrame(
        {
            "late": is_late(first).to_numpy(),
            "out_of_stock": is_out_of_stock(first).to_numpy(),
            "bad_item_return": first["order_id"].isin(bad_returns).to_numpy(),
            "again": n_orders.loc[first["customer_id"]].to_numpy() > 1,
        }
    )


def repeat_gap(outcomes: pd.DataFrame, experiences: tuple[str, ...] = EXPERIENCES) -> tuple[float, float]:
    """Repeat share after a fine first order minus that after one of `experiences`, and its standard error."""
    any_bad = outcomes[list(EXPERIENCES)].any(axis=1).to_numpy()
    bad = outcomes[list(experiences)].any(axis=1).to_numpy()
    again = outcomes["again"].to_numpy()
    bad_share, fine_share = again[bad].mean(), again[~any_bad].mean()
    se = np.sqrt(bad_share * (1 - bad_share) / bad.sum() + fine_share * (1 - fine_share) / (~any_bad).sum())
    return float(fine_share - bad_share), float(se)


def write_parquet(tables: dict[str, pd.DataFrame], directory: Path) -> dict[str, bytes]:
    directory.mkdir()
    contents = {}
    for name, table in tables.items():
        path = directory / f"{name}.parquet"
        table.to_parquet(path, index=False)
        contents[name] = path.read_bytes()
    return contents


# --- fixtures


@pytest.fixture(scope="module")
def shop() -> SyntheticShop:
    return generate_shop(PARAMS)


@pytest.fixture(scope="module")
def clean(shop: SyntheticShop) -> dict[str, pd.DataFrame]:
    return clean_tables(shop)


@pytest.fixture(scope="module")
def small_shop() -> SyntheticShop:
    return generate_shop(SMALL_PARAMS)


@pytest.fixture(scope="module")
def small_shop_without_dirt() -> SyntheticShop:
    return generate_shop(replace(SMALL_PARAMS, dirty_share=0.0))


@pytest.fixture(scope="module")
def no_effect_clean() -> dict[str, pd.DataFrame]:
    return clean_tables(generate_shop(NO_EFFECT_PARAMS))


# --- 1. determinism


def test_same_seed_gives_identical_data(small_shop: SyntheticShop, tmp_path: Path) -> None:
    again = generate_shop(SMALL_PARAMS)
    assert small_shop.tables.keys() == again.tables.keys()
    for name, table in small_shop.tables.items():
        pd.testing.assert_frame_equal(table, again.tables[name])
    pd.testing.assert_frame_equal(small_shop.customer_truth, again.customer_truth)
    pd.testing.assert_frame_equal(small_shop.dirt, again.dirt)
    assert write_parquet(small_shop.tables, tmp_path / "a") == write_parquet(again.tables, tmp_path / "b")


def test_different_seed_gives_different_orders(small_shop: SyntheticShop) -> None:
    other = generate_shop(replace(SMALL_PARAMS, seed=SMALL_PARAMS.seed + 1))
    mine, theirs = small_shop.tables["orders"], other.tables["orders"]
    n = min(len(mine), len(theirs))
    assert not mine["ordered_at"].iloc[:n].reset_index(drop=True).equals(theirs["ordered_at"].iloc[:n])
    assert not mine["order_value"].iloc[:n].reset_index(drop=True).equals(theirs["order_value"].iloc[:n])


# --- 2. contract


def test_generates_every_contract_table(shop: SyntheticShop) -> None:
    assert set(shop.tables) == set(TABLES_BY_NAME)


@pytest.mark.parametrize("name", sorted(TABLES_BY_NAME))
def test_columns_match_contract(shop: SyntheticShop, name: str) -> None:
    columns = list(shop.tables[name].columns)
    assert len(columns) == len(set(columns))
    assert set(columns) == set(TABLES_BY_NAME[name].column_names)


# --- 3. rates


def test_out_of_stock_rate(clean: dict[str, pd.DataFrame]) -> None:
    assert_share_close(is_out_of_stock(clean["orders"]), PARAMS.out_of_stock_rate)


@pytest.mark.parametrize("channel", sorted(PARAMS.late_rate_by_channel))
def test_late_delivery_rate_by_channel(clean: dict[str, pd.DataFrame], channel: str) -> None:
    orders = clean["orders"]
    settled = orders["ordered_at"] < END - DELIVERY_SETTLED
    delivered = orders[settled & orders["delivered_at"].notna() & (orders["channel"] == channel)]
    assert_share_close(is_late(delivered), PARAMS.late_rate_by_channel[channel])


def test_half_of_those_who_join_the_loyalty_programme_do_so_at_sign_up(clean: dict[str, pd.DataFrame]) -> None:
    customers = clean["customers"]
    at_sign_up = (customers["loyalty_joined_at"] == customers["signed_up_at"]).fillna(False).astype(bool)
    assert_share_close(at_sign_up, PARAMS.loyalty_share / 2)


def test_the_others_join_after_one_of_their_orders(clean: dict[str, pd.DataFrame]) -> None:
    customers = clean["customers"]
    assert (customers["loyalty_member"] == customers["loyalty_joined_at"].notna()).all()
    assert customers["loyalty_left_at"].isna().all()
    later = customers[customers["loyalty_joined_at"] > customers["signed_up_at"]].set_index("customer_id")
    assert len(later) > 0.05 * len(customers)
    first_order = first_orders(clean["orders"]).set_index("customer_id")["ordered_at"]
    assert (first_order.loc[later.index] < later["loyalty_joined_at"]).all()


def test_loyalty_lowers_dropout_only_from_joining() -> None:
    """With members never dropping out (multiplier 0, no bad-experience effects), nobody drops out after an order
    placed after joining, but some do after an order placed in the days between the order that made them join and
    the joining: membership counts from joining, not from sign-up."""
    shop = generate_shop(replace(NO_EFFECT_PARAMS, n_customers=4_000, loyalty_dropout_multiplier=0.0, dirty_share=0))
    truth = shop.customer_truth.set_index("customer_id")
    joined = shop.tables["customers"].set_index("customer_id")["loyalty_joined_at"].dropna()
    dropped = truth.loc[joined.index, "dropped_out_at"]
    assert not (dropped.to_numpy() > joined.to_numpy()).any()
    assert (dropped.to_numpy() < joined.to_numpy()).any()


@pytest.mark.parametrize("reason", sorted(PARAMS.cancel_delay_mean_days))
def test_cancellations_come_hours_or_days_after_the_order(clean: dict[str, pd.DataFrame], reason: str) -> None:
    orders = clean["orders"]
    assert ((orders["status"] == "cancelled") == orders["cancelled_at"].notna()).all()
    cancelled = orders[orders["cancel_reason"] == reason]
    delay_days = (cancelled["cancelled_at"] - cancelled["ordered_at"]).dt.total_seconds() / 86_400
    assert (delay_days >= 0).all()
    expected = PARAMS.cancel_delay_mean_days[reason]
    # exponential: the standard error of the mean is the mean over the square root of the count
    assert abs(delay_days.mean() - expected) < 4 * expected / np.sqrt(len(delay_days))


def test_the_export_shows_a_cancellation_after_it_as_a_placed_order(clean: dict[str, pd.DataFrame]) -> None:
    end = pd.Timestamp(PARAMS.end_date)
    orders = clean["orders"]
    placed = orders[orders["status"] == "placed"]
    assert len(placed) > 0 and placed["cancelled_at"].isna().all() and placed["cancel_reason"].isna().all()
    assert (placed["ordered_at"] > end - pd.Timedelta(days=14)).all()


@pytest.mark.parametrize("method", sorted(PARAMS.payment_shares))
def test_first_order_payment_shares(clean: dict[str, pd.DataFrame], method: str) -> None:
    # One order per customer: independent trials whose marginal is payment_shares despite the habit.
    first = first_orders(clean["orders"])
    expected = PARAMS.payment_shares[method] / sum(PARAMS.payment_shares.values())
    assert_share_close(first["payment_method"] == method, expected)


def test_invoice_share_of_all_orders(clean: dict[str, pd.DataFrame]) -> None:
    # A customer's orders share their habit, so the standard error is clustered by customer.
    orders = clean["orders"]
    share, se = clustered_share(orders["payment_method"] == "invoice", orders["customer_id"])
    assert abs(share - PARAMS.payment_shares["invoice"]) <= SIGMAS * se, (share, se)


# --- 4. churn mechanism


@pytest.fixture(scope="module")
def outcomes(clean: dict[str, pd.DataFrame]) -> pd.DataFrame:
    return first_order_outcomes(clean)


def test_bad_first_order_lowers_repeat_purchases(outcomes: pd.DataFrame) -> None:
    gap, se = repeat_gap(outcomes)
    assert gap > SIGMAS * se, (gap, se)


@pytest.mark.parametrize("experience", EXPERIENCES)
def test_each_bad_experience_lowers_repeat_purchases(outcomes: pd.DataFrame, experience: str) -> None:
    gap, se = repeat_gap(outcomes, (experience,))
    assert gap > SIGMAS * se, (gap, se)


def test_without_effects_the_gap_mostly_disappears(
    outcomes: pd.DataFrame, no_effect_clean: dict[str, pd.DataFrame]
) -> None:
    gap, se = repeat_gap(outcomes)
    gap_without, se_without = repeat_gap(first_order_outcomes(no_effect_clean))
    assert gap - gap_without > SIGMAS * np.hypot(se, se_without), (gap, gap_without)
    assert abs(gap_without) < gap / 4, (gap, gap_without)
    assert abs(gap_without) <= SIGMAS * se_without, (gap_without, se_without)


# --- 5. oracle

CUTOFF = END - pd.Timedelta(days=120)
HORIZON_DAYS = 90.0


def test_oracle_matches_observed_churn(shop: SyntheticShop, clean: dict[str, pd.DataFrame]) -> None:
    # The generator's purchase process counts every order, cancelled or not.
    orders = clean["orders"]
    ordered_at = orders["ordered_at"]
    past = orders.loc[(ordered_at >= CUTOFF - pd.Timedelta(days=365)) & (ordered_at < CUTOFF), "customer_id"]
    future = orders.loc[(ordered_at >= CUTOFF) & (ordered_at < CUTOFF + pd.Timedelta(days=HORIZON_DAYS)), "customer_id"]
    oracle = true_churn_probability(shop.customer_truth, CUTOFF, HORIZON_DAYS, PARAMS)
    population = oracle[oracle.notna() & oracle.index.isin(past)]
    churned = ~population.index.isin(future)
    # Given the latent state, customers churn independently with the oracle's probability.
    se = np.sqrt((population * (1 - population)).sum()) / len(population)
    assert len(population) > 5_000
    assert abs(churned.mean() - population.mean()) <= SIGMAS * se, (churned.mean(), population.mean(), se)


def test_oracle_is_certain_for_dropouts_and_undefined_before_joining(shop: SyntheticShop) -> None:
    truth = shop.customer_truth
    oracle = true_churn_probability(truth, CUTOFF, HORIZON_DAYS, PARAMS).to_numpy()
    not_joined = (truth["signed_up_at"] >= CUTOFF).to_numpy()
    dead = (truth["dropped_out_at"] < CUTOFF).to_numpy()
    alive = ~not_joined & ~dead
    assert not_joined.any() and dead.any() and alive.any()
    assert np.isnan(oracle[not_joined]).all()
    assert (oracle[dead & ~not_joined] == 1.0).all()
    assert ((oracle[alive] > 0) & (oracle[alive] < 1)).all()


def test_truth_covers_customers_and_nobody_orders_after_dropping_out(
    shop: SyntheticShop, clean: dict[str, pd.DataFrame]
) -> None:
    truth = shop.customer_truth.set_index("customer_id")
    assert set(truth.index) == set(clean["customers"]["customer_id"])
    last_order = clean["orders"].groupby("customer_id")["ordered_at"].max()
    dropped_out_at = truth["dropped_out_at"].reindex(last_order.index)
    assert not (last_order > dropped_out_at).any()


@pytest.mark.parametrize(
    ("start", "days"),
    [("2024-01-01", 90.0), ("2025-10-03", 90.0), ("2023-06-15 12:00", 400.0), ("2024-12-31", 0.5)],
)
@pytest.mark.parametrize(("amplitude", "peak_day"), [(0.25, 335), (0.6, 40)])
def test_seasonal_exposure_is_the_integral_of_the_multiplier(
    start: str, days: float, amplitude: float, peak_day: int
) -> None:
    start_timestamp = pd.Timestamp(start)
    grid = np.linspace(0.0, days, 200_001)
    multiplier = seasonal_multiplier(epoch_days(start_timestamp) + grid, amplitude, peak_day)
    numeric = np.trapezoid(multiplier, grid)
    assert seasonal_exposure(start_timestamp, days, amplitude, peak_day) == pytest.approx(numeric, rel=1e-9)


# --- 6. dirt

DirtCheck = Callable[[dict[str, pd.DataFrame]], pd.Series]


def _earlier(times: pd.Series, reference: pd.Series) -> pd.Series:
    """Times before their reference time; missing either is not earlier."""
    return (times < reference).fillna(False)


def _before_order(tables: dict[str, pd.DataFrame], table: str, column: str) -> pd.Series:
    orders = tables["orders"].drop_duplicates("order_id").set_index("order_id")["ordered_at"]
    return _earlier(tables[table][column], tables[table]["order_id"].map(orders))


def _orphans(references: pd.Series, keys: pd.Series) -> pd.Series:
    """References to no key. Object dtype: isin on Arrow-backed strings is two orders of magnitude slower."""
    return ~references.astype(object).isin(keys.dropna().astype(object))


DIRT_CHECKS: dict[tuple[str, str], DirtCheck] = {
    ("customers", "duplicate_row"): lambda t: t["customers"].duplicated(),
    ("customers", "missing_customer_id"): lambda t: t["customers"]["customer_id"].isna(),
    ("orders", "duplicate_row"): lambda t: t["orders"].duplicated(),
    ("orders", "negative_value"): lambda t: t["orders"]["order_value"] < 0,
    ("orders", "missing_customer"): lambda t: t["orders"]["customer_id"].isna(),
    ("orders", "unknown_status"): lambda t: ~t["orders"]["status"].isin(ORDER_STATUSES),
    ("orders", "delivered_before_ordered"): lambda t: _earlier(t["orders"]["delivered_at"], t["orders"]["ordered_at"]),
    ("orders", "future_order"): lambda t: t["orders"]["ordered_at"] > END,
    ("reviews", "orphan_review"): lambda t: _orphans(t["reviews"]["order_id"], t["orders"]["order_id"]),
    ("reviews", "score_out_of_range"): lambda t: ~t["reviews"]["review_score"].between(1, 5),
    ("reviews", "review_before_order"): lambda t: _before_order(t, "reviews", "reviewed_at"),
    ("tickets", "orphan_customer"): lambda t: _orphans(t["tickets"]["customer_id"], t["customers"]["customer_id"]),
    ("tickets", "resolved_before_opened"): lambda t: _earlier(t["tickets"]["resolved_at"], t["tickets"]["opened_at"]),
    ("tickets", "unknown_reason"): lambda t: ~t["tickets"]["reason"].isin(TICKET_REASONS),
    ("returns", "orphan_return"): lambda t: _orphans(t["returns"]["order_id"], t["orders"]["order_id"]),
    ("returns", "unknown_reason"): lambda t: ~t["returns"]["reason"].isin(RETURN_REASONS),
    ("order_lines", "duplicate_row"): lambda t: t["order_lines"].duplicated(),
    ("order_lines", "orphan_line"): lambda t: _orphans(t["order_lines"]["order_id"], t["orders"]["order_id"]),
    ("order_lines", "no_units"): lambda t: t["order_lines"]["quantity"] <= 0,
    ("order_lines", "negative_price"): lambda t: t["order_lines"]["unit_price"] < 0,
}


def test_every_dirt_kind_has_a_check() -> None:
    assert set(DIRT_CHECKS) == {(kind.table, kind.name) for kind in DIRT_KINDS}


def test_dirt_table_is_well_formed(shop: SyntheticShop) -> None:
    dirt = shop.dirt
    assert list(dirt.columns) == ["table", "row", "kind", "rule"]
    assert not dirt.duplicated(["table", "row"]).any()
    rules = {(kind.table, kind.name): kind.rule for kind in DIRT_KINDS}
    assert [rules[(t, k)] for t, k in zip(dirt["table"], dirt["kind"], strict=True)] == dirt["rule"].tolist()
    for name, rows in dirt.groupby("table")["row"]:
        assert rows.between(0, len(shop.tables[name]) - 1).all()


@pytest.mark.parametrize(("table", "kind"), sorted(DIRT_CHECKS))
def test_dirt_rows_are_dirty_in_the_stated_way(shop: SyntheticShop, table: str, kind: str) -> None:
    flagged = DIRT_CHECKS[(table, kind)](shop.tables).astype(bool).to_numpy()
    dirt = shop.dirt[shop.dirt["table"] == table]
    rows = dirt.loc[dirt["kind"] == kind, "row"].to_numpy()
    clean_rows = np.setdiff1d(np.arange(len(shop.tables[table])), dirt["row"].to_numpy())
    assert rows.size > 0
    assert flagged[rows].all()
    assert not flagged[clean_rows].any()


@pytest.mark.parametrize("table", sorted(TABLES_BY_NAME))
def test_dirty_share_of_each_table(shop: SyntheticShop, clean: dict[str, pd.DataFrame], table: str) -> None:
    n_kinds = sum(kind.table == table for kind in DIRT_KINDS)
    n_dirty = int((shop.dirt["table"] == table).sum())
    # Each kind gets round(share * rows / kinds) rows, so rounding moves the total by at most kinds / 2.
    assert abs(n_dirty - PARAMS.dirty_share * len(clean[table])) <= n_kinds / 2
    assert len(shop.tables[table]) == len(clean[table]) + n_dirty


def test_no_dirt_without_dirty_share(small_shop_without_dirt: SyntheticShop) -> None:
    assert small_shop_without_dirt.dirt.empty
    for table in small_shop_without_dirt.tables.values():
        assert not table.duplicated().any()


def test_dirt_only_adds_rows(small_shop: SyntheticShop, small_shop_without_dirt: SyntheticShop) -> None:
    for name, table in clean_tables(small_shop).items():
        pd.testing.assert_frame_equal(table, small_shop_without_dirt.tables[name])
    pd.testing.assert_frame_equal(small_shop.customer_truth, small_shop_without_dirt.customer_truth)


# --- 7. order lines


def test_lines_add_up_to_their_order_s_value(small_shop_without_dirt: SyntheticShop) -> None:
    tables = small_shop_without_dirt.tables
    lines = tables["order_lines"]
    value = (lines["quantity"] * lines["unit_price"]).groupby(lines["order_id"].astype(object)).sum()
    orders = tables["orders"].set_index(tables["orders"]["order_id"].astype(object))["order_value"]
    assert set(value.index) == set(orders.index), "every order has lines, and every line an order"
    np.testing.assert_allclose(value.sort_index(), orders.sort_index(), atol=0.011)
    assert (lines["quantity"] > 0).all() and (lines["unit_price"] >= 0).all()
    assert lines["line_id"].is_unique


def test_lines_show_repeat_purchases_and_categories(small_shop_without_dirt: SyntheticShop) -> None:
    tables = small_shop_without_dirt.tables
    lines = tables["order_lines"].merge(tables["orders"][["order_id", "customer_id", "ordered_at"]], on="order_id")
    first = lines.groupby(["customer_id", "product_id"], observed=True)["ordered_at"].transform("min")
    repeat_share = (lines["ordered_at"] > first).mean()
    assert 0.1 < repeat_share < 0.6, repeat_share
    assert lines["category"].notna().all() and lines["category"].nunique() > 3
    # One product, one category.
    assert (lines.groupby("product_id", observed=True)["category"].nunique() == 1).all()


def test_returns_of_a_bad_item_name_a_line_of_their_own_order(small_shop_without_dirt: SyntheticShop) -> None:
    tables = small_shop_without_dirt.tables
    returns = tables["returns"]
    named = returns[returns["line_id"].notna()].merge(
        tables["order_lines"][["line_id", "order_id"]], on="line_id", suffixes=("", "_of_line")
    )
    assert len(named) == returns["line_id"].notna().sum() > 0
    assert (named["order_id"] == named["order_id_of_line"]).all()
    assert named["reason"].isin(["wrong_item", "damaged"]).all()
    assert returns.loc[returns["line_id"].isna(), "reason"].isin(["wrong_size", "changed_mind"]).all()


def test_without_lines_the_other_tables_are_the_same(small_shop_without_dirt: SyntheticShop) -> None:
    without = generate_shop(replace(SMALL_PARAMS, dirty_share=0.0, order_lines=False))
    assert "order_lines" not in without.tables
    for name, table in without.tables.items():
        expected = small_shop_without_dirt.tables[name]
        pd.testing.assert_frame_equal(
            table.drop(columns="line_id", errors="ignore"),
            expected[table.columns].drop(columns="line_id", errors="ignore"),
        )
    assert without.tables["returns"]["line_id"].isna().all()


# --- 8. params


def test_from_dict_rejects_unknown_keys() -> None:
    with pytest.raises(ValueError, match=r"generate\.n_customer is not a param; did you mean generate\.n_customers"):
        SyntheticShopParams.from_dict({"n_customer": 10, "seed": 1})


def test_from_dict_accepts_known_keys() -> None:
    params = SyntheticShopParams.from_dict({"n_customers": 10, "seed": 3})
    assert (params.n_customers, params.seed) == (10, 3)


def test_orders_are_sorted_by_day_then_customer_as_a_stable_pandas_sort() -> None:
    rng = np.random.default_rng(7)
    rounds = [
        {
            "customer_index": rng.integers(0, 5, size),
            "day": rng.integers(0, 4, size).astype(float),  # many ties on both keys
            "value": rng.random(size),
            "channel": rng.choice(np.array(["web", "app"], dtype=object), size),
            "cancelled": rng.random(size) < 0.3,
        }
        for size in (40, 25, 0, 10)
    ]
    expected = (
        pd.concat([pd.DataFrame(orders) for orders in rounds], ignore_index=True)
        .sort_values(["day", "customer_index"], kind="stable")
        .reset_index(drop=True)
    )
    pd.testing.assert_frame_equal(_orders_by_time(rounds), expected)
