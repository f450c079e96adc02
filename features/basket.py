"""What was bought (the optional `order_lines` table): how wide, how big, how dear and how loyal to products a
customer's baskets are, and how many of their lines came back.

Every line counts from its order's time: the lines of orders placed before the cutoff, whatever the order's status
(so no export-time status is read). A return counts from `returned_at`: a return naming a line returns that line; a
return naming only its order returns every line of the order.
"""

from __future__ import annotations

from typing import TypeVar

import ibis
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.common import at, count_if, orders_before
from features.inputs import FeatureInputs
from features.spec import FeatureSpec

LINES = ("order_lines",)
# What `basket_part` reads of a line: the ids and texts that made the flags are left behind, since the table is kept
# for the whole run (at 1M customers, 15M lines).
FACT_COLUMNS = (
    "customer_id", "ordered_at", "quantity", "unit_price", "repeat", "first_of_order", "first_of_product",
    "first_of_category", "returned_at",
)  # fmt: skip

BASKET_SPECS: tuple[FeatureSpec, ...] = (
    FeatureSpec("distinct_products", "basket", "int64", "products", "all history",
                "Distinct products in the lines of the orders placed before the cutoff.", LINES),
    FeatureSpec("distinct_categories", "basket", "int64", "categories", "all history",
                "Distinct product categories in those lines (null where the shop records no category).",
                (*LINES, "order_lines.category")),
    FeatureSpec("items_per_order", "basket", "float64", "units", "all history",
                "Mean units per order over the orders placed before the cutoff that have lines (basket size; null: "
                "no line).", LINES),
    FeatureSpec("price_level", "basket", "float64", "ratio", "all history",
                "The customer's median unit price over the shop's median unit price, both over the lines of orders "
                "placed before the cutoff (null: no line, or the shop's median is 0).", LINES),
    FeatureSpec("repeat_product_share", "basket", "float64", "share", "all history",
                "Share of those lines whose product the customer had bought in an earlier order (null: no line).",
                LINES),
    FeatureSpec("returned_line_share", "basket", "float64", "share", "all history",
                "Share of those lines returned before the cutoff: named by a return, or of an order returned "
                "without naming lines (null: no line).", (*LINES, "returns")),
)  # fmt: skip
BASKET_COLUMNS = tuple(spec.name for spec in BASKET_SPECS)
# What `basket_part` gives per customer (with the shop's median price beside them).
BASKET_PART_COLUMNS = (
    "customer_id", "basket_lines", "basket_orders", "basket_units", "basket_products", "basket_categories",
    "basket_median_price", "basket_repeat_lines", "basket_returned_lines",
)  # fmt: skip


def line_facts(inputs: FeatureInputs) -> ibis.Table | None:
    """Every line with its order's customer and time, whether the customer had bought its product in an earlier
    order, when it was first returned (null: never), and whether it is the first line (`first_of_order`) of its
    order, of the customer's lines of its product (`first_of_product`) or of its category (`first_of_category`,
    false without one); None when the source has no order lines.

    Cutoff-independent: a line's earliest purchase of the same product is no later than the line itself, so for a
    line before any cutoff it is found among the lines before that cutoff. Likewise the first line of an order, a
    product or a category is placed no later than the others, so the lines before a cutoff hold one first line per
    order, product and category they hold: counting the first lines counts the distinct values, without a distinct
    count per cutoff."""
    if inputs.order_lines is None:
        return None
    lines = _lines_of(inputs.order_lines, inputs.orders)
    first_bought = ibis.window(group_by=[lines.customer_id, lines.product_id])
    lines = lines.mutate(
        repeat=lines.ordered_at > lines.ordered_at.min().over(first_bought),
        first_of_order=_first_line(lines, [lines.order_id]),
        first_of_product=_first_line(lines, [lines.customer_id, lines.product_id]),
        first_of_category=lines.category.notnull() & _first_line(lines, [lines.customer_id, lines.category]),
    )
    return _with_returned_at(lines, inputs.returns).select(*FACT_COLUMNS)


def _lines_of(order_lines: ibis.Table, orders: ibis.Table) -> ibis.Table:
    """The order lines of `orders`, each with its order's customer and time."""
    lines = order_lines.select("line_id", "order_id", "product_id", "category", "quantity", "unit_price")
    return lines.join(orders.select("order_id", "customer_id", "ordered_at"), "order_id")


