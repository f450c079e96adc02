"""The true effect of each kind of bad experience on the synthetic shop, on the estimand of `models.impact`.

The generator is deterministic from its params, so re-running its simulation gives every order's latent state: what
really went wrong (wrong item, damaged, late, out of stock), how fast its ticket was resolved, the customer's base
dropout, purchase rate and loyalty. Right after an order the customer stays with probability 1 - p_drop (the
generator's own `_dropout_probability`), and an alive customer orders within `h` days with probability
1 - exp(-rate * S(t, t + h)) (S integrates the seasonal multiplier). So for each order, exactly,

    P(ordered again within h) = (1 - p_drop(what happened)) * (1 - exp(-rate * S)),

and the true ATT of a kind is the mean, over the treated orders the estimate averages over, of that probability
minus the same with the kind switched off (everything else on the order as it was):

- a failure: its latent causes off (a retailer-fault return: the wrong item or damage behind it);
- a complaint: no ticket, so no recovery (the failures stay);
- a low review: nothing (a review changes no one's fate in the generator), so the truth is 0;
- fast recovery: the ticket resolved late instead (the failures stay).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipelines.sources.synthetic import (
    OMEGA,
    SyntheticShopParams,
    _dropout_probability,
    _Sampler,
    _simulate_customers,
    _simulate_orders,
    epoch_days,
)

ITEM_CAUSES = ("wrong_item", "damaged")
# estimand -> latent flags switched off (None: the ticket's recovery switched off; (): nothing)
SWITCHED_OFF: dict[str, tuple[str, ...] | None] = {
    "late_delivery": ("late_delivery",),
    "retailer_cancellation": ("out_of_stock",),
    "wrong_item": ("wrong_item",),
    "damaged": ("damaged",),
    "retailer_return": ITEM_CAUSES,
    "any_return": ITEM_CAUSES,
    "complaint": None,
    "low_review": (),
    "fast_recovery": None,
}
LATENT_FLAGS = ("late_delivery", "wrong_item", "damaged", "out_of_stock")


def latent_orders(params: SyntheticShopParams) -> pd.DataFrame:
    """Every simulated order, indexed by its order_id, with what really happened and its customer's latent state."""
    sampler = _Sampler(params)
    customers = _simulate_customers(sampler)
    start = pd.Timestamp(params.start_date)
    orders, _, joined_loyalty = _simulate_orders(sampler, customers, start)
    who = orders["customer_index"].to_numpy()
    resolution = (orders["resolved_at"] - orders["opened_at"]).to_numpy()
    return pd.DataFrame(
        {
            "day": orders["day"].to_numpy(),
            "rate": customers["purchase_rate_per_day"].to_numpy()[who],
            "base_dropout": customers["base_dropout"].to_numpy()[who],
            # a member from joining on: the dropout multiplier applies to the orders after it (as the generator does)
            "loyalty": joined_loyalty[who] <= orders["day"].to_numpy(),
            "payment_method": orders["payment_method"].to_numpy(),
            **{flag: orders[flag].to_numpy(dtype=bool) for flag in LATENT_FLAGS},
            "resolution_days": np.where(np.isnan(resolution), np.inf, resolution),
        },
        index=pd.Index([f"O{i:09d}" for i in range(len(orders))], name="order_id"),
    )


def return_probability(
    latent: pd.DataFrame, params: SyntheticShopParams, horizon_days: float, switched_off: tuple[str, ...] | None
) -> np.ndarray:
    """P(another order within the horizon) of each order, with `switched_off` flags off (None: its ticket's
    recovery off)."""
    experiences = {flag: latent[flag].to_numpy(dtype=bool) for flag in LATENT_FLAGS}
    resolution = latent["resolution_days"].to_numpy(dtype=float)
    if switched_off is None:
        resolution = np.full(len(latent), np.inf)
    else:
        for flag in switched_off:
            experiences[flag] = np.zeros(len(latent), dtype=bool)
    experiences["payment_method"] = latent["payment_method"].to_numpy()
    drop = _dropout_probability(
        params, latent["base_dropout"].to_numpy(), latent["loyalty"].to_numpy(dtype=bool), experiences, resolution
    )
    start_epoch = epoch_days(pd.Timestamp(params.start_date))
    phase = OMEGA * (start_epoch + latent["day"].to_numpy() - params.seasonality_peak_day)
    exposure = horizon_days + params.seasonality_amplitude / OMEGA * (
        np.sin(phase + OMEGA * horizon_days) - np.sin(phase)
    )
    return np.asarray((1 - drop) * (1 - np.exp(-latent["rate"].to_numpy() * exposure)), dtype=float)


def true_effects(
    latent: pd.DataFrame,
    params: SyntheticShopParams,
    horizon_days: float,
    treated: dict[str, np.ndarray],
    observed: pd.Series,
) -> dict[str, dict[str, float]]:
    """Per estimand, over its treated orders (order ids):
    - `att`: the expected effect, mean of P(return | as it happened) - P(return | switched off);
    - `sample_att`: the effect on these very orders, mean of (returned or not, as observed in `observed`, indexed by
      order id) - P(return | switched off): what happened to the treated is known, only the counterfactual is
      an expectation. The estimator's interval is for this one (Imbens 2004, the sample ATT); the two differ by
      the luck of the treated orders' own outcomes."""
    actual = pd.Series(return_probability(latent, params, horizon_days, ()), index=latent.index)
    truths = {}
    for estimand, order_ids in treated.items():
        if estimand not in SWITCHED_OFF or len(order_ids) == 0:
            continue
        rows = latent.loc[order_ids]
        without = return_probability(rows, params, horizon_days, SWITCHED_OFF[estimand])
        truths[estimand] = {
            "att": float(np.mean(actual.loc[order_ids].to_numpy() - without)),
            "sample_att": float(np.mean(observed.loc[order_ids].to_numpy(dtype=float) - without)),
        }
    return truths
