"""The impact analysis in words an operations lead reads (Markdown) and one chart: effect with its interval and
revenue per month, per kind of bad experience."""

from __future__ import annotations

from typing import Any

NAMES = {
    "late_delivery": "Late delivery",
    "retailer_cancellation": "Cancelled by the shop (out of stock)",
    "wrong_item": "Wrong item",
    "damaged": "Damaged item",
    "retailer_return": "Returned as the shop's fault",
    "any_return": "Returned (any reason)",
    "complaint": "Complaint (beyond its failure)",
    "low_review": "Low review (beyond its failure)",
    "fast_recovery": "Complaint resolved fast",
}


def impact_headline(report: dict[str, Any]) -> dict[str, int]:
    """The two numbers `dvc metrics show` puts beside the model's (its table must stay under 200 characters, so the
    costliest kind's name is left to impact.md): the revenue a month the costliest kind loses, and the revenue fast
    recovery wins back a month; each absent, shown as "-", when the data cannot tell."""
    headline: dict[str, int] = {}
    if report["ranking"]:
        top = report["ranking"][0]
        headline["lost_month"] = round(report["kinds"][top]["money"]["revenue_per_month"])
    recovery = report["recovery"]
    if recovery.get("status") == "estimated":
        headline["won_month"] = round(recovery["money_now"]["revenue_per_month"])
    return headline


def _pp(value: float) -> str:
    return f"{100 * value:+.1f} pp"


def _money(value: float) -> str:
    return f"{value:,.0f}"