def _first_line(lines: ibis.Table, group_by: list[ibis.Value]) -> ibis.Value:
    """Whether the line is the earliest placed of its group (of lines placed at the same time, the lowest line_id:
    exactly one per group either way)."""
    window = ibis.window(group_by=group_by, order_by=[lines.ordered_at, lines.line_id])
    return ibis.row_number().over(window) == 0


def _with_returned_at(lines: ibis.Table, returns: ibis.Table | None) -> ibis.Table:
    """`lines` with `returned_at`: the earliest return naming the line or, naming no line, its order."""
    if returns is None:
        return lines.mutate(returned_at=ibis.null().cast("timestamp"))
    by_line = returns.filter(returns.line_id.notnull()).aggregate(
        by="line_id", line_returned_at=returns.returned_at.min()
    )
    whole = returns.filter(returns.line_id.isnull())
    by_order = whole.aggregate(by="order_id", order_returned_at=whole.returned_at.min())
    lines = lines.left_join(by_line, "line_id").drop("line_id_right")
    lines = lines.left_join(by_order, "order_id").drop("order_id_right")
    named, whole_order = lines.line_returned_at, lines.order_returned_at
    earliest = ibis.ifelse(
        named.isnull(), whole_order, ibis.ifelse(whole_order.isnull() | (named <= whole_order), named, whole_order)
    )
    return lines.mutate(returned_at=earliest).drop("line_returned_at", "order_returned_at")


def basket_part(lines: ibis.Table | None, cutoff: pd.Timestamp) -> ibis.Table | None:
    """Per customer with a line of an order placed before the cutoff: the line counts, distinct products and
    categories, units, and the median unit price with the shop's over the same lines; None without order lines."""
    if lines is None:
        return None
    known = lines.filter(lines.ordered_at < at(cutoff))
    per_customer = known.aggregate(
        by="customer_id",
        basket_lines=known.count(),
        basket_orders=count_if(known.first_of_order),
        basket_units=known.quantity.sum(),
        basket_products=count_if(known.first_of_product),
        basket_categories=count_if(known.first_of_category),
        basket_median_price=known.unit_price.median(),
        basket_repeat_lines=count_if(known.repeat),
        basket_returned_lines=count_if((known.returned_at < at(cutoff)).fill_null(False)),
    )
    shop = known.aggregate(shop_median_price=known.unit_price.median())
    return per_customer.cross_join(shop)


def basket_part_at(inputs: FeatureInputs, cutoff: pd.Timestamp, cache: bool = False) -> ibis.Table | None:
    """`basket_part(line_facts(inputs), cutoff)` for one cutoff (scoring), from the lines placed before it alone:
    distinct orders, products and categories counted by grouping those lines, and a line a repeat when its product
    was bought earlier, where `line_facts` flags every line of the history with four window functions (what many
    cutoffs want: the flags once, a count per cutoff). The same columns and values; `tests/test_basket.py` holds
    the two equal. With `cache`, the lines before the cutoff are kept by the backend while the part is computed
    (they are read five times), then only the part (one row per customer): the lines go as this returns. None
    without order lines."""
    if inputs.order_lines is None:
        return None
    lines = _lines_of(inputs.order_lines, orders_before(inputs.orders, cutoff))
    lines = _with_returned_at(lines, inputs.returns)
    known = lines.select(
        "customer_id", "order_id", "product_id", "category", "ordered_at", "quantity", "unit_price",
        returned=(lines.returned_at < at(cutoff)).fill_null(False),
    )  # fmt: skip
    known = known.cache() if cache else known
    per_customer = known.aggregate(
        by="customer_id",
        basket_lines=known.count(),
        basket_units=known.quantity.sum(),
        basket_median_price=known.unit_price.median(),
        basket_returned_lines=count_if(known.returned),
    )
    table = per_customer.join(_orders_and_repeats(known), "customer_id")
    table = table.left_join(_categories(known), "customer_id").drop("customer_id_right")
    table = table.mutate(basket_categories=table.basket_categories.fill_null(0))
    shop = known.aggregate(shop_median_price=known.unit_price.median())
    part = table.select(*BASKET_PART_COLUMNS).cross_join(shop)
    return part.cache() if cache else part


