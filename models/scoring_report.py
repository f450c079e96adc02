"""The scoring report: how many customers in each tier, the value at risk, how fresh the data is, and which model
features drifted away from the training data (PSI)."""

from __future__ import annotations

from typing import Any

import pandas as pd


def scoring_report(
    risk: pd.DataFrame,
    written: pd.DataFrame,
    psi: dict[str, float],
    psi_warning: float,
    freshness: dict[str, Any],
    model: dict[str, Any],
) -> dict[str, Any]:
    """`risk` is the whole scored population, `written` the filtered list that was written."""
    by_tier = risk.groupby("risk_tier", observed=False).agg(
        customers=("customer_id", "size"), value_at_risk=("value_at_risk", "sum")
    )
    drifted = sorted((name for name, value in psi.items() if value > psi_warning), key=lambda name: -psi[name])
    return {
        "as_of": freshness["as_of"],
        "freshness": freshness,
        "model": model,
        "customers_scored": len(risk),
        "customers_written": len(written),
        "value_at_risk": round(float(risk["value_at_risk"].sum()), 2),
        "value_at_risk_written": round(float(written["value_at_risk"].sum()), 2),
        "tiers": {
            str(tier): {"customers": int(row.customers), "value_at_risk": round(float(row.value_at_risk), 2)}
            for tier, row in by_tier.iloc[::-1].iterrows()
        },
        "actions": {str(name): int(count) for name, count in written["suggested_action"].value_counts().items()},
        "psi_warning": psi_warning,
        "drift_warnings": drifted,
        "psi": {name: round(value, 5) for name, value in sorted(psi.items(), key=lambda item: -item[1])},
    }


def report_markdown(report: dict[str, Any]) -> str:
    freshness = report["freshness"]
    lines = [
        f"# Scoring report, as of {report['as_of']}",
        "",
        f"Model: `{report['model']['source']}` (deployed at {report['model']['deploy_at']}). "
        f"Data exported at {freshness['exported_at']}; latest order {freshness['latest_order_at']} "
        f"({freshness['days_since_latest_order']:.1f} days before as-of).",
        "",
        *(f"**Scored with --force although** {misfit}." for misfit in report["model"].get("forced_past", [])),
        *([""] if report["model"].get("forced_past") else []),
        f"{report['customers_scored']:,} customers scored; {report['customers_written']:,} in the written list. "
        f"Value at risk: {report['value_at_risk']:,.0f} in total, {report['value_at_risk_written']:,.0f} in the list.",
        "",
        "| tier | customers | value at risk |",
        "|---|---:|---:|",
        *(
            f"| {tier} | {values['customers']:,} | {values['value_at_risk']:,.0f} |"
            for tier, values in report["tiers"].items()
        ),
        "",
        "| suggested action (written list) | customers |",
        "|---|---:|",
        *(f"| {action} | {count:,} |" for action, count in report["actions"].items()),
        "",
        f"## Drift against the training data (PSI; warning above {report['psi_warning']})",
        "",
    ]
    if report["drift_warnings"]:
        lines.append("**Warning:** drifted features: " + ", ".join(f"`{name}`" for name in report["drift_warnings"]))
    else:
        lines.append("No feature drifted beyond the warning threshold.")
    lines += ["", "| feature | PSI |", "|---|---:|"]
    lines += [f"| `{name}` | {value:.4f} |" for name, value in report["psi"].items()]
    return "\n".join(lines) + "\n"
