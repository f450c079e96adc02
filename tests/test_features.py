"""Point-in-time features and labels on hand-worked tiny tables (see conftest.clean_tables for the shop).

At the cutoff 2024-03-08, customer c1 has o1 (2024-01-05, on time, reviewed 5) and o2 (2024-03-01, promised 03-04,
delivered 03-06: two days late; ticket opened 03-06 10:00 and resolved 03-07 00:00; returned as damaged 03-10,
after the cutoff). Customer c2 has o3 (2024-02-10, cancelled out of stock); o4 (2024-06-20) is after the cutoff.
"""

from __future__ import annotations

from pathlib import Path

import ibis
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from conftest import AS_OF, clean_tables

from features.build import FEATURE_SPECS, feature_dictionary, feature_table, features_at
from features.checks import check_feature_invariants
from features.cutoffs import FeatureParams, cutoff_schedule, label_observed
from features.inputs import inputs_from_frames
from features.labels import churn_labels, population
from features.relationship import RELATIONSHIP_SPECS, relationship_features
from features.returns import RETURN_SPECS, returns_features
from features.rfm import RFM_SPECS, TREND_SPECS, rfm_and_trend_features
from features.satisfaction import SATISFACTION_SPECS, bad_events, last_bad_experience, satisfaction_features

CUTOFF = pd.Timestamp("2024-03-08")
PARAMS = FeatureParams(horizon_days=30)


def build(frames: dict[str, pd.DataFrame], cutoff: pd.Timestamp = CUTOFF, **params: object) -> pd.DataFrame:
    inputs = inputs_from_frames(frames, AS_OF)
    table = features_at(inputs, cutoff, FeatureParams(**{"horizon_days": 30, **params}))  # type: ignore[arg-type]
    return table.execute().set_index("customer_id").sort_index()


@pytest.fixture(scope="module")
def shop_features() -> pd.DataFrame:
    return build(clean_tables())


def test_one_row_per_customer_and_cutoff(shop_features: pd.DataFrame) -> None:
    assert shop_features.index.tolist() == ["c1", "c2"]
    assert (shop_features["cutoff"] == CUTOFF).all()


def test_rfm(shop_features: pd.DataFrame) -> None:
    c1, c2 = shop_features.loc["c1"], shop_features.loc["c2"]
    assert c1["days_since_last_order"] == 7.0  # o2 on 03-01
    assert c1["days_since_first_order"] == 63.0
    assert (c1["orders_30d"], c1["orders_90d"], c1["orders_365d"], c1["orders_total"]) == (1, 2, 2, 2)
    assert (c1["value_sum"], c1["value_mean"], c1["value_max"]) == (70.0, 35.0, 50.0)
    assert c1["gap_mean_days"] == 56.0  # 01-05 to 03-01
    assert pd.isna(c1["gap_std_days"])  # one gap
    assert c1["overdue_ratio"] == pytest.approx(7 / 56)
    assert c1["cancelled_share"] == 0.0
    # c2's only order was cancelled: no qualifying order, but the customer is in the population.
    assert pd.isna(c2["days_since_last_order"]) and c2["orders_total"] == 0 and c2["value_sum"] == 0.0
    assert c2["cancelled_share"] == 1.0


def test_trend_and_season(shop_features: pd.DataFrame) -> None:
    c1 = shop_features.loc["c1"]
    assert (c1["orders_prev_90d"], c1["orders_90d_change"]) == (0, 2)
    assert (c1["value_90d"], c1["value_90d_change"]) == (70.0, 70.0)
    assert (shop_features["cutoff_month"] == 3).all()


def test_bad_experiences_count_from_when_they_were_known(shop_features: pd.DataFrame) -> None:
    c1, c2 = shop_features.loc["c1"], shop_features.loc["c2"]
    assert (c1["late_delivery_90d"], c1["complaint_90d"]) == (1, 1)
    assert pd.isna(c1["retailer_return_total"])  # the shop's first return is on 03-10: none recorded yet
    assert c1["late_days_max_365d"] == 2.0
    assert c1["bad_experiences_total"] == 2
    assert c1["days_since_last_bad_experience"] == pytest.approx(1 + 14 / 24)  # ticket opened 03-06 10:00
    assert c1["bad_order_share"] == 0.5 and bool(c1["last_order_went_wrong"])
    assert (c2["retailer_cancellation_total"], c2["bad_experiences_90d"], c2["bad_order_share"]) == (1, 1, 1.0)


