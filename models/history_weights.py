"""Row weights for a left-truncated export (train.short_history_weight_days).

A real export starts on some date, and the shop's customers did not: a customer whose first order in the file lies
in its first months was often a customer before it (UCI Online Retail: 953 first orders in December 2009, its first
month, against about 300 a month later on). At a cutoff with little history before it, tenure and the all-history
counts are cut short by the export's start, and "short tenure" mixes new customers with old ones. Rows at such
cutoffs teach the model relations that later cutoffs, and the deployment, do not have; they weigh less in the
booster's fit: a row at a cutoff with h days of history weighs min(1, h / short_history_weight_days).

The history before a cutoff is read from the feature table itself: at every cutoff, the cutoff minus the largest
`days_since_first_order` of its rows is the earliest first order among its customers; the export's start known at
a cutoff is the earliest of those at that cutoff and every one before it (at a cutoff less than the active window
after the start, every customer with an order is in the population, so that is the data's first order). A row's
weight thus depends on the rows at its own and earlier cutoffs only, which see only events before them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

TENURE = "days_since_first_order"


def history_days(cutoffs: pd.Series, tenure_days: pd.Series) -> pd.Series:
    """Per row, the days of history the data holds before the row's cutoff: the cutoff minus the earliest first order
    seen at that cutoff or any earlier one."""
    earliest = (cutoffs - pd.to_timedelta(tenure_days.astype("float64"), unit="D")).groupby(cutoffs).min()
    if earliest.isna().any():
        missing = earliest.index[earliest.isna()][0]
        raise ValueError(f"no row at cutoff {pd.Timestamp(missing).date()} has {TENURE}: the history is unknown")
    start_known = earliest.sort_index().cummin()
    return (cutoffs - cutoffs.map(start_known)).dt.total_seconds() / 86_400.0


def short_history_weights(rows: pd.DataFrame, frame: pd.DataFrame, weight_days: int) -> np.ndarray:
    """The weight of each of `rows` (a subset of `frame`, e.g. the training rows): min(1, history / weight_days),
    the history read from every row of `frame` at the row's cutoff and before."""
    if weight_days <= 0:
        raise ValueError(f"train.short_history_weight_days must be a positive number of days, not {weight_days}")
    history = history_days(frame["cutoff"], frame[TENURE])
    return np.minimum(1.0, history.loc[rows.index].to_numpy(dtype=np.float64) / weight_days)
