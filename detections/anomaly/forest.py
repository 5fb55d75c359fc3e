"""An IsolationForest exported to plain arrays, so it is saved without pickle and scored with numpy.

:func:`export_forest` copies each fitted tree's node arrays (children, split
feature and threshold, and for leaves the path length sklearn adds) into padded
matrices; :func:`forest_scores` walks them and returns sklearn's
``score_samples`` negated (about 0.5 normal, towards 1 anomalous).
"""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import IsolationForest


def _c(n: np.ndarray) -> np.ndarray:
    """Average path length of an unsuccessful BST search among ``n`` points (Liu et al. 2008)."""
    n = np.asarray(n, dtype=float)
    out = np.zeros_like(n)
    big = n > 2
    out[n == 2] = 1.0
    out[big] = 2.0 * (np.log(n[big] - 1.0) + np.euler_gamma) - 2.0 * (n[big] - 1.0) / n[big]
    return out


def export_forest(forest: IsolationForest) -> dict[str, np.ndarray]:
    trees = forest.estimators_
    size = max(t.tree_.node_count for t in trees)
    shape = (len(trees), size)
    left = np.full(shape, -1.0)
    right = np.full(shape, -1.0)
    feature = np.full(shape, -1.0)
    threshold = np.zeros(shape)
    leafval = np.zeros(shape)
    fmap = np.asarray([np.asarray(f, dtype=float) for f in forest.estimators_features_])
    for k, est in enumerate(trees):
        tree = est.tree_
        n = tree.node_count
        left[k, :n], right[k, :n] = tree.children_left, tree.children_right
        feature[k, :n], threshold[k, :n] = tree.feature, tree.threshold
        depth = np.zeros(n)
        for node in range(n):  # children have higher ids than their parent
            for child in (tree.children_left[node], tree.children_right[node]):
                if child >= 0:
                    depth[child] = depth[node] + 1
        leafval[k, :n] = depth + _c(tree.n_node_samples)
    return {
        "if_left": left,
        "if_right": right,
        "if_feature": feature,
        "if_threshold": threshold,
        "if_leafval": leafval,
        "if_fmap": fmap,
        "if_norm": np.asarray([_c(np.asarray([forest.max_samples_]))[0]]),
    }


def forest_scores(params: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    left, right = params["if_left"].astype(int), params["if_right"].astype(int)
    feature, threshold = params["if_feature"].astype(int), params["if_threshold"]
    leafval, fmap = params["if_leafval"], params["if_fmap"].astype(int)
    total = np.zeros(x.shape[0])
    rows = np.arange(x.shape[0])
    for k in range(left.shape[0]):
        sub = x[:, fmap[k]]
        node = np.zeros(x.shape[0], dtype=int)
        while True:
            inner = left[k, node] >= 0
            if not inner.any():
                break
            f = feature[k, node[inner]]
            go_left = sub[rows[inner], f] <= threshold[k, node[inner]]
            node[inner] = np.where(go_left, left[k, node[inner]], right[k, node[inner]])
        total += leafval[k, node]
    return np.asarray(2.0 ** (-(total / left.shape[0]) / params["if_norm"][0]))
