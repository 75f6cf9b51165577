"""Which raw features the model leans on, measured where it cannot flatter itself.

Permutation importance on validation rows, scored with the run's own metric, speaks in the
columns users know (not one-hot dummies) and works the same for every estimator family.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from shipyard.train.metrics import compute_metric, greater_is_better

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pandas as pd

    from shipyard.train.spec import Task

_REPEATS = 3
_MAX_ROWS = 2000


def permutation_importances(
    model: Any,
    x: pd.DataFrame,
    y: np.ndarray[Any, Any],
    features: Sequence[str],
    *,
    metric: str,
    task: Task,
    n_classes: int,
    seed: int,
) -> dict[str, float]:
    """Mean drop in ``metric`` when each feature is shuffled, largest first.

    At most 2,000 rows are used: importances are a ranking, and it settles long before that.
    """
    from sklearn.inspection import permutation_importance

    sign = 1.0 if greater_is_better(metric) else -1.0

    def scorer(estimator: Any, xs: pd.DataFrame, ys: np.ndarray[Any, Any]) -> float:
        if task == "regression":
            pred, proba = np.asarray(estimator.predict(xs), dtype=np.float64), None
        else:
            proba = np.asarray(estimator.predict_proba(xs), dtype=np.float64)
            pred = np.argmax(proba, axis=1)
        value = compute_metric(metric, task, ys, pred, proba, n_classes)
        return sign * (0.0 if value is None else value)

    if len(y) > _MAX_ROWS:
        keep = np.random.default_rng(seed).choice(len(y), _MAX_ROWS, replace=False)
        x, y = x.iloc[keep], y[keep]
    found = permutation_importance(
        model, x, y, scoring=scorer, n_repeats=_REPEATS, random_state=seed, n_jobs=1
    )
    means = {name: float(v) for name, v in zip(features, found.importances_mean, strict=True)}
    return dict(sorted(means.items(), key=lambda kv: -kv[1]))