def test_reviews_tickets_and_recovery(shop_features: pd.DataFrame) -> None:
    c1, c2 = shop_features.loc["c1"], shop_features.loc["c2"]
    assert (c1["review_score_mean"], c1["review_score_min"], c1["review_score_last"]) == (5.0, 5.0, 5.0)
    assert c1["tickets_open"] == 0
    assert c1["ticket_resolution_days_mean"] == pytest.approx(14 / 24)
    assert bool(c1["last_bad_experience_recovered"])  # resolved within 2 days
    assert not bool(c2["last_bad_experience_recovered"])  # no ticket for the cancelled order
    assert c2["tickets_open"] == 0 and pd.isna(c2["review_score_mean"])


def test_ticket_open_at_the_cutoff_and_slow_recovery() -> None:
    frames = clean_tables()
    frames["tickets"].loc[0, "resolved_at"] = pd.Timestamp("2024-03-12")  # after the cutoff
    c1 = build(frames).loc["c1"]
    assert c1["tickets_open"] == 1
    assert pd.isna(c1["ticket_resolution_days_mean"])
    assert not bool(c1["last_bad_experience_recovered"])  # not resolved by the cutoff


def test_late_delivery_still_on_its_way_counts_days_so_far() -> None:
    frames = clean_tables()
    frames["orders"].loc[1, "delivered_at"] = pd.Timestamp("2024-03-20")  # o2 arrives after the cutoff
    c1 = build(frames).loc["c1"]
    assert c1["late_delivery_total"] == 1
    assert c1["late_days_max_365d"] == 4.0  # promised 03-04, cutoff 03-08


def test_late_delivery_is_unknown_before_the_promised_date() -> None:
    c1 = build(clean_tables(), cutoff=pd.Timestamp("2024-03-03")).loc["c1"]
    assert c1["late_delivery_total"] == 0


def test_low_review_counts_from_reviewed_at() -> None:
    frames = clean_tables()
    frames["reviews"].loc[0, "review_score"] = 1
    # the shop's first review: before it, reviews are unknown, not zero
    assert pd.isna(build(frames, cutoff=pd.Timestamp("2024-01-09 00:00:00")).loc["c1", "low_review_total"])
    assert build(frames, cutoff=pd.Timestamp("2024-01-09 00:00:01")).loc["c1", "low_review_total"] == 1


def test_relationship(shop_features: pd.DataFrame) -> None:
    c1, c2 = shop_features.loc["c1"], shop_features.loc["c2"]
    assert c1["tenure_days"] == 67.0 and c2["tenure_days"] == 36.0  # from sign-up
    assert bool(c1["loyalty_member"]) and c1["country"] == "SE"
    assert c1["invoice_share"] == 0.5 and c1["channels_used"] == 2
    assert c1["main_channel"] == "app"  # web and app once each: alphabetical
    assert c2["main_payment_method"] == "card"


def test_returns_of_any_reason_count_from_when_they_were_registered(shop_features: pd.DataFrame) -> None:
    # o2's return (03-10), the shop's first, is after the cutoff: returns are unknown, not zero, before it.
    c1 = shop_features.loc["c1"]
    assert c1[["returns_90d", "returns_total", "returned_order_share", "days_since_last_return"]].isna().all()
    frames = clean_tables()
    # A reason the shop is not to blame for: not a bad experience, still a return.
    frames["returns"]["reason"] = "changed_mind"
    later = build(frames, pd.Timestamp("2024-03-15"))
    c1, c2 = later.loc["c1"], later.loc["c2"]
    assert (c1["returns_90d"], c1["returns_365d"], c1["returns_total"]) == (1, 1, 1)
    assert c1["returned_order_share"] == 0.5  # o2 of o1, o2
    assert c1["days_since_last_return"] == 5.0
    assert c1["retailer_return_total"] == 0
    assert (c2["returns_total"], c2["returned_order_share"]) == (0, 0.0)
    assert pd.isna(c2["days_since_last_return"])


