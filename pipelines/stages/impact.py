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
from features.impact import available_kinds, impact_orders, restrict_to_customers
from features.inputs import FeatureInputs, read_validated
from models.impact import RECOVERY, ImpactParams, ImpactResult, analyse, stable_unit
from models.impact_report import impact_figure, impact_headline, impact_markdown
from models.tracking_settings import TrackingSettings
from pipelines.params import block, load_params
from pipelines.provenance import git_commit
from pipelines.sources.synthetic import SyntheticShopParams
from pipelines.validation.outcome import validated_as_of

log = logging.getLogger(__name__)

FIGURE = "impact.png"


@dataclass(frozen=True)
class ImpactOutputs:
    """Where the stage writes: the headline (DVC metrics), the full report, its Markdown, and the chart's folder."""

    metrics: Path
    report: Path
    markdown: Path
    figures: Path


def run(
    params_path: Path, validated_dir: Path, validation_report: Path, truth_dir: Path | None, outputs: ImpactOutputs,
    track: bool = True,
) -> dict[str, Any]:  # fmt: skip
    """Analyse, write the headline (DVC metrics), the full report, its Markdown and the chart, and log them to
    MLflow; returns the full report."""
    params = load_params(params_path)
    settings = ImpactParams.from_dict(block(params, "impact"))
    feature_block = dict(block(params, "features"))
    feature_block.pop("strategy", None)
    feature_params = FeatureParams.from_dict(feature_block)
    as_of = validated_as_of(validation_report)
    inputs = read_validated(ibis.duckdb.connect(), validated_dir, as_of)
    available = available_kinds(inputs)
    inputs, share = sample_customers_in_query(inputs, settings)
    # DuckDB returns rows in no fixed order; control sampling and cross-fitting folds follow the rows, so a rerun on
    # the same data gives the same estimates only from a fixed order.
    orders = impact_orders(inputs, feature_params).order_by("order_id").execute()
    if orders.empty:
        raise ValueError(
            f"no order has its {feature_params.horizon_days}-day follow-up observed by {as_of.date()}: "
            "shorten features.horizon_days or add history"
        )
    log.info("impact: %d orders with a %d-day follow-up", len(orders), feature_params.horizon_days)
    result = analyse(orders, available, settings, feature_params.horizon_days, share=share)
    report = result.report
    report["recovery_days"] = feature_params.recovery_days
    if settings.oracle and truth_dir is not None and (truth_dir / "params.json").is_file():
        shop = shop_params(params, truth_dir)
        if shop is None:
            report["truth_skipped"] = "params.yaml's generate block is not the one data/truth was generated with"
            log.warning("no truth: %s", report["truth_skipped"])
        else:
            report["truth"] = synthetic_truth(result, orders, shop, feature_params.horizon_days)
    write_outputs(report, outputs)
    if track:
        tracking = from_block(TrackingSettings, block(params, "mlflow"), "mlflow")
        run_id = log_run(tracking, settings, report, outputs)
        log.info("impact logged to MLflow run %s", run_id)
    return report


def sample_customers_in_query(inputs: FeatureInputs, settings: ImpactParams) -> tuple[FeatureInputs, float]:
    """Above impact.max_orders orders, the orders of a stable sample of customers, chosen before the per-order
    history is computed (a customer's history needs only their own orders)."""
    total = int(inputs.orders.count().execute())
    if settings.max_orders is None or total <= settings.max_orders:
        return inputs, 1.0
    share = settings.max_orders / total
    customers = inputs.orders.select("customer_id").distinct().execute()["customer_id"]
    kept = customers[stable_unit(customers, f"sample{settings.seed}") < share]
    log.info("impact: a stable %.1f%% of customers (%d), as %d orders exceed impact.max_orders", 100 * share,
             len(kept), total)  # fmt: skip
    return restrict_to_customers(inputs, ibis.memtable(pd.DataFrame({"customer_id": kept.to_numpy()}))), share


def shop_params(params: dict[str, Any], truth_dir: Path) -> SyntheticShopParams | None:
    """The generate params the shop was made with, in params.yaml's order. The generator draws categories as codes
    into its dicts' keys in order, and data/truth/params.json stores them sorted, so the re-simulation takes the
    order from params.yaml, once its values are checked to be those the truth records (None when they are not)."""
    recorded = SyntheticShopParams.from_dict(json.loads((truth_dir / "params.json").read_text()))
    current = SyntheticShopParams.from_dict(block(params, "generate")) if "generate" in params else None
    return current if current == recorded else None


def synthetic_truth(
    result: ImpactResult, orders: pd.DataFrame, shop: SyntheticShopParams, horizon_days: int
) -> dict[str, Any]:
    """The true effects of the generator that made the data, and whether each interval covers the effect on its
    treated orders."""
    from pipelines.sources.synthetic_truth import latent_orders, true_effects

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
    for path in (outputs.metrics, outputs.report, outputs.markdown):
        path.parent.mkdir(parents=True, exist_ok=True)
    outputs.metrics.write_text(json.dumps(impact_headline(report), indent=2) + "\n")
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

    artifacts = [outputs.metrics, outputs.report, outputs.markdown, outputs.figures / FIGURE]
    return log_impact_run(tracking, asdict(settings), report, artifacts, {"git_commit": git_commit(Path.cwd())})


def _plain(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    raise TypeError(f"not JSON: {type(value).__name__}")
