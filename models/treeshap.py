"""Exact TreeSHAP values of a LightGBM binary model: the numbers `Booster.predict(pred_contrib=True)` gives (the same
path-dependent SHAP values, to the last few bits of float64 summation order), at a fraction of its cost.

LightGBM's TreeSHAP walks every tree for every customer, extending and unwinding a path of subset weights at each
node: O(leaves x depth^2) per tree and customer (about 0.4 CPU ms per customer for a 136-tree, 31-leaf model). But a
leaf's share of the SHAP values depends on the customer only through which of the distinct features on the leaf's
path the customer satisfies (the "one fractions", each 0 or 1), so for a leaf with d such features there are only
2^d possible shares. They are computed once per model (`leaf_table`), and scoring a customer is then, per tree, one
decision per split and per leaf a table look-up indexed by those d bits and d additions (Fast TreeSHAP v2, Yang 2021,
arXiv:2109.09847). A model whose paths have more distinct features than `MAX_PATH_FEATURES` (tables of 2^d rows)
is left to LightGBM's own `pred_contrib`.

The formula, per leaf with value v, distinct path features F (|F| = d), zero fractions z_k (the share of training
rows that follow the path's edges on feature k: products of child/parent counts) and the customer's one fractions
o_k (1 when the customer follows all of them): with P = {k : o_k = 1},
    phi_j += v * (o_j - z_j) * sum_{S subset of P - {j}} |S|! (d - |S| - 1)! / d! * prod_{k in F - {j} - S} z_k.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numba
import numpy as np

# Tables hold 2^d x d floats per leaf: 14 distinct features (the deepest path of the default 1M model) is 1.8 MB.
MAX_PATH_FEATURES = 18
NUMERICAL, CATEGORICAL = 0, 1
MISSING_NONE, MISSING_ZERO, MISSING_NAN = 0, 1, 2
MISSING_TYPES = {"None": MISSING_NONE, "Zero": MISSING_ZERO, "NaN": MISSING_NAN}
# LightGBM's kZeroThreshold: with missing type Zero, |value| at most this is "zero", i.e. missing.
ZERO_THRESHOLD = 1e-35
# Customers per block of the parallel loop: each block reuses one buffer of split decisions.
BLOCK = 256


class PathsTooDeep(ValueError):
    """A leaf's path has more distinct features than the tables are built for."""