def test_absent_tables_leave_their_features_missing_not_zero() -> None:
    frames = clean_tables()
    orders_only = build({"orders": frames["orders"]})
    for name in (
        "review_score_mean",
        "complaint_total",
        "tickets_open",
        "retailer_return_90d",
        "returns_total",
        "returned_order_share",
        "loyalty_member",
    ):
        assert orders_only[name].isna().all(), name
    assert orders_only.loc["c1", "late_delivery_total"] == 1  # orders alone still show lateness
    assert orders_only.loc["c1", "tenure_days"] == 63.0  # from the first order
    dictionary = feature_dictionary(inputs_from_frames({"orders": frames["orders"]}, AS_OF)).set_index("name")
    assert not dictionary.loc["review_score_mean", "available"]
    assert dictionary.loc["late_delivery_total", "available"]


def test_absent_columns_leave_their_features_missing() -> None:
    orders = clean_tables()["orders"][["order_id", "customer_id", "ordered_at", "order_value"]]
    features = build({"orders": orders})
    assert features["late_delivery_total"].isna().all()
    assert features["cancelled_share"].isna().all()
    assert features["orders_total"].tolist() == [2, 1]  # without status every order qualifies (o3 too)
    # No kind of bad experience can be seen, so "none so far" is unknown, not zero.
    for name in ("bad_experiences_total", "bad_order_share", "last_order_went_wrong", "days_since_last_bad_experience"):
        assert features[name].isna().all(), name
    dictionary = feature_dictionary(inputs_from_frames({"orders": orders}, AS_OF)).set_index("name")
    assert not dictionary.loc["bad_experiences_total", "available"]
    assert (
        "one of: orders.promised_delivery_at + orders.delivered_at" in dictionary.loc["bad_experiences_total", "needs"]
    )
    # One kind is enough: the orders' delivery dates show late deliveries.
    with_deliveries = clean_tables()["orders"][["order_id", "customer_id", "ordered_at", "order_value",
                                                "promised_delivery_at", "delivered_at"]]  # fmt: skip
    assert build({"orders": with_deliveries}).loc["c1", "bad_experiences_total"] == 1


# Labels and population


def one_customer(*order_times: str, status: str = "delivered") -> dict[str, pd.DataFrame]:
    times = [pd.Timestamp(t) for t in order_times]
    return {
        "orders": pd.DataFrame(
            {
                "order_id": [f"o{i}" for i in range(len(times))],
                "customer_id": "c",
                "ordered_at": times,
                "order_value": 10.0,
                "status": status,
            }
        )
    }


def label(frames: dict[str, pd.DataFrame], cutoff: str = "2024-03-01", horizon: int = 30) -> pd.DataFrame:
    inputs = inputs_from_frames(frames, AS_OF)
    return features_at(inputs, pd.Timestamp(cutoff), FeatureParams(horizon_days=horizon)).execute()


def test_order_exactly_at_the_cutoff_is_in_the_label_window_not_the_features() -> None:
    result = label(one_customer("2024-02-01", "2024-03-01"))
    assert result["churned"].tolist() == [0]
    assert result["orders_total"].tolist() == [1]


def test_order_exactly_at_the_window_end_does_not_count() -> None:
    assert label(one_customer("2024-02-01", "2024-03-31"))["churned"].tolist() == [1]
    assert label(one_customer("2024-02-01", "2024-03-30 23:59:59"))["churned"].tolist() == [0]


def test_single_order_customer() -> None:
    result = label(one_customer("2024-02-01")).iloc[0]
    assert result["churned"] == 1 and result["orders_total"] == 1 and pd.isna(result["gap_mean_days"])


def test_customer_who_joined_after_the_cutoff_is_not_in_the_population() -> None:
    assert label(one_customer("2024-03-05")).empty


def test_customer_inactive_for_longer_than_the_window_is_not_in_the_population() -> None:
    assert label(one_customer("2023-01-01", "2024-03-10")).empty  # 425 days before the cutoff


def test_cancelled_orders_do_not_stop_churn() -> None:
    frames = one_customer("2024-02-01", "2024-03-10")
    frames["orders"].loc[1, "status"] = "cancelled"
    assert label(frames)["churned"].tolist() == [1]


def test_unobserved_label_window_gives_no_label() -> None:
    result = label(one_customer("2024-06-01"), cutoff="2024-06-15", horizon=30)  # window ends after AS_OF
    assert result["churned"].isna().all() and len(result) == 1


