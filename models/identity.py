"""What data a model was trained on, and whether data it is asked to score is the same shop's.

A model records its data's source kind and location, the contract tables and columns present, its training period
and a fingerprint of its customer ids: a bottom-k sketch (the k smallest 64-bit hashes of the ids), small enough for
the metadata. A later export of the same shop still holds (nearly) all of those customers; another shop holds
(nearly) none, whatever its size, so the share of the sketch found in the scoring data tells the two apart.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import pandas as pd

SKETCH_SIZE = 256
# Below this share of the training sketch found in the data, the data is another shop's.
MIN_CUSTOMER_OVERLAP = 0.5


def id_hash(customer_id: str) -> str:
    """A stable 64-bit hash (hex), the same on every machine and Python version."""
    return hashlib.blake2b(customer_id.encode(), digest_size=8).hexdigest()


def customer_fingerprint(customer_ids: Iterable[str]) -> dict[str, Any]:
    """How many distinct ids, and the sketch: the SKETCH_SIZE smallest of their hashes."""
    hashes = sorted({id_hash(str(customer_id)) for customer_id in customer_ids})
    return {"customers": len(hashes), "sketch": hashes[:SKETCH_SIZE]}


def customer_overlap(fingerprint: dict[str, Any], customer_ids: Iterable[str]) -> float:
    """Share of the fingerprint's sketch that is among `customer_ids` (1.0: the same customers)."""
    sketch = set(fingerprint["sketch"])
    if not sketch:
        return 0.0
    found = sketch & {id_hash(str(customer_id)) for customer_id in customer_ids}
    return len(found) / len(sketch)


def data_identity(
    source: str,
    location: str | None,
    columns: dict[str, list[str]],
    customer_ids: Iterable[str],
    cutoffs: pd.Series,
    as_of: pd.Timestamp,
) -> dict[str, Any]:
    """The data block of a model's metadata."""
    return {
        "source": source,
        "location": location,
        "columns": {table: sorted(names) for table, names in sorted(columns.items())},
        "customer_ids": customer_fingerprint(customer_ids),
        "period": {
            "first_cutoff": pd.Timestamp(cutoffs.min()).isoformat(),
            "last_cutoff": pd.Timestamp(cutoffs.max()).isoformat(),
            "as_of": as_of.isoformat(),
        },
    }


def other_data(trained_on: dict[str, Any] | None, source: str, location: str | None, customer_ids: pd.Series) -> str:
    """Why the data is not what the model was trained on ('' when it is): another source kind, or too few of the
    model's customers. A new location alone is fine (a nightly export may land in a new folder)."""
    if trained_on is None:
        return "the model records no training data (saved by an older version): retrain it"
    trained = f"{trained_on['source']} data at {trained_on['location']}"
    if trained_on["source"] != source:
        return f"the model was trained on {trained}, not on {source} data at {location}"
    overlap = customer_overlap(trained_on["customer_ids"], customer_ids)
    if overlap < MIN_CUSTOMER_OVERLAP:
        return (
            f"the model was trained on other data ({trained}): only {overlap:.0%} of a sample of its customers are "
            f"in the data at {location}"
        )
    return ""


def too_old(deploy_at: pd.Timestamp, as_of: pd.Timestamp, max_age_days: float | None) -> str:
    """Why the model is too old to score at `as_of` ('' when it is not; no limit when max_age_days is None)."""
    age_days = (as_of - deploy_at) / pd.Timedelta(days=1)
    if max_age_days is None or age_days <= max_age_days:
        return ""
    return (
        f"the model is {age_days:.0f} days old at as-of {as_of} (deployed at {deploy_at}; "
        f"score.max_model_age_days = {max_age_days:g}): retrain it"
    )


def registered_model_name(trained_on: dict[str, Any]) -> str:
    """churn-<source>-<folder name of its location>: one registered model, and so one champion, per shop."""
    location = str(trained_on.get("location") or "").rstrip("/\\")
    folder = location.replace("\\", "/").rsplit("/", 1)[-1]
    parts = ["churn", trained_on["source"], *([folder] if folder else [])]
    name = "-".join(parts)
    return "".join(character if character.isalnum() or character in "-_." else "_" for character in name)
