"""The impact analysis: the AIPW estimator on data whose effect is known, hand-worked pieces, point in time of the
adjustment set, and the stage on a small synthetic shop whose true effects come from the generator's latent state."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import ibis
import numpy as np
import pandas as pd
import pytest
from conftest import AS_OF, invoke, write_params
from scipy.stats import norm

from features.cutoffs import FeatureParams
from features.impact import HISTORY_COLUMNS, available_kinds, impact_orders, order_history
from features.inputs import inputs_from_frames, read_validated
from features.leakage import known_before
from models.impact import (
    Z95,
    Design,
    ImpactParams,
    aipw_att,
    common_failures,
    estimate,
    failure_design,
    response_design,
    returning_customer_value,
    sampled_design,
    unadjusted_difference,
)

FAST = ImpactParams(n_estimators=40, min_child_samples=20)


def confounded_orders(n: int = 20_000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, float]:
    """Frequent buyers (x = 1) come back more and have more late parcels: the plain difference understates the
    harm. The effect is -0.3 for x = 0 and -0.1 for x = 1, so the ATT weighs by who is treated."""
    rng = np.random.default_rng(seed)
    x = rng.random(n) < 0.5
    treated = rng.random(n) < np.where(x, 0.4, 0.1)
    base = np.where(x, 0.9, 0.5)
    effect = np.where(x, -0.1, -0.3)
    outcome = rng.random(n) < base + treated * effect
    return pd.DataFrame({"x": x.astype(float)}), treated, outcome, float(effect[treated].mean())


def test_aipw_recovers_a_known_att_where_the_plain_difference_is_biased() -> None:
    x, treated, outcome, truth = confounded_orders()
    customers = pd.Series(np.arange(len(x)).astype(str))
    weight = np.ones(len(x))
    fit = aipw_att(x, treated, outcome, customers, weight, FAST)
    low, high = fit.ci
    assert low <= truth <= high
    naive, (naive_low, naive_high) = unadjusted_difference(treated, outcome, customers, weight)
    assert not naive_low <= truth <= naive_high
    assert naive > truth + 0.05  # the plain difference makes late parcels look harmless


def test_clustered_interval_is_wider_when_a_customer_repeats_the_same_fate() -> None:
    x, treated, outcome, _ = confounded_orders(4000)
    # every row twice, as if each customer placed two identical orders
    doubled = pd.concat([x, x], ignore_index=True)
    ids = np.arange(len(x)).astype(str)
    apart = pd.Series(np.concatenate([ids, np.char.add(ids, "b")]))
    together = pd.Series(np.concatenate([ids, ids]))
    args = (doubled, np.tile(treated, 2), np.tile(outcome, 2))
    weight = np.ones(len(doubled))
    assert aipw_att(*args, together, weight, FAST).se > 1.3 * aipw_att(*args, apart, weight, FAST).se


def test_unadjusted_difference_by_hand() -> None:
    # treated return 1 of 2, controls 2 of 2: -0.5
    diff, _ = unadjusted_difference(
        np.array([True, True, False, False]), np.array([1, 0, 1, 1]), pd.Series(["a", "b", "c", "d"]), np.ones(4)
    )
    assert diff == pytest.approx(-0.5)


def test_aipw_refuses_a_design_without_controls() -> None:
    with pytest.raises(ValueError, match="treated and control"):
        aipw_att(pd.DataFrame({"x": [0.0, 1.0]}), np.array([True, True]), np.array([1, 0]),
                 pd.Series(["a", "b"]), np.ones(2), FAST)  # fmt: skip


def test_failure_design_compares_with_orders_that_went_fine() -> None:
    orders = pd.DataFrame(
        {
            "order_id": ["o1", "o2", "o3", "o4", "o5"],
            "late_delivery": [True, True, False, False, False],
            "wrong_item": [False, True, True, False, False],
            "retailer_return": [False, False, True, False, False],
        }
    )
    failures = ["late_delivery", "wrong_item", "retailer_return"]
    late = failure_design(orders, "late_delivery", failures, [])
    # o2 is late and wrong: neither a clean late order nor a control; o3 failed otherwise
    assert list(late.rows["order_id"]) == ["o1", "o4", "o5"]
    assert list(late.treated) == [True, False, False]
    wrong = failure_design(orders, "wrong_item", failures, [])
    # a wrong item and its return are one failure
    assert list(wrong.rows["order_id"]) == ["o3", "o4", "o5"]


def test_responses_are_compared_only_within_failures_both_groups_have() -> None:
    # "wrong item, not returned" (w) exists only with a complaint: no twin without one
    orders = pd.DataFrame(
        {
            "late_delivery": [True] * 10 + [False] * 10 + [False] * 6,
            "wrong_item": [False] * 20 + [True] * 6,
            "complaint": [True] * 5 + [False] * 5 + [True] * 5 + [False] * 5 + [True] * 6,
        }
    )
    treated = orders["complaint"].to_numpy()
    kept = common_failures(orders, treated, ["late_delivery", "wrong_item"])
    assert kept.tolist() == [True] * 20 + [False] * 6
    design = response_design(orders.assign(order_id=range(26)), "complaint", ["late_delivery", "wrong_item"], [])
    assert design.left_out == 6 and len(design.rows) == 20


def test_sampled_controls_are_weighted_back() -> None:
    rows = pd.DataFrame({"order_id": [f"o{i}" for i in range(1000)]})
    treated = np.arange(1000) < 100
    design = Design("late", rows, treated, [], "")
    _, kept_treated, weight = sampled_design(design, replace(FAST, controls_per_treated=2.0), "x")
    assert kept_treated.sum() == 100
    # the weighted controls stand for all 900 (a hash sample: close, not exact)
    assert weight[~kept_treated].sum() == pytest.approx(900, rel=0.15)
    assert (~kept_treated).sum() < 300


def test_returning_customer_value_from_the_customers_own_pace() -> None:
    rows = pd.DataFrame(
        {
            "prev_orders": [0, 3],
            "prev_value_mean": [np.nan, 40.0],
            "order_value": [50.0, 80.0],
            "days_since_first_order": [0.0, 90.0],
        }
    )
    # first order: one order of its own value; fourth: mean (3 * 40 + 80) / 4 = 50, pace 3 per 90 days over 90 days
    assert returning_customer_value(rows, 90) == pytest.approx([50.0, 150.0])


def test_params_are_checked() -> None:
    with pytest.raises(ValueError, match=r"impact\.trim"):
        ImpactParams.from_dict({"trim": 0.7})
    with pytest.raises(ValueError, match=r"did you mean impact\.folds"):
        ImpactParams.from_dict({"fold": 3})


def test_hand_made_orders_get_history_treatments_and_outcome(tables: dict[str, pd.DataFrame]) -> None:
    params = FeatureParams(horizon_days=30)
    inputs = inputs_from_frames(tables, AS_OF)
    orders = impact_orders(inputs, params).execute().set_index("order_id")
    # o4 (2024-06-20) has no 30 days of follow-up by 2024-07-01
    assert sorted(orders.index) == ["o1", "o2", "o3"]
    assert orders.loc["o2", "prev_orders"] == 1 and orders.loc["o2", "prev_value_mean"] == 50.0
    assert orders.loc["o2", "late_delivery"] and orders.loc["o2", "damaged"] and orders.loc["o2", "complaint"]
    assert orders.loc["o2", "ticket_fast"]  # resolved 14 hours after opening
    assert orders.loc["o3", "retailer_cancellation"]
    # o1 -> o2 after 56 days: not within 30
    assert not orders.loc["o1", "ordered_again"]
    assert available_kinds(inputs)["retailer_return"] and not available_kinds(inputs)["any_return"]


def test_loyalty_and_country_are_those_known_when_the_order_was_placed(tables: dict[str, pd.DataFrame]) -> None:
    """c1 is a member in the export but joined between o1 and o2; o1 went to Norway, the export says Sweden."""
    tables["customers"] = tables["customers"].assign(
        loyalty_joined_at=[pd.Timestamp("2024-02-01"), pd.NaT], loyalty_left_at=[pd.NaT, pd.NaT]
    )
    tables["orders"] = tables["orders"].assign(country=["NOR", None, None, None])
    history = order_history(inputs_from_frames(tables, AS_OF), FeatureParams()).execute().set_index("order_id")
    assert history.loc["o1", "loyalty_member"] == "false" and history.loc["o2", "loyalty_member"] == "true"
    assert history.loc["o1", "country"] == "NOR" and history.loc["o2", "country"] == "SE"


def test_orders_only_source_lists_the_kinds_it_cannot_show(tables: dict[str, pd.DataFrame]) -> None:
    orders_only = {"orders": tables["orders"][["order_id", "customer_id", "ordered_at", "order_value"]]}
    available = available_kinds(inputs_from_frames(orders_only, AS_OF))
    assert not any(available.values())


def test_history_sees_nothing_from_the_order_time_on(shop: dict[str, Path]) -> None:
    """Every history column of an order placed before t is the same when everything at or after t is deleted."""
    full = {
        name: pd.read_parquet(shop["validated"] / f"{name}.parquet")
        for name in ("customers", "orders", "reviews", "tickets", "returns")
    }
    params = FeatureParams()
    whole = inputs_from_frames(full, pd.Timestamp("2026-01-01"))
    columns = ["order_id", *HISTORY_COLUMNS]
    for cutoff in (pd.Timestamp("2024-03-01"), pd.Timestamp("2025-06-15 12:00")):
        before = inputs_from_frames(known_before(full, cutoff), cutoff, whole.available)
        seen = order_history(before, params).execute()[columns].set_index("order_id").sort_index()
        everything = order_history(whole, params).execute()[columns].set_index("order_id")
        placed_before = everything.loc[seen.index]
        assert len(seen) > 1000
        assert int(seen["prev_bad_experiences"].sum()) > 100  # the check has events to see
        pd.testing.assert_frame_equal(seen, placed_before, check_dtype=False)


@pytest.fixture(scope="module")
def impact_run(shop: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("impact")
    params = write_params(
        root / "params.yaml",
        generate={"n_customers": 3000},
        data={"path": str(shop["raw"])},
        mlflow={"experiment": "impact-test"},
    )
    paths = {
        "headline": root / "impact.json", "json": root / "impact_detail.json", "md": root / "impact.md",
        "figures": root / "figures", "root": root,
    }  # fmt: skip
    invoke(
        "impact", "--params", params, "--validated", shop["validated"], "--validation-report", shop["report"],
        "--truth", shop["truth"], "--metrics", paths["headline"], "--report", paths["json"], "--report-md",
        paths["md"], "--figures", paths["figures"], "--no-track",
    )  # fmt: skip
    return paths


def test_intervals_cover_the_synthetic_truth_for_every_kind(impact_run: dict[str, Path]) -> None:
    report = json.loads(impact_run["json"].read_text())
    truth = report["truth"]
    estimated = [k for k, v in report["kinds"].items() if v["status"] == "estimated"]
    assert set(truth) == {*estimated, "fast_recovery"}
    assert {"late_delivery", "retailer_cancellation", "wrong_item", "damaged", "complaint"} <= set(estimated)
    # Every kind at once: each 95 % interval misses its truth one time in twenty, so all of seven cover it only
    # about seven times in ten even for a perfect estimator. The family-wise check (Bonferroni: each interval
    # widened to 1 - 0.05 / kinds) holds 95 % of the time for a correct one; a biased estimator fails it.
    z_family = float(norm.ppf(1 - 0.025 / len(truth)))
    for kind, values in truth.items():
        entry = report["recovery"] if kind == "fast_recovery" else report["kinds"][kind]
        half_width = (entry["ci"][1] - entry["ci"][0]) / 2 * z_family / Z95
        assert abs(values["sample_att"] - entry["att"]) <= half_width, (kind, entry["att"], entry["ci"], values)
    # the true harm of a failure is large; a low review in itself changes nothing in the generator
    assert truth["late_delivery"]["att"] < -0.1 and truth["low_review"]["att"] == 0.0
    # a complaint's plain difference carries the failure behind it: far below its truth
    complaint = report["kinds"]["complaint"]
    assert complaint["unadjusted_ci"][1] < truth["complaint"]["sample_att"]


def test_report_ranks_money_lists_unavailable_kinds_and_draws_the_chart(impact_run: dict[str, Path]) -> None:
    report = json.loads(impact_run["json"].read_text())
    assert report["kinds"]["any_return"]["status"] == "unavailable"
    lost = [report["kinds"][k]["money"]["revenue_per_month"] for k in report["ranking"]]
    assert lost == sorted(lost, reverse=True) and lost[0] > 0
    late = report["kinds"]["late_delivery"]
    assert set(late["refutations"]) == {"placebo_treatment", "random_common_cause", "halves"}
    assert 0.0 <= late["overlap"]["trimmed_share"] < 0.05
    assert report["recovery"]["money_now"]["revenue_per_month"] > 0
    markdown = impact_run["md"].read_text()
    assert "| 1 | " in markdown and "Service recovery" in markdown and "Not shown by this data" in markdown
    assert (impact_run["figures"] / "impact.png").stat().st_size > 10_000


def test_headline_is_what_the_costliest_kind_loses_and_recovery_wins(impact_run: dict[str, Path]) -> None:
    """The DVC metrics file: two numbers, those of the full report, so `dvc metrics show` stays readable."""
    headline = json.loads(impact_run["headline"].read_text())
    report = json.loads(impact_run["json"].read_text())
    top = report["ranking"][0]
    assert headline == {
        "lost_month": round(report["kinds"][top]["money"]["revenue_per_month"]),
        "won_month": round(report["recovery"]["money_now"]["revenue_per_month"]),
    }


def test_two_halves_of_the_customers_agree(impact_run: dict[str, Path]) -> None:
    report = json.loads(impact_run["json"].read_text())
    for kind in report["ranking"]:
        assert report["kinds"][kind]["refutations"]["halves"]["passed"], kind


def test_stage_logs_an_mlflow_run(
    shop: dict[str, Path], impact_run: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    impact_run_json = impact_run["json"]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    params = write_params(
        tmp_path / "params.yaml", data={"path": str(shop["raw"])}, mlflow={"experiment": "impact-test"},
        impact={"refutations": False, "max_orders": 15_000},
    )  # fmt: skip
    invoke(
        "impact", "--params", params, "--validated", shop["validated"], "--validation-report", shop["report"],
        "--truth", tmp_path / "no-truth", "--metrics", tmp_path / "impact.json", "--report",
        tmp_path / "impact_detail.json", "--report-md", tmp_path / "impact.md", "--figures", tmp_path / "figures",
    )  # fmt: skip
    from mlflow.tracking import MlflowClient

    report = json.loads((tmp_path / "impact_detail.json").read_text())
    assert "truth" not in report  # no ground truth given: nothing to compare with
    # the small shop has about 25,000 orders: a stable sample of customers holding about 15,000 is analysed
    assert 0.4 < report["customer_share_analysed"] < 0.8 and report["orders_analysed"] < 15_000
    # orders hit per month stand for the whole shop: close to the whole shop's count, not the sample's
    whole = json.loads(impact_run_json.read_text())["kinds"]["late_delivery"]["money"]["orders_per_month"]
    sampled = report["kinds"]["late_delivery"]["money"]["orders_per_month"]
    assert sampled == pytest.approx(whole, rel=0.2)
    client = MlflowClient()
    experiment = client.get_experiment_by_name("impact-test")
    (run,) = client.search_runs([experiment.experiment_id], "tags.stage = 'impact'")
    assert run.data.metrics["late_delivery_att"] == pytest.approx(report["kinds"]["late_delivery"]["att"])
    assert {"impact.json", "impact_detail.json", "impact.md", "impact.png"} <= {
        a.path for a in MlflowClient().list_artifacts(run.info.run_id)
    }


def test_estimate_on_validated_tables_matches_read_validated(shop: dict[str, Path]) -> None:
    """The stage's reading path (Parquet on DuckDB) gives the same orders as in-memory frames."""
    inputs = read_validated(ibis.duckdb.connect(), shop["validated"], pd.Timestamp("2026-01-01"))
    orders = impact_orders(inputs, FeatureParams()).execute()
    assert orders["order_id"].is_unique and orders["ordered_again"].dtype == bool
    entry, ids = estimate(failure_design(orders, "late_delivery", ["late_delivery"], ["prev_orders"]), FAST, False)
    assert len(ids) == entry["treated_orders"] > 100