def test_population_and_labels_directly() -> None:
    inputs = inputs_from_frames(clean_tables(), AS_OF)
    assert sorted(population(inputs.orders, CUTOFF, 365).execute()["customer_id"]) == ["c1", "c2"]
    labels = churn_labels(inputs.orders, pd.Timestamp("2024-06-01"), 30, AS_OF)
    assert labels is not None and labels.execute()["customer_id"].tolist() == ["c2"]  # o4 on 06-20
    assert churn_labels(inputs.orders, pd.Timestamp("2024-06-15"), 30, AS_OF) is None


def test_cutoff_schedule() -> None:
    cutoffs = cutoff_schedule(pd.Timestamp("2024-01-01"), 30, pd.Timestamp("2024-03-01"))
    assert cutoffs == [pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-31"), pd.Timestamp("2024-03-01")]
    assert label_observed(pd.Timestamp("2024-01-31"), 30, pd.Timestamp("2024-03-01"))
    assert not label_observed(pd.Timestamp("2024-02-01"), 30, pd.Timestamp("2024-03-01"))
    with pytest.raises(ValueError, match="after the data's as-of time"):
        cutoff_schedule(pd.Timestamp("2025-01-01"), 30, pd.Timestamp("2024-03-01"))


def test_feature_params_reject_unknown_and_nonpositive() -> None:
    with pytest.raises(ValueError, match=r"features\.horizon is not a param"):
        FeatureParams.from_dict({"horizon": 90})
    with pytest.raises(ValueError, match="must be positive"):
        FeatureParams.from_dict({"every_days": 0})


def test_many_cutoffs_in_one_query_equal_one_by_one() -> None:
    inputs = inputs_from_frames(clean_tables(), AS_OF)
    cutoffs = [pd.Timestamp("2024-02-15"), CUTOFF, pd.Timestamp("2024-06-25")]
    together = feature_table(inputs, cutoffs, PARAMS).execute().sort_values(["cutoff", "customer_id"])
    apart = pd.concat([features_at(inputs, c, PARAMS).execute() for c in cutoffs]).sort_values(
        ["cutoff", "customer_id"]
    )
    # Only dtypes may differ: pandas concatenates an all-null label column of one cutoff as object.
    pd.testing.assert_frame_equal(together.reset_index(drop=True), apart.reset_index(drop=True), check_dtype=False)


# The dictionary and the builders agree.


def test_every_group_builds_exactly_its_specs() -> None:
    inputs = inputs_from_frames(clean_tables(), AS_OF)
    groups = {
        "rfm+trend": (rfm_and_trend_features(inputs.orders, CUTOFF), RFM_SPECS + TREND_SPECS),
        "satisfaction": (
            satisfaction_features(inputs, bad_events(inputs, PARAMS), CUTOFF, PARAMS),
            SATISFACTION_SPECS,
        ),
        "returns": (returns_features(inputs, CUTOFF), RETURN_SPECS),
        "relationship": (relationship_features(inputs, CUTOFF), RELATIONSHIP_SPECS),
    }
    for group, (table, specs) in groups.items():
        assert set(table.columns) - {"customer_id"} == {spec.name for spec in specs}, group


def test_feature_names_are_unique_and_documented() -> None:
    names = [spec.name for spec in FEATURE_SPECS]
    assert len(names) == len(set(names))
    assert all(spec.definition and spec.unit and spec.window for spec in FEATURE_SPECS)


def test_every_expression_compiles_for_spark() -> None:
    ibis.pyspark  # noqa: B018 -- registers the PySpark backend options the compiler reads
    inputs = inputs_from_frames(clean_tables(), AS_OF)
    labelled = features_at(inputs, CUTOFF, PARAMS)
    unlabelled = features_at(inputs, pd.Timestamp("2024-06-25"), PARAMS)
    for expression in (labelled, unlabelled, feature_table(inputs, [CUTOFF, pd.Timestamp("2024-06-25")], PARAMS)):
        sql = ibis.to_sql(expression, dialect="pyspark")
        assert "SELECT" in sql and "`customer_id`" in sql


def test_invariants_hold_on_real_features_and_catch_breakage(shop_features: pd.DataFrame) -> None:
    table = shop_features.reset_index()

    def check(frame: pd.DataFrame) -> None:
        check_feature_invariants(pa.Table.from_pandas(frame, preserve_index=False))

    check(table)
    with pytest.raises(ValueError, match=r"^1 repeated \(customer_id, cutoff\) rows"):
        check(pd.concat([table, table.iloc[[0]]]))
    with pytest.raises(ValueError, match="exceeds tenure_days"):
        check(table.assign(tenure_days=0.5))
    with pytest.raises(ValueError, match="exceeds days_since_first_order on 1 rows"):
        first_order = table["days_since_first_order"].copy()
        first_order.iloc[0] = table["days_since_last_order"].iloc[0] - 1
        check(table.assign(days_since_first_order=first_order))
    with pytest.raises(ValueError, match="orders_total is negative"):
        check(table.assign(orders_total=-1))
    with pytest.raises(ValueError, match="churned holds"):
        check(table.assign(churned=2))
    # a missing value breaks nothing
    check(table.assign(days_since_last_order=np.nan, orders_total=pd.array([None] * len(table), dtype="Int64")))


def test_the_stage_checks_each_cutoff_before_writing_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pipelines.stages.features as stage

    inputs = inputs_from_frames(clean_tables(), AS_OF)
    path = tmp_path / "features.parquet"
    stage.write_features(inputs, [CUTOFF], PARAMS, path, "per_cutoff")
    assert len(pd.read_parquet(path)) == 2
    built = stage.features_at
    monkeypatch.setattr(
        stage, "features_at", lambda *args: built(*args).mutate(orders_total=ibis.literal(-1, type="int64"))
    )
    with pytest.raises(ValueError, match="orders_total is negative"):
        stage.write_features(inputs, [CUTOFF], PARAMS, tmp_path / "broken.parquet", "per_cutoff")
    assert not (tmp_path / "broken.parquet").exists()


def test_the_stage_writes_every_cutoff_in_order_and_stops_at_a_failed_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyarrow.parquet as pq

    import pipelines.stages.features as stage

    inputs = inputs_from_frames(clean_tables(), AS_OF)
    cutoffs = [pd.Timestamp("2024-02-20"), CUTOFF, pd.Timestamp("2024-06-25")]
    path = tmp_path / "features.parquet"
    stage.write_features(inputs, cutoffs, PARAMS, path, "per_cutoff")
    assert list(pd.read_parquet(path, columns=["cutoff"])["cutoff"].drop_duplicates()) == cutoffs
    for cutoff in cutoffs:
        expected = features_at(inputs, cutoff, PARAMS).to_pyarrow().sort_by("customer_id")
        at_cutoff = pq.read_table(path, filters=[("cutoff", "=", cutoff.to_pydatetime())]).sort_by("customer_id")
        assert at_cutoff.equals(expected.cast(at_cutoff.schema))

    class FullDisk(pq.ParquetWriter):
        def write_table(self, table: pa.Table, row_group_size: int | None = None) -> None:
            raise OSError("No space left on device")

    monkeypatch.setattr(stage.pq, "ParquetWriter", FullDisk)
    with pytest.raises(OSError, match="No space left"):
        stage.write_features(inputs, cutoffs, PARAMS, tmp_path / "full.parquet", "per_cutoff")


def test_last_bad_experience_is_the_latest_known_before_the_cutoff() -> None:
    inputs = inputs_from_frames(clean_tables(), AS_OF)
    events = bad_events(inputs, PARAMS)

    def last(cutoff: str) -> dict[str, tuple[str, pd.Timestamp]]:
        table = last_bad_experience(events, pd.Timestamp(cutoff)).execute()
        return {row.customer_id: (row.last_bad_kind, row.last_bad_known_at) for row in table.itertuples()}

    # c1: o2 late (known at its promised date 03-04), ticket opened 03-06 10:00, return on 03-10 (after 03-08).
    # c2: o3 cancelled out of stock, known at its order time 02-10.
    assert last("2024-03-08") == {
        "c1": ("complaint", pd.Timestamp("2024-03-06 10:00")),
        "c2": ("retailer_cancellation", pd.Timestamp("2024-02-10")),
    }
    assert last("2024-03-11")["c1"] == ("retailer_return", pd.Timestamp("2024-03-10"))
    assert last("2024-03-06 10:00") == {  # the ticket opened exactly at the cutoff is not yet known
        "c1": ("late_delivery", pd.Timestamp("2024-03-04")),
        "c2": ("retailer_cancellation", pd.Timestamp("2024-02-10")),
    }
