"""Evaluation plots: valid PNG files of a sane size, for every task and awkward inputs."""

from __future__ import annotations

import io

import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image

from shipyard.core.errors import InvalidArgument
from shipyard.train.plots import evaluation_plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _check_png(data: bytes) -> tuple[int, int]:
    assert data.startswith(PNG_MAGIC)
    with Image.open(io.BytesIO(data)) as image:
        image.verify()
    with Image.open(io.BytesIO(data)) as image:
        width, height = image.size
    assert 200 <= width <= 2000
    assert 200 <= height <= 2000
    return width, height


def _classification(n: int, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), y] += 1.5
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, proba.argmax(axis=1), proba


def test_binary_plots_with_importance() -> None:
    y, pred, proba = _classification(300, 2)
    importance = {f"feature_{i}": float(v) for i, v in enumerate(np.linspace(-1, 2, 30))}
    plots = evaluation_plots(
        "binary", y, pred, proba, ["no", "yes"], feature_importance=importance, top_features=10
    )
    assert set(plots) == {
        "roc.png",
        "pr.png",
        "confusion.png",
        "calibration.png",
        "feature_importance.png",
    }
    for data in plots.values():
        _check_png(data)
    # Decoded by matplotlib too: an RGBA image of the figure's size at 100 dpi.
    pixels = plt.imread(io.BytesIO(plots["roc.png"]), format="png")
    assert pixels.shape == (500, 600, 4)
    assert pixels[..., :3].std() > 0.05  # something was drawn, not a blank canvas


def test_plots_are_deterministic_and_leave_pyplot_alone() -> None:
    y, pred, proba = _classification(200, 2, seed=1)
    first = evaluation_plots("binary", y, pred, proba, [0, 1])
    assert evaluation_plots("binary", y, pred, proba, [0, 1]) == first
    assert plt.get_fignums() == []  # no figure registered with pyplot's global state


def test_multiclass_with_absent_class_and_many_classes() -> None:
    y, pred, proba = _classification(400, 12, seed=2)
    y[y == 5] = 4  # class 5 never occurs: its curves are skipped, without warnings
    plots = evaluation_plots("multiclass", y, pred, proba, [f"class {i}" for i in range(12)])
    assert set(plots) == {"roc.png", "pr.png", "confusion.png", "calibration.png"}
    for data in plots.values():
        _check_png(data)


def test_single_class_binary_draws_a_note_instead_of_warning() -> None:
    y = np.zeros(50, dtype=int)
    proba = np.tile([0.8, 0.2], (50, 1))
    plots = evaluation_plots("binary", y, y, proba, ["a", "b"])
    for data in plots.values():
        _check_png(data)


def test_without_probabilities_only_the_confusion_matrix() -> None:
    y, pred, _ = _classification(100, 3)
    assert set(evaluation_plots("multiclass", y, pred, None, ["a", "b", "c"])) == {"confusion.png"}


def test_regression_residuals() -> None:
    rng = np.random.default_rng(3)
    y = rng.normal(0, 1, 6000)  # above the scatter's point cap
    plots = evaluation_plots("regression", y, y + rng.normal(0, 0.3, 6000), None, None)
    assert set(plots) == {"residuals.png"}
    width, height = _check_png(plots["residuals.png"])
    assert width > height  # residual scatter and histogram side by side


def test_bad_inputs_are_refused() -> None:
    y, pred, proba = _classification(50, 2)
    with pytest.raises(InvalidArgument, match="equal length"):
        evaluation_plots("binary", y, pred[:-1], proba, [0, 1])
    with pytest.raises(InvalidArgument, match="below 2"):
        evaluation_plots("binary", y + 1, pred, proba, [0, 1])
    with pytest.raises(InvalidArgument, match="one column per class"):
        evaluation_plots("binary", y, pred, proba[:, :1], [0, 1])
    with pytest.raises(InvalidArgument, match="no rows"):
        evaluation_plots("regression", [], [], None, None)
