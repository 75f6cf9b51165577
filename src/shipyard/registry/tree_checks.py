"""Bounds checks for the node arrays of scikit-learn trees, run after a model is loaded.

skops can check that an object is of a trusted type, not that its content is sane. Its own
notes (``skops.io.exceptions.UNTRUSTED_TYPE_REASONS``, scikit-learn/scikit-learn#34558) warn
that ``sklearn.tree._tree.Tree`` and HistGradientBoosting's ``TreePredictor`` keep raw child and
feature indices that ``predict`` follows without bounds checks: a crafted file passes the type
check and then crashes the process or reads out of bounds. Random forests and gradient boosting
need those types, so Shipyard trusts them and checks every index here before the model is used.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shipyard.core.errors import IntegrityFailure


def check_tree_bounds(model: Any, *, source: str = "model file") -> None:
    """Verify the node arrays of every scikit-learn tree in ``model`` stay in bounds.

    Raises:
        IntegrityFailure: A child, feature or value index points outside its array.
    """
    for obj in _walk(model):
        tree = getattr(obj, "tree_", None)
        if tree is not None and type(tree).__module__ == "sklearn.tree._tree":
            _check_tree(tree, source)
        predictors = getattr(obj, "_predictors", None)
        if isinstance(predictors, list):
            n_features = getattr(obj, "n_features_in_", None)
            for per_iteration in predictors:
                for predictor in per_iteration:
                    _check_predictor(predictor, n_features, source)


def _walk(model: Any) -> list[Any]:
    """The model and every estimator nested in it (pipeline steps, transformers, ensembles)."""
    seen: list[Any] = []
    stack = [model]
    while stack:
        obj = stack.pop()
        if any(obj is s for s in seen):
            continue
        seen.append(obj)
        for attr in ("steps", "transformers_", "estimators_"):
            children = getattr(obj, attr, None)
            if isinstance(children, list):
                # steps and transformers are (name, estimator[, columns]) tuples
                stack.extend(c[1] if isinstance(c, tuple) else c for c in children)
    return seen


def _check_tree(tree: Any, source: str) -> None:
    count = int(tree.node_count)
    left, right = np.asarray(tree.children_left), np.asarray(tree.children_right)
    feature = np.asarray(tree.feature)
    leaf = left == -1
    ok = (
        len(left) == len(right) == len(feature) == count
        and np.all((left == -1) == (right == -1))
        and np.all((left[~leaf] > 0) & (left[~leaf] < count))
        and np.all((right[~leaf] > 0) & (right[~leaf] < count))
        and np.all((feature[~leaf] >= 0) & (feature[~leaf] < int(tree.n_features)))
        and np.asarray(tree.value).shape[0] == count
    )
    if not ok:
        raise IntegrityFailure(
            f"{source} holds a decision tree whose node indices point outside the tree; "
            "the model was refused before it could read out of bounds"
        )


def _check_predictor(predictor: Any, n_features: int | None, source: str) -> None:
    nodes: Any = getattr(predictor, "nodes", None)
    ok = isinstance(nodes, np.ndarray) and nodes.dtype.names is not None and len(nodes) > 0
    if ok:
        count = len(nodes)
        inner = nodes["is_leaf"] == 0
        ok = bool(
            np.all((nodes["left"][inner] > 0) & (nodes["left"][inner] < count))
            and np.all((nodes["right"][inner] > 0) & (nodes["right"][inner] < count))
            and np.all(nodes["feature_idx"][inner] >= 0)
            and (n_features is None or np.all(nodes["feature_idx"][inner] < n_features))
        )
    if not ok:
        raise IntegrityFailure(
            f"{source} holds a gradient-boosting tree whose node indices point outside the "
            "tree; the model was refused before it could read out of bounds"
        )