def _orders_and_repeats(known: ibis.Table) -> ibis.Table:
    """Per customer: distinct orders and products, and the repeat lines (`line_facts`' `repeat`: placed later than
    the customer's first purchase of their product, so all but those placed at its earliest time)."""
    orders = known.aggregate(by=["customer_id", "order_id"])
    orders = orders.aggregate(by="customer_id", basket_orders=orders.count())
    at_time = known.aggregate(by=["customer_id", "product_id", "ordered_at"], lines=known.count())
    products = at_time.aggregate(
        by=["customer_id", "product_id"], repeats=at_time.lines.sum() - at_time.lines.argmin(at_time.ordered_at)
    )
    products = products.aggregate(
        by="customer_id", basket_products=products.count(), basket_repeat_lines=products.repeats.sum()
    )
    return orders.join(products, "customer_id")


def _categories(known: ibis.Table) -> ibis.Table:
    """Per customer with a line in a category: the distinct categories (null is none)."""
    categorised = known.filter(known.category.notnull())
    pairs = categorised.aggregate(by=["customer_id", "category"])
    return pairs.aggregate(by="customer_id", basket_categories=pairs.count())


def basket_columns(table: ibis.Table) -> dict[str, ibis.Value]:
    """The basket features of a per-customer table joined with `basket_part` (a customer without a line has no
    products, and no basket to measure); a feature whose table is absent is nulled by the caller."""
    if "basket_lines" not in table.columns:
        return {}
    lines = table.basket_lines.cast("float64")
    shop_median = table.shop_median_price
    return {
        "distinct_products": table.basket_products.fill_null(0),
        "distinct_categories": table.basket_categories.fill_null(0),
        "items_per_order": table.basket_units / table.basket_orders.cast("float64"),
        "price_level": ibis.ifelse(shop_median > 0, table.basket_median_price / shop_median, ibis.null()),
        "repeat_product_share": table.basket_repeat_lines.cast("float64") / lines,
        "returned_line_share": table.basket_returned_lines.cast("float64") / lines,
    }


