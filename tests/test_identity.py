"""A model's record of its training data: the customer-id sketch, the checks scoring makes, the registered name."""

from __future__ import annotations

import pandas as pd

from models.identity import (
    SKETCH_SIZE,
    customer_fingerprint,
    customer_overlap,
    other_data,
    registered_model_name,
    too_old,
)

SHOP = [f"C{number:08d}" for number in range(2000)]


def trained_on(source: str = "files", location: str = "data/raw/synthetic") -> dict[str, object]:
    return {"source": source, "location": location, "customer_ids": customer_fingerprint(SHOP[:1000])}


def test_the_sketch_is_the_smallest_hashes_and_independent_of_order() -> None:
    fingerprint = customer_fingerprint(SHOP)
    assert fingerprint["customers"] == 2000 and len(fingerprint["sketch"]) == SKETCH_SIZE
    assert fingerprint["sketch"] == sorted(fingerprint["sketch"])
    assert customer_fingerprint(reversed(SHOP)) == fingerprint


def test_overlap_is_the_share_of_the_sketch_found() -> None:
    fingerprint = customer_fingerprint(SHOP[:1000])
    assert customer_overlap(fingerprint, SHOP) == 1.0  # a later export: everyone is still there
    assert customer_overlap(fingerprint, [f"other-{c}" for c in SHOP]) == 0.0
    assert 0.3 < customer_overlap(fingerprint, SHOP[:500]) < 0.7  # half of them


def test_other_data_names_what_differs() -> None:
    ids = pd.Series(SHOP)
    assert other_data(trained_on(), "files", "/exports/2026-01-02", ids) == ""  # a new folder of the same shop
    assert "not on online_retail data" in other_data(trained_on(), "online_retail", "x", ids)
    assert "only 0% of a sample" in other_data(trained_on(), "files", "x", "other-" + ids)
    assert "records no training data" in other_data(None, "files", "x", ids)


def test_too_old_counts_days_from_deployment() -> None:
    deployed = pd.Timestamp("2025-01-01")
    assert too_old(deployed, pd.Timestamp("2025-04-01"), 90) == ""
    assert too_old(deployed, pd.Timestamp("2025-04-02"), 90).startswith("the model is 91 days old")
    assert too_old(deployed, pd.Timestamp("2030-01-01"), None) == ""


def test_each_source_gets_its_own_registered_name() -> None:
    assert registered_model_name(trained_on()) == "churn-files-synthetic"
    assert registered_model_name(trained_on("online_retail", "../shared/data/uci-online-retail/")) == (
        "churn-online_retail-uci-online-retail"
    )
    assert registered_model_name(trained_on("files", "C:\\shops\\north shop")) == "churn-files-north_shop"
    assert registered_model_name(trained_on("olist", "")) == "churn-olist"