def impact_markdown(report: dict[str, Any]) -> str:
    kinds = report["kinds"]
    lines = [
        "# What bad experiences cost, and what fast recovery wins back",
        "",
        f"{report['orders_analysed']:,} orders of {report['customers_analysed']:,} customers placed "
        f"{report['period']['first_order'][:10]} to {report['period']['last_order'][:10]}, each followed for "
        f"{report['horizon_days']} days. Method: {report['method']}.",
        "",
        "Ranked by revenue lost per month. *Return rate* is the share of customers who ordered again within "
        f"{report['horizon_days']} days; *effect* is how many percentage points (pp) the experience changed it, "
        "among the orders that had it, against what those customers would have done had the order gone fine "
        "(95 % interval); *unadjusted* is the plain difference from the comparison orders, for contrast.",
        "",
        "| rank | experience | orders hit / month | return rate | had it gone fine | effect (95 %) | unadjusted "
        "| revenue lost / month (95 %) | checks |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for rank, kind in enumerate(report["ranking"], start=1):
        entry = kinds[kind]
        money = entry["money"]
        low, high = entry["ci"]
        money_low, money_high = money["revenue_per_month_ci"]
        lines.append(
            f"| {rank} | {NAMES.get(kind, kind)} | {money['orders_per_month']:,.0f} | "
            f"{100 * entry['return_rate_treated']:.1f} % | {100 * entry['return_rate_had_it_gone_fine']:.1f} % | "
            f"{_pp(entry['att'])} ({_pp(low)} to {_pp(high)}) | {_pp(entry['unadjusted'])} | "
            f"{_money(money['revenue_per_month'])} ({_money(money_low)} to {_money(money_high)}) | "
            f"{_checks(entry)} |"
        )
    if kinds.get("any_return", {}).get("status") == "estimated":
        lines += [
            "",
            "*Returned (any reason)* is what a source without return reasons can show (UCI Online Retail's credit "
            "notes). Caveat: a credit note does not say whether goods came back or an order was cancelled before "
            "dispatch, nor why; a customer's own return (wrong size, an exchange that comes with a new order) counts "
            "like a faulty delivery. Read the estimate as how customers with returns go on ordering, not as the cost "
            "of a failure.",
        ]
    lines += ["", "## Service recovery", ""]
    recovery = report["recovery"]
    if recovery.get("status") == "estimated":
        now, all_fast = recovery["money_now"], recovery["money_if_all_fast"]
        low, high = recovery["ci"]
        lines += [
            f"Among orders that went wrong and got a complaint, resolving it within {report.get('recovery_days', '')}"
            f" days raised the share who ordered again by {_pp(recovery['att'])} ({_pp(low)} to {_pp(high)}; "
            f"unadjusted {_pp(recovery['unadjusted'])}), over {recovery['treated_orders']:,} fast resolutions.",
            f"- won back now: {now['orders_per_month']:,.0f} fast resolutions a month x that effect x "
            f"{_money(now['value_per_returning_customer'])} per returning customer = "
            f"**{_money(now['revenue_per_month'])} a month** ({_money(now['revenue_per_month_ci'][0])} to "
            f"{_money(now['revenue_per_month_ci'][1])});",
            f"- resolving the {all_fast['orders_per_month']:,.0f} slow ones a month fast too would add "
            f"**{_money(all_fast['revenue_per_month'])} a month** ({_money(all_fast['revenue_per_month_ci'][0])} "
            f"to {_money(all_fast['revenue_per_month_ci'][1])}), from their own estimated effect "
            f"{_pp(recovery['effect_on_slow']['att'])}.",
        ]
    else:
        lines.append(f"Not estimated: {recovery.get('reason', recovery.get('status'))}.")
    other = [k for k in kinds if kinds[k].get("status") != "estimated"]
    if other:
        lines += ["", "## Not shown by this data", ""]
        lines += [f"- {NAMES.get(k, k)}: {kinds[k]['status']} ({kinds[k]['reason']})" for k in other]
    if report.get("truth"):
        lines += [
            "",
            "## Against the synthetic shop's truth",
            "",
            "| experience | estimate (95 %) | true effect on these orders | expected effect | unadjusted | covered |",
            "|---|---|---|---|---|---|",
        ]
        for kind, truth in report["truth"].items():
            entry = recovery if kind == "fast_recovery" else kinds[kind]
            low, high = entry["ci"]
            lines.append(
                f"| {NAMES.get(kind, kind)} | {_pp(entry['att'])} ({_pp(low)} to {_pp(high)}) | "
                f"{_pp(truth['sample_att'])} | {_pp(truth['att'])} | {_pp(entry['unadjusted'])} | "
                f"{'yes' if truth['covered'] else 'NO'} |"
            )
    lines += [
        "",
        "## How to read it",
        "",
        "- Each estimate compares orders that had the experience with similar orders that did not: similar in the "
        "customer's history before the order (orders, spend, recency, tenure, earlier bad experiences), channel, "
        "payment method, loyalty, country and month. Complaints and low reviews are compared with orders that had "
        "the same failure, so their effect is what the complaint or review adds beyond the failure behind it.",
        "- Revenue lost = orders hit per month x effect x what a returning customer spends over the next "
        f"{report['horizon_days']} days at their own pace. Its interval carries the effect's uncertainty only.",
        "- Checks: *placebo* (a fake experience given at random finds no effect), *random cause* (adding a noise "
        "variable leaves the estimate in place), *halves* (two disjoint halves of the customers give estimates whose "
        "95 % intervals overlap).",
        "- These are causal estimates only if what drives both the experience and the customer's return is in "
        "the list above; a cause the data does not record (a customer's mood, a competitor's offer) is not "
        "adjusted for.",
    ]
    return "\n".join(lines) + "\n"


def _checks(entry: dict[str, Any]) -> str:
    refutations = entry.get("refutations")
    if not refutations:
        return "not run"
    names = {"placebo_treatment": "placebo", "random_common_cause": "random cause", "halves": "halves"}
    return ", ".join(f"{names[k]} {'ok' if v['passed'] else 'FAILED'}" for k, v in refutations.items())


def impact_figure(report: dict[str, Any]) -> Any:
    """Two panels per estimated kind: the effect with its 95 % interval, and revenue lost per month with its
    interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = report["kinds"]
    order = list(reversed(report["ranking"]))
    entries = [kinds[k] for k in order]
    labels = [NAMES.get(k, k) for k in order]
    if report["recovery"].get("status") == "estimated":
        recovery = report["recovery"]
        won = recovery["money_now"]
        lost = {
            "revenue_per_month": -won["revenue_per_month"],
            "revenue_per_month_ci": sorted(-v for v in won["revenue_per_month_ci"]),
        }
        entries.append({**recovery, "money": lost})
        labels.append(NAMES["fast_recovery"] + " (won back: negative)")
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 0.6 * len(entries) + 1.5), sharey=True)
    positions = list(range(len(entries)))
    effects = [100 * e["att"] for e in entries]
    effect_errors = [[100 * (e["att"] - e["ci"][0]) for e in entries], [100 * (e["ci"][1] - e["att"]) for e in entries]]
    left.errorbar(effects, positions, xerr=effect_errors, fmt="o", color="tab:red", capsize=3)
    left.scatter([100 * e["unadjusted"] for e in entries], positions, marker="x", color="grey", label="unadjusted")
    left.axvline(0, color="black", linewidth=0.8)
    left.set_yticks(positions, labels)
    left.set_xlabel(f"effect on ordering again within {report['horizon_days']} days (percentage points, 95 %)")
    left.legend(loc="lower right")
    revenue = [e["money"]["revenue_per_month"] for e in entries]
    revenue_errors = [
        [r - e["money"]["revenue_per_month_ci"][0] for r, e in zip(revenue, entries, strict=True)],
        [e["money"]["revenue_per_month_ci"][1] - r for r, e in zip(revenue, entries, strict=True)],
    ]
    right.barh(positions, revenue, xerr=revenue_errors, color="tab:orange", capsize=3)
    right.axvline(0, color="black", linewidth=0.8)
    right.set_xlabel("revenue lost per month (95 %)")
    figure.suptitle("What each bad experience costs")
    figure.tight_layout()
    return figure
