"""The scoring report: what is at risk and what to do about it first (value at risk per tier and per suggested
action, the top customers with their reasons), then how fresh the data is and which model features drifted away
from the training data (PSI; the Markdown names the drifted ones, the JSON holds every feature's)."""

from __future__ import annotations

from typing import Any

import pandas as pd

TOP_CUSTOMERS = 20
TOP_COLUMNS = ("rank", "customer_id", "churn_probability", "risk_tier", "value_at_risk", "suggested_action")
REASONS = ("reason_1", "reason_2", "reason_3")


def scoring_report(
    risk: pd.DataFrame,
    written: pd.DataFrame,
    psi: dict[str, float],
    psi_warning: float,
    freshness: dict[str, Any],
    model: dict[str, Any],
) -> dict[str, Any]:
    """`risk` is the whole scored population, `written` the filtered list that was written (with reasons)."""
    drifted = sorted((name for name, value in psi.items() if value > psi_warning), key=lambda name: -psi[name])
    return {
        "as_of": freshness["as_of"],
        "freshness": freshness,
        "model": model,
        "customers_scored": len(risk),
        "customers_written": len(written),
        "value_at_risk": round(float(risk["value_at_risk"].sum()), 2),
        "value_at_risk_written": round(float(written["value_at_risk"].sum()), 2),
        "tiers": _totals(risk, "risk_tier", by_value=False),
        "actions": _totals(written, "suggested_action", by_value=True),
        "top_customers": top_customers(written),
        "psi_warning": psi_warning,
        "drift_warnings": drifted,
        "psi": {name: round(value, 5) for name, value in sorted(psi.items(), key=lambda item: -item[1])},
    }


def _totals(risk: pd.DataFrame, by: str, by_value: bool) -> dict[str, dict[str, float | int]]:
    """Customers and value at risk per value of `by`: the most value at risk first, or (tiers) the highest first."""
    totals = risk.groupby(by, observed=False).agg(customers=("customer_id", "size"), value=("value_at_risk", "sum"))
    totals = totals.sort_values("value", ascending=False) if by_value else totals.iloc[::-1]
    return {
        str(name): {"customers": int(row.customers), "value_at_risk": round(float(row.value), 2)}
        for name, row in totals.iterrows()
    }


def top_customers(written: pd.DataFrame, n: int = TOP_CUSTOMERS) -> list[dict[str, Any]]:
    """The first n of the written list (ranked by value at risk) with their reasons in one text."""
    top = written.head(n)
    reasons = top[list(REASONS)].apply(lambda row: "; ".join(text for text in row if isinstance(text, str)), axis=1)
    return [
        {
            **{column: _plain(row[column]) for column in TOP_COLUMNS},
            "churn_probability": round(float(row["churn_probability"]), 3),
            "value_at_risk": round(float(row["value_at_risk"]), 2),
            "reasons": reason,
        }
        for (_, row), reason in zip(top.iterrows(), reasons, strict=True)
    ]


def _plain(value: Any) -> Any:
    """A JSON-ready value: numpy scalars as Python ones, categories as text."""
    return value.item() if hasattr(value, "item") else str(value)


def report_markdown(report: dict[str, Any]) -> str:
    freshness = report["freshness"]
    lines = [
        f"# Scoring report, as of {report['as_of']}",
        "",
        *([f"**Warning:** {report['model']['data_warning']}", ""] if report["model"].get("data_warning") else []),
        *(f"**Scored with --force although** {misfit}." for misfit in report["model"].get("forced_past", [])),
        *([""] if report["model"].get("forced_past") else []),
        f"{report['customers_scored']:,} customers scored; value at risk {report['value_at_risk']:,.0f} in total. "
        f"The written list holds {report['customers_written']:,} of them "
        f"({report['value_at_risk_written']:,.0f} at risk).",
        "",
        "| risk tier | customers | value at risk |",
        "|---|---:|---:|",
        *(f"| {tier} | {row['customers']:,} | {row['value_at_risk']:,.0f} |" for tier, row in report["tiers"].items()),
        "",
        "| suggested action (written list) | customers | value at risk |",
        "|---|---:|---:|",
        *(
            f"| {action} | {row['customers']:,} | {row['value_at_risk']:,.0f} |"
            for action, row in report["actions"].items()
        ),
        "",
        f"## The top {len(report['top_customers'])} customers by value at risk",
        "",
        "| rank | customer | churn probability | value at risk | action | reasons |",
        "|---:|---|---:|---:|---|---|",
        *(
            f"| {row['rank']} | {row['customer_id']} | {row['churn_probability']:.3f} | {row['value_at_risk']:,.2f} | "
            f"{row['suggested_action']} | {row['reasons'] or '(none the service can act on)'} |"
            for row in report["top_customers"]
        ),
        "",
        "## Data and model",
        "",
        f"Model: `{report['model']['source']}` (deployed at {report['model']['deploy_at']}). "
        f"Data exported at {freshness['exported_at']}; latest order {freshness['latest_order_at']} "
        f"({freshness['days_since_latest_order']:.1f} days before as-of).",
        "",
        f"Drift against the training data (PSI above {report['psi_warning']}; every feature's PSI is in the JSON "
        "report): ",
    ]
    if report["drift_warnings"]:
        lines[-1] += f"{len(report['drift_warnings'])} features drifted."
        lines += ["", "| feature | PSI |", "|---|---:|"]
        lines += [f"| `{name}` | {report['psi'][name]:.3f} |" for name in report["drift_warnings"]]
    else:
        lines[-1] += "no feature drifted."
    return "\n".join(lines) + "\n"