@dataclass(frozen=True)
class TreeTables:
    """The model's splits, path nodes and per-leaf tables, flattened across trees for the compiled loop.

    Splits (global index across trees): feature, threshold, kind (NUMERICAL/CATEGORICAL), missing type, default
    left, and for categorical splits the categories that go left (`categories[category_start[i]:category_start[i+1]]`).
    Nodes (every node but the root, in depth-first order, per tree): the position of the parent (0 is the root,
    i + 1 the tree's i-th node), the parent's split, whether the node is its left child, and the slot of the split's
    feature among the distinct features of the path from the root (numbered in order of first appearance, so a slot
    means the same feature for every leaf below). Leaves: their node position, the features of their slots and the
    offset of their 2^d x d table in `table`."""

    tree_split_start: np.ndarray
    split_feature: np.ndarray
    split_threshold: np.ndarray
    split_kind: np.ndarray
    split_missing: np.ndarray
    split_default_left: np.ndarray
    category_start: np.ndarray
    categories: np.ndarray
    tree_node_start: np.ndarray
    node_parent: np.ndarray
    node_split: np.ndarray
    node_left: np.ndarray
    node_slot: np.ndarray
    tree_leaf_start: np.ndarray
    leaf_node: np.ndarray
    leaf_slot_start: np.ndarray
    slot_feature: np.ndarray
    leaf_table_start: np.ndarray
    table: np.ndarray
    expected_value: float
    n_features: int
    max_splits: int
    max_nodes: int

    def contributions(self, matrix: np.ndarray) -> np.ndarray:
        """SHAP values of each row of `matrix` (the model's input as float64: categoricals as their codes, missing
        as NaN), one column per feature plus the expected value last, as `pred_contrib` lays them out."""
        rows = np.ascontiguousarray(matrix, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != self.n_features:
            raise ValueError(f"expected a matrix of {self.n_features} feature columns, got shape {rows.shape}")
        out = np.zeros((len(rows), self.n_features + 1))
        _contributions(
            rows, out, self.tree_split_start, self.split_feature, self.split_threshold, self.split_kind,
            self.split_missing, self.split_default_left, self.category_start, self.categories, self.tree_node_start,
            self.node_parent, self.node_split, self.node_left, self.node_slot, self.tree_leaf_start, self.leaf_node,
            self.leaf_slot_start, self.slot_feature, self.leaf_table_start, self.table, self.max_splits,
            self.max_nodes,
        )  # fmt: skip
        out[:, -1] = self.expected_value
        return out


def tree_tables(booster: lgb.Booster) -> TreeTables:
    """The tables of every tree of `booster` (a binary or regression model, one tree per iteration); raises
    PathsTooDeep when a leaf's path has more than MAX_PATH_FEATURES distinct features."""
    dump = booster.dump_model()
    if dump["num_tree_per_iteration"] != 1:
        raise ValueError("TreeSHAP tables are built for models with one tree per iteration")
    builder = _Builder()
    for tree in dump["tree_info"]:
        builder.add_tree(tree["tree_structure"])
    return builder.finish(dump["max_feature_idx"] + 1)


@dataclass
class _Path:
    """The distinct features from the root to a node, in order of first appearance, with their zero fractions."""

    features: list[int]
    zero: list[float]

    def through(self, feature: int, fraction: float) -> tuple[int, _Path]:
        """The slot of `feature` and the path one edge (of zero fraction `fraction`) further."""
        if feature in self.features:
            slot = self.features.index(feature)
            zero = list(self.zero)
            zero[slot] *= fraction
            return slot, _Path(self.features, zero)
        return len(self.features), _Path([*self.features, feature], [*self.zero, fraction])


class _Builder:
    """Collects splits, nodes, leaves and tables tree by tree (depth first, as the dump nests them)."""

    def __init__(self) -> None:
        self.tree_split_start = [0]
        self.tree_node_start = [0]
        self.tree_leaf_start = [0]
        self.splits: dict[str, list[Any]] = {
            "feature": [], "threshold": [], "kind": [], "missing": [], "default_left": [], "category_start": [0],
        }  # fmt: skip
        self.categories: list[int] = []
        self.nodes: dict[str, list[int]] = {"parent": [], "split": [], "left": [], "slot": []}
        self.leaf_node: list[int] = []
        self.slot_feature: list[int] = []
        self.leaf_slot_start = [0]
        self.tables: list[np.ndarray] = []
        self.expected_value = 0.0
        self.max_splits = 1
        self.max_nodes = 1

    def add_tree(self, root: dict[str, Any]) -> None:
        if "leaf_value" in root:  # a single leaf: its value is all the tree adds, for everyone
            self.expected_value += float(root["leaf_value"])
        else:
            self._walk(root, _Path([], []), 0, float(root["internal_count"]))
        for name, starts, items in (
            ("splits", self.tree_split_start, self.splits["feature"]),
            ("nodes", self.tree_node_start, self.nodes["parent"]),
        ):
            count = len(items) - starts[-1]
            if name == "splits":
                self.max_splits = max(self.max_splits, count)
            else:
                self.max_nodes = max(self.max_nodes, count + 1)
            starts.append(len(items))
        self.tree_leaf_start.append(len(self.leaf_node))

    def _walk(self, node: dict[str, Any], path: _Path, position: int, total: float) -> None:
        """Depth first from `node` at `position` (0 the root, i + 1 the tree's i-th node) with `path` above it."""
        if "leaf_value" in node:
            self._add_leaf(float(node["leaf_value"]), path, position)
            self.expected_value += float(node["leaf_value"]) * float(node["leaf_count"]) / total
            return
        split = self._add_split(node) - self.tree_split_start[-1]
        count = float(node["internal_count"])
        for child, left in ((node["left_child"], True), (node["right_child"], False)):
            child_count = float(child["leaf_count"] if "leaf_value" in child else child["internal_count"])
            slot, below = path.through(int(node["split_feature"]), child_count / count)
            for name, value in (("parent", position), ("split", split), ("left", int(left)), ("slot", slot)):
                self.nodes[name].append(value)
            self._walk(child, below, len(self.nodes["parent"]) - self.tree_node_start[-1], total)

    def _add_split(self, node: dict[str, Any]) -> int:
        splits = self.splits
        splits["feature"].append(int(node["split_feature"]))
        splits["missing"].append(MISSING_TYPES[node["missing_type"]])
        splits["default_left"].append(bool(node["default_left"]))
        if node["decision_type"] == "==":
            splits["kind"].append(CATEGORICAL)
            splits["threshold"].append(np.nan)
            self.categories.extend(int(value) for value in str(node["threshold"]).split("||"))
        else:
            splits["kind"].append(NUMERICAL)
            splits["threshold"].append(float(node["threshold"]))
        splits["category_start"].append(len(self.categories))
        return len(splits["feature"]) - 1

    def _add_leaf(self, value: float, path: _Path, position: int) -> None:
        if len(path.features) > MAX_PATH_FEATURES:
            raise PathsTooDeep(f"a leaf's path splits on {len(path.features)} distinct features (at most "
                               f"{MAX_PATH_FEATURES} are tabulated)")  # fmt: skip
        self.leaf_node.append(position)
        self.slot_feature.extend(path.features)
        self.leaf_slot_start.append(len(self.slot_feature))
        self.tables.append(leaf_table(np.array(path.zero), value).ravel())

    def finish(self, n_features: int) -> TreeTables:
        def ints(values: list[int]) -> np.ndarray:
            return np.array(values, dtype=np.int64)

        sizes = [len(table) for table in self.tables]
        return TreeTables(
            tree_split_start=ints(self.tree_split_start),
            split_feature=ints(self.splits["feature"]),
            split_threshold=np.array(self.splits["threshold"], dtype=np.float64),
            split_kind=np.array(self.splits["kind"], dtype=np.int8),
            split_missing=np.array(self.splits["missing"], dtype=np.int8),
            split_default_left=np.array(self.splits["default_left"], dtype=np.bool_),
            category_start=ints(self.splits["category_start"]),
            categories=ints(self.categories),
            tree_node_start=ints(self.tree_node_start),
            node_parent=ints(self.nodes["parent"]),
            node_split=ints(self.nodes["split"]),
            node_left=np.array(self.nodes["left"], dtype=np.bool_),
            node_slot=ints(self.nodes["slot"]),
            tree_leaf_start=ints(self.tree_leaf_start),
            leaf_node=ints(self.leaf_node),
            leaf_slot_start=ints(self.leaf_slot_start),
            slot_feature=ints(self.slot_feature),
            leaf_table_start=ints([0, *np.cumsum(sizes).tolist()]),
            table=np.concatenate(self.tables) if self.tables else np.zeros(0),
            expected_value=self.expected_value,
            n_features=n_features,
            max_splits=self.max_splits,
            max_nodes=self.max_nodes,
        )


@numba.njit(cache=True)
def leaf_table(zero: np.ndarray, value: float) -> np.ndarray:
    """For a leaf with value `value` and distinct path features of zero fractions `zero` (d of them): row P (bit k
    set when the customer follows the path on feature k) holds the leaf's SHAP share for each of the d features."""
    d = len(zero)
    weight = np.empty(max(d, 1))
    for size in range(d):  # |S|! (d - |S| - 1)! / d!
        weight[size] = 1.0 / d
        for i in range(1, size + 1):
            weight[size] *= i / (d - i)
    table = np.zeros((1 << d, d))
    poly = np.empty(d + 1)
    reduced = np.empty(d + 1)
    for pattern in range(1 << d):
        # prod over the followed features k of (z_k + t): the coefficient of t^s sums, over the subsets S of size s
        # of them, the product of z over the followed features outside S.
        poly[:] = 0.0
        poly[0] = 1.0
        size = 0
        unfollowed = 1.0
        for k in range(d):
            if pattern >> k & 1:
                size += 1
                for s in range(size, 0, -1):
                    poly[s] = poly[s] * zero[k] + poly[s - 1]
                poly[0] *= zero[k]
            else:
                unfollowed *= zero[k]
        for j in range(d):
            follows = pattern >> j & 1
            if follows:
                # Divide (z_j + t) out of the product: the subsets exclude j itself.
                reduced[size - 1] = poly[size]
                for s in range(size - 1, 0, -1):
                    reduced[s - 1] = poly[s] - zero[j] * reduced[s]
                others = size - 1
                outside = unfollowed
            else:
                reduced[: size + 1] = poly[: size + 1]
                others = size
                outside = unfollowed / zero[j]
            total = 0.0
            for s in range(others + 1):
                total += weight[s] * reduced[s]
            table[pattern, j] = value * (follows - zero[j]) * outside * total
    return table


@numba.njit(cache=True, inline="always")
def _goes_left(
    value: float, split: int, kind: np.ndarray, threshold: np.ndarray, missing: np.ndarray, default_left: np.ndarray,
    category_start: np.ndarray, categories: np.ndarray,
) -> bool:  # fmt: skip
    """LightGBM's decision at one split (Tree::NumericalDecision / CategoricalDecision)."""
    if kind[split] == CATEGORICAL:
        if np.isnan(value) or value < 0:
            return False
        code = int(value)
        for index in range(category_start[split], category_start[split + 1]):  # noqa: SIM110 -- numba has no any()
            if categories[index] == code:
                return True
        return False
    how = missing[split]
    if np.isnan(value) and how != MISSING_NAN:
        value = 0.0
    if (how == MISSING_ZERO and -ZERO_THRESHOLD <= value <= ZERO_THRESHOLD) or (how == MISSING_NAN and np.isnan(value)):
        return default_left[split]
    return value <= threshold[split]


@numba.njit(cache=True, parallel=True)
def _contributions(
    rows: np.ndarray, out: np.ndarray, tree_split_start: np.ndarray, split_feature: np.ndarray,
    split_threshold: np.ndarray, split_kind: np.ndarray, split_missing: np.ndarray, split_default_left: np.ndarray,
    category_start: np.ndarray, categories: np.ndarray, tree_node_start: np.ndarray, node_parent: np.ndarray,
    node_split: np.ndarray, node_left: np.ndarray, node_slot: np.ndarray, tree_leaf_start: np.ndarray,
    leaf_node: np.ndarray, leaf_slot_start: np.ndarray, slot_feature: np.ndarray, leaf_table_start: np.ndarray,
    table: np.ndarray, max_splits: int, max_nodes: int,
) -> None:  # fmt: skip
    """Adds each row's SHAP values (one column per feature) to `out`, in parallel over blocks of rows."""
    n = rows.shape[0]
    blocks = (n + BLOCK - 1) // BLOCK
    for block in numba.prange(blocks):
        left = np.empty(max_splits, dtype=np.bool_)
        # Bit k set: the customer leaves the path on slot k's feature somewhere between the root and the node.
        strayed = np.zeros(max_nodes, dtype=np.int64)
        # Tree by tree over a block of customers, so that the tree's tables stay in cache for the whole block.
        for tree in range(len(tree_split_start) - 1):
            first_split = tree_split_start[tree]
            first_node = tree_node_start[tree]
            for r in range(block * BLOCK, min(n, (block + 1) * BLOCK)):
                for split in range(first_split, tree_split_start[tree + 1]):
                    left[split - first_split] = _goes_left(
                        rows[r, split_feature[split]], split, split_kind, split_threshold, split_missing,
                        split_default_left, category_start, categories,
                    )  # fmt: skip
                for node in range(first_node, tree_node_start[tree + 1]):
                    bits = strayed[node_parent[node]]
                    if left[node_split[node]] != node_left[node]:
                        bits |= 1 << node_slot[node]
                    strayed[node - first_node + 1] = bits
                for leaf in range(tree_leaf_start[tree], tree_leaf_start[tree + 1]):
                    first_slot = leaf_slot_start[leaf]
                    slots = leaf_slot_start[leaf + 1] - first_slot
                    pattern = ((1 << slots) - 1) & ~strayed[leaf_node[leaf]]
                    base = leaf_table_start[leaf] + pattern * slots
                    for slot in range(slots):
                        out[r, slot_feature[first_slot + slot]] += table[base + slot]