def test_truth_needs_the_generate_params_the_shop_was_made_with(shop: dict[str, Path]) -> None:
    from pipelines.params import load_params
    from pipelines.stages.impact import shop_params

    params = load_params(shop["params"])
    assert shop_params(params, shop["truth"]) is not None
    params["generate"] = {**params["generate"], "late_delivery_effect": 0.1}
    assert shop_params(params, shop["truth"]) is None


def test_returns_without_reasons_stand_in_for_the_shops_faults(tables: dict[str, pd.DataFrame]) -> None:
    no_reasons = {**tables, "returns": tables["returns"].drop(columns="reason")}
    available = available_kinds(inputs_from_frames(no_reasons, AS_OF))
    assert available["any_return"] and not available["retailer_return"]


def test_online_retail_credit_notes_with_their_caveat(tmp_path: Path) -> None:
    """On UCI Online Retail only returns of any reason can be shown, and the report says what they cannot."""
    from conftest import SHARED_DATA

    data = SHARED_DATA / "uci-online-retail"
    if not data.is_dir():
        pytest.skip(f"UCI Online Retail is not here ({data} is absent)")
    params = write_params(
        tmp_path / "params.yaml",
        data={"source": "online_retail", "path": str(data), "as_of": "2011-12-10"},
        features={"first_cutoff": "2010-06-01"},
        impact={"oracle": False},
    )
    invoke(
        "validate", "--params", params, "--validated", tmp_path / "validated", "--quarantine", tmp_path / "q",
        "--report", tmp_path / "validation.json", "--report-md", tmp_path / "validation.md",
    )  # fmt: skip
    invoke(
        "impact", "--params", params, "--validated", tmp_path / "validated", "--validation-report",
        tmp_path / "validation.json", "--metrics", tmp_path / "impact.json", "--report", tmp_path / "detail.json",
        "--report-md", tmp_path / "impact.md", "--figures", tmp_path / "figures", "--no-track",
    )  # fmt: skip
    report = json.loads((tmp_path / "detail.json").read_text())
    assert report["ranking"] == ["any_return"]
    assert json.loads((tmp_path / "impact.json").read_text()).keys() == {"lost_month"}  # no recovery
    assert report["kinds"]["late_delivery"]["status"] == "unavailable"
    assert report["recovery"]["status"] == "unavailable"
    assert "Caveat: a credit note does not say" in (tmp_path / "impact.md").read_text()