class RunningBasket:
    """`basket_part`'s columns at cutoffs taken in time order, from `line_facts` read once into memory. Each cutoff
    adds the lines placed since the previous one to running counts per customer, and reads both medians off the
    lines kept sorted by price, so no cutoff aggregates every line before it again (at 1M customers, half of a late
    cutoff's query). For the features stage on one machine; `basket_part` stays the definition (Spark; scoring on
    one machine groups the lines at its one cutoff, `basket_part_at`), and the tests hold the two equal: counts
    exactly, medians bit for bit, the unit sums within float rounding (other order of additions).

    An earlier cutoff than the last one starts the running counts again from the first line."""

    def __init__(self, facts: pa.Table) -> None:
        encoded = pc.dictionary_encode(facts.column("customer_id").combine_chunks())
        self._ids: pa.Array = encoded.dictionary
        codes = encoded.indices.to_numpy()
        placed = _times(facts, "ordered_at")
        by_time = np.argsort(placed, kind="stable")
        self._placed = placed[by_time]
        self._codes = codes[by_time]
        self._units = _floats(facts, "quantity")[by_time]
        self._flags = {name: _flags(facts, name)[by_time] for name in _COUNTED_FLAGS}
        returned = _times(facts, "returned_at")
        came_back = ~np.isnat(returned)
        # A line counts as returned at a cutoff when it was both placed and returned before it.
        returned_by = np.maximum(placed[came_back], returned[came_back])
        by_return = np.argsort(returned_by, kind="stable")
        self._returned_by = returned_by[by_return]
        self._returned_codes = codes[came_back][by_return]
        prices = _floats(facts, "unit_price")
        by_price = np.argsort(prices, kind="stable")
        self._shop_prices = prices[by_price]
        self._shop_prices_placed = placed[by_price]
        # The lines by customer, then price: a stable sort by customer of the price order (numpy's lexsort of both
        # keys gives the same order in 2.5 times the time).
        by_customer_price = by_price[np.argsort(codes[by_price], kind="stable")]
        self._customer_prices = prices[by_customer_price]
        self._customer_prices_placed = placed[by_customer_price]
        self._start()

    def _start(self) -> None:
        customers = len(self._ids)
        self._last: np.datetime64 | None = None
        self._placed_through = 0
        self._returned_through = 0
        self._lines = np.zeros(customers, np.int64)
        self._units_sum = np.zeros(customers, np.float64)
        self._flag_counts = {name: np.zeros(customers, np.int64) for name in _COUNTED_FLAGS}
        self._returned = np.zeros(customers, np.int64)

    def part_at(self, cutoff: pd.Timestamp) -> ibis.Table:
        """`basket_part(line_facts, cutoff)` as an in-memory table."""
        return ibis.memtable(self.at(cutoff))

    def at(self, cutoff: pd.Timestamp) -> pa.Table:
        time = np.datetime64(cutoff.to_datetime64(), "ns")
        if self._last is not None and time < self._last:
            self._start()
        self._last = time
        self._add_placed(int(np.searchsorted(self._placed, time, side="left")))
        self._add_returned(int(np.searchsorted(self._returned_by, time, side="left")))
        present = np.flatnonzero(self._lines)
        return pa.table(
            {
                "customer_id": self._ids.take(pa.array(present)),
                "basket_lines": self._lines[present],
                "basket_orders": self._flag_counts["first_of_order"][present],
                "basket_units": self._units_sum[present],
                "basket_products": self._flag_counts["first_of_product"][present],
                "basket_categories": self._flag_counts["first_of_category"][present],
                "basket_median_price": self._customer_medians(time, present),
                "basket_repeat_lines": self._flag_counts["repeat"][present],
                "basket_returned_lines": self._returned[present],
                "shop_median_price": np.full(len(present), self._shop_median(time)),
            }
        )

    def _add_placed(self, through: int) -> None:
        new = slice(self._placed_through, through)
        codes, customers = self._codes[new], len(self._ids)
        self._lines += np.bincount(codes, minlength=customers)
        self._units_sum += np.bincount(codes, weights=self._units[new], minlength=customers)
        for name, flags in self._flags.items():
            self._flag_counts[name] += np.bincount(codes[flags[new]], minlength=customers)
        self._placed_through = through

    def _add_returned(self, through: int) -> None:
        codes = self._returned_codes[self._returned_through : through]
        self._returned += np.bincount(codes, minlength=len(self._ids))
        self._returned_through = through

    def _customer_medians(self, time: np.datetime64, present: np.ndarray) -> np.ndarray:
        """Each present customer's median unit price over their lines placed before `time`: their lines are
        contiguous and sorted by price, so the middle ones among those placed before `time` are found by count."""
        known = np.flatnonzero(self._customer_prices_placed < time)
        counts = self._lines[present]
        starts = (np.cumsum(self._lines) - self._lines)[present]
        low = self._customer_prices[known[starts + (counts - 1) // 2]]
        high = self._customer_prices[known[starts + counts // 2]]
        return _median(low, high)

    def _shop_median(self, time: np.datetime64) -> float:
        known = np.flatnonzero(self._shop_prices_placed < time)
        if not len(known):
            return float("nan")
        count = len(known)
        return float(_median(self._shop_prices[known[(count - 1) // 2]], self._shop_prices[known[count // 2]]))


Floats = TypeVar("Floats", np.ndarray, np.float64)
_COUNTED_FLAGS = ("first_of_order", "first_of_product", "first_of_category", "repeat")


def _median(low: Floats, high: Floats) -> Floats:
    """The median from the two middle values as DuckDB's `quantile_cont(x, 0.5)` computes it, so the values are the
    same to the last bit (`low + (high - low) * 0.5` differs in the last bit for about a quarter of them)."""
    return (low + high) / 2


def _times(facts: pa.Table, column: str) -> np.ndarray:
    """The column as datetime64[ns] (NaT: null)."""
    values = facts.column(column).combine_chunks().cast(pa.timestamp("ns"))
    return values.to_numpy(zero_copy_only=False)


def _floats(facts: pa.Table, column: str) -> np.ndarray:
    return facts.column(column).combine_chunks().cast(pa.float64()).to_numpy(zero_copy_only=False)


def _flags(facts: pa.Table, column: str) -> np.ndarray:
    return facts.column(column).combine_chunks().to_numpy(zero_copy_only=False).astype(bool)
