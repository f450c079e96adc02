"""Stage `impact`: what each kind of bad experience costs and what fast recovery wins back (models.impact), from
the validated tables; on the synthetic shop, next to the true effects from the generator's latent state."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import ibis
import numpy as np
import pandas as pd

from features.blocks import from_block
from features.cutoffs import FeatureParams
from features.impact import available_kinds, impact_orders
from features.inputs import read_validated
from models.impact import RECOVERY, ImpactParams, ImpactResult, analyse
from models.impact_report import impact_figure, impact_markdown
from models.tracking_settings import TrackingSettings
from pipelines.params import block, load_params
from pipelines.provenance import git_commit
from pipelines.validation.outcome import validated_as_of

log = logging.getLogger(__name__)

FIGURE = "impact.png"


@dataclass(frozen=True)
class ImpactOutputs:
    report: Path
    markdown: Path
    figures: Path


def run(
    params_path: Path, validated_dir: Path, validation_report: Path, truth_dir: Path | None, outputs: ImpactOutputs,
    track: bool = True,
) -> dict[str, Any]:  # fmt: skip
    """Analyse, write the JSON (DVC metrics), Markdown and chart, and log them to MLflow; returns the report."""
    params = load_params(params_path)
    settings = ImpactParams.from_dict(block(params, "impact"))
    feature_block = dict(block(params, "features"))
    feature_block.pop("strategy", None)
    feature_params = FeatureParams.from_dict(feature_block)
    as_of = validated_as_of(validation_report)
    inputs = read_validated(ibis.duckdb.connect(), validated_dir, as_of)
    available = available_kinds(inputs)
    orders = impact_orders(inputs, feature_params).execute()
    if orders.empty:
        raise ValueError(
            f"no order has its {feature_params.horizon_days}-day follow-up observed by {as_of.date()}: "
            "shorten features.horizon_days or add history"
        )
    log.info("impact: %d orders with a %d-day follow-up", len(orders), feature_params.horizon_days)
    result = analyse(orders, available, settings, feature_params.horizon_days)
    report = result.report
    report["recovery_days"] = feature_params.recovery_days
    if settings.oracle and truth_dir is not None and (truth_dir / "params.json").is_file():
        report["truth"] = synthetic_truth(result, orders, truth_dir, feature_params.horizon_days)
    write_outputs(report, outputs)
    if track:
        tracking = from_block(TrackingSettings, block(params, "mlflow"), "mlflow")
        run_id = log_run(tracking, settings, report, outputs)
        log.info("impact logged to MLflow run %s", run_id)
    return report


def synthetic_truth(result: ImpactResult, orders: pd.DataFrame, truth_dir: Path, horizon_days: int) -> dict[str, Any]:
    """The true effects of the generator that made the data, and whether each interval covers the effect on its
    treated orders."""
    from pipelines.sources.synthetic import SyntheticShopParams
    from pipelines.sources.synthetic_truth import latent_orders, true_effects

    shop = SyntheticShopParams.from_dict(json.loads((truth_dir / "params.json").read_text()))
    latent = latent_orders(shop)
    observed = orders.set_index("order_id")["ordered_again"]
    truths = true_effects(latent, shop, horizon_days, result.treated_orders, observed)
    report = result.report
    for estimand, truth in truths.items():
        entry = report["recovery"] if estimand == RECOVERY else report["kinds"][estimand]
        low, high = entry["ci"]
        truth["covered"] = bool(low <= truth["sample_att"] <= high)
        truth["unadjusted_bias"] = entry["unadjusted"] - truth["sample_att"]
        truth["unadjusted_biased"] = bool(
            not entry["unadjusted_ci"][0] <= truth["sample_att"] <= entry["unadjusted_ci"][1]
        )
    return truths


def write_outputs(report: dict[str, Any], outputs: ImpactOutputs) -> None:
    for path in (outputs.report, outputs.markdown):
        path.parent.mkdir(parents=True, exist_ok=True)
    outputs.report.write_text(json.dumps(report, indent=2, default=_plain) + "\n")
    outputs.markdown.write_text(impact_markdown(report))
    outputs.figures.mkdir(parents=True, exist_ok=True)
    if report["ranking"]:
        figure = impact_figure(report)
        figure.savefig(outputs.figures / FIGURE, dpi=110)
        import matplotlib.pyplot as plt

        plt.close(figure)


def log_run(tracking: TrackingSettings, settings: ImpactParams, report: dict[str, Any], outputs: ImpactOutputs) -> str:
    from models.impact_tracking import log_impact_run

    artifacts = [outputs.report, outputs.markdown, outputs.figures / FIGURE]
    return log_impact_run(tracking, asdict(settings), report, artifacts, {"git_commit": git_commit(Path.cwd())})


def _plain(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    raise TypeError(f"not JSON: {type(value).__name__}")
