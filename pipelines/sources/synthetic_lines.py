"""What the synthetic shop's customers bought: order lines drawn after the orders, from a random stream of their own,
so the orders and every other table are the same for a seed with or without them.

A catalogue of products (popularity falling with rank, a category and a list price each); every customer has a
repertoire of products they come back to, so repeat purchases happen as they do in a real shop. An order has one line
or more; the unit prices are the list prices scaled so that the lines add up to the order's value (the last line of
an order, one unit, takes the cents of rounding). Lines carry no churn signal of their own beyond what the orders
carry: the customer's value scale shows in the price level.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

CATEGORIES = ("clothing", "shoes", "home", "beauty", "sports", "toys", "electronics", "books")
CATALOGUE_SIZE = 2_000
# Products a customer comes back to, and the share of lines taken from them.
REPERTOIRE_SIZE = 6
REPERTOIRE_SHARE = 0.5
# Lines per order: 1 + Poisson(this); units per line but the last: 1 + Poisson(this).
EXTRA_LINES_MEAN = 0.8
EXTRA_UNITS_MEAN = 0.3
LIST_PRICE_MEDIAN = 25.0
# Returns of a wrong or damaged item name that item's line; a return of the customer's choice names none (the
# whole order came back).
LINE_RETURN_REASONS = ("wrong_item", "damaged")
# The generator's random streams: [seed, k]; 1-3 belong to reviews, returns and dirt.
LINES_STREAM = 5


class LineDraws:
    """The lines of every order, as arrays (order position, product, quantity, unit price), with what return-line
    choices need."""

    def __init__(self, customer_index: np.ndarray, order_values: np.ndarray, n_customers: int, seed: int) -> None:
        rng = np.random.default_rng([seed, LINES_STREAM])
        popularity = 1.0 / (np.arange(CATALOGUE_SIZE) + 10.0)
        popularity /= popularity.sum()
        self.product_category = rng.integers(len(CATEGORIES), size=CATALOGUE_SIZE)
        list_price = LIST_PRICE_MEDIAN * rng.lognormal(0.0, 0.8, CATALOGUE_SIZE)
        repertoire = rng.choice(CATALOGUE_SIZE, size=(n_customers, REPERTOIRE_SIZE), p=popularity)

        n_orders = order_values.size
        self.lines_per_order = 1 + rng.poisson(EXTRA_LINES_MEAN, n_orders)
        self.first_line = np.concatenate([[0], np.cumsum(self.lines_per_order)[:-1]])
        self.order = np.repeat(np.arange(n_orders), self.lines_per_order)
        n_lines = self.order.size
        customer = customer_index[self.order]
        from_repertoire = rng.random(n_lines) < REPERTOIRE_SHARE
        own = repertoire[customer, rng.integers(REPERTOIRE_SIZE, size=n_lines)]
        self.product = np.where(from_repertoire, own, rng.choice(CATALOGUE_SIZE, size=n_lines, p=popularity))
        last = np.zeros(n_lines, dtype=bool)
        last[self.first_line + self.lines_per_order - 1] = True
        self.quantity = np.where(last, 1, 1 + rng.poisson(EXTRA_UNITS_MEAN, n_lines)).astype(float)
        self.unit_price = _prices_adding_up(list_price[self.product], self.quantity, self.order, last, order_values)
        self._rng = rng

    def returned_lines(self, returned_orders: np.ndarray, reasons: pd.Series) -> np.ndarray:
        """Per return (order position, reason): the line it names, or -1 for the whole order."""
        pick = self.first_line[returned_orders] + np.floor(
            self._rng.random(returned_orders.size) * self.lines_per_order[returned_orders]
        ).astype(np.int64)
        return np.where(reasons.isin(LINE_RETURN_REASONS).to_numpy(), pick, -1)


def _prices_adding_up(
    list_price: np.ndarray, quantity: np.ndarray, order: np.ndarray, last: np.ndarray, order_values: np.ndarray
) -> np.ndarray:
    """List prices scaled per order to its value, to the cent; the last line (one unit) takes what rounding left."""
    listed = np.bincount(order, weights=quantity * list_price, minlength=order_values.size)
    price = np.round(list_price * (order_values / listed)[order], 2)
    others = np.bincount(order, weights=np.where(last, 0.0, quantity * price), minlength=order_values.size)
    return np.where(last, np.round(np.maximum(order_values - others, 0.0), 2)[order], price)
