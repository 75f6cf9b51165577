"""The promotion gate: a candidate must beat the alias holder on the same rows, and be sane.

Both models are scored on one frame — by default the candidate's own held-out test split — with
the candidate's primary metric, so the comparison is like for like. The verdict (every check and
both scores) is stored with the alias event whether the candidate passes or not.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from shipyard.core.errors import InvalidArgument
from shipyard.registry.inference import check_input
from shipyard.registry.verdict import GateCheck, GateVerdict
from shipyard.train.metrics import compute_metric, greater_is_better

if TYPE_CHECKING:
    from shipyard.registry.bundle import Bundle

__all__ = ["GateCheck", "GateVerdict", "run_gate"]


def run_gate(
    candidate: Bundle, champion: Bundle | None, test_frame: pl.DataFrame, *, margin: float
) -> GateVerdict:
    """Judge ``candidate`` against ``champion`` (None: no holder yet) on ``test_frame``.

    Checks, in order: the contract (both models can read the rows, predict the same target and
    know the same classes; every target label is one the candidate knows), the candidate's
    sanity (finite predictions, probabilities that form a distribution, not one answer for
    every row when the truth varies), and that it beats the holder by more than ``margin`` in
    the direction of the candidate's primary metric. A holder that cannot be scored on these
    rows does not block the candidate; the verdict says so.

    Raises:
        InvalidArgument: ``margin`` is negative or not finite.
    """
    if not math.isfinite(margin) or margin < 0:
        raise InvalidArgument(f"margin must be a finite number >= 0, got {margin}")
    manifest = candidate.manifest
    metric = manifest.primary_metric
    better = greater_is_better(metric)
    checks = [_contract(candidate, champion, test_frame)]
    candidate_score = champion_score = None
    if checks[0].passed:
        y, n_classes = _truth(candidate, test_frame)
        candidate_score, sanity = _score(
            candidate, test_frame, y, n_classes, "candidate", metric=metric
        )
        checks.append(sanity)
        if champion is not None:
            champion_score, champion_sanity = _score(
                champion,
                test_frame,
                y,
                n_classes,
                "holder",
                metric=metric,
                classes=manifest.classes,
            )
            if not champion_sanity.passed:
                checks.append(
                    GateCheck(
                        "holder_scored",
                        True,
                        f"the holder could not be scored ({champion_sanity.detail}); "
                        "judging the candidate alone",
                    )
                )
                champion_score = None
        if sanity.passed:
            checks.append(_beats(candidate_score, champion_score, better, margin))
    warnings = _training_warnings(manifest.metrics)
    if warnings:
        checks.append(warnings)
    passed = all(c.passed for c in checks)
    return GateVerdict(
        passed, metric, better, candidate_score, champion_score, margin, test_frame.height, checks
    )


def _training_warnings(metrics: dict[str, Any]) -> GateCheck | None:
    """The trainer's warnings (ID-like columns, likely leaks, near-perfect scores), if any.

    Recorded in the verdict without blocking: each is a reason to look, not proof of a fault
    (issue 16: a leaking model was promoted with "Generalizes" and not a word).
    """
    found = metrics.get("warnings")
    if not isinstance(found, list) or not found:
        return None
    return GateCheck("training_warnings", True, "; ".join(str(w) for w in found))


def _contract(candidate: Bundle, champion: Bundle | None, frame: pl.DataFrame) -> GateCheck:
    m = candidate.manifest
    problems: list[str] = []
    notes: list[str] = []
    if frame.height == 0:
        problems.append("the test data is empty")
    if m.target not in frame.columns:
        problems.append(f"the test data has no target column {m.target!r}")
    elif m.classes is not None:
        known = {str(c) for c in m.classes}
        labels = sorted({str(v) for v in frame[m.target].drop_nulls().unique().to_list()})
        strange = [v for v in labels if v not in known]
        if strange:
            problems.append(
                f"the test target holds label(s) the candidate does not know: "
                f"{', '.join(map(repr, strange[:5]))}"
            )
    for who, bundle in (("candidate", candidate), ("holder", champion)):
        if bundle is None:
            continue
        for problem in check_input(bundle.manifest, frame):
            line = f"{who}: {problem.message}"
            (notes if problem.kind == "unseen" else problems).append(line)
    if champion is not None:
        h = champion.manifest
        if (h.task, h.target) != (m.task, m.target):
            problems.append(
                f"the holder predicts {h.task} {h.target!r}, the candidate {m.task} {m.target!r}"
            )
        elif (
            h.classes is not None
            and m.classes is not None
            and sorted(map(str, h.classes)) != sorted(map(str, m.classes))
        ):
            problems.append("the holder and the candidate know different classes")
    if problems:
        return GateCheck("contract", False, "; ".join(problems))
    detail = "same task, target and classes; every feature present and of its type"
    return GateCheck("contract", True, "; ".join([detail, *notes]))


def _truth(candidate: Bundle, frame: pl.DataFrame) -> tuple[np.ndarray[Any, Any], int]:
    """The target as codes in the candidate's class order (-1: null), or floats (NaN: null)."""
    m = candidate.manifest
    target = frame[m.target]
    if m.classes is None:
        return target.cast(pl.Float64).fill_null(float("nan")).to_numpy(), 0
    index = {str(c): i for i, c in enumerate(m.classes)}
    # str() as the manifest's classes are compared everywhere (Polars would write "true").
    codes = np.array([-1 if v is None else index[str(v)] for v in target.to_list()], dtype=np.int64)
    return codes, len(m.classes)


def _score(
    bundle: Bundle,
    frame: pl.DataFrame,
    y: np.ndarray[Any, Any],
    n_classes: int,
    who: str,
    *,
    metric: str,
    classes: list[Any] | None = None,
) -> tuple[float | None, GateCheck]:
    """Score ``bundle`` with ``metric`` (the candidate's) against codes in ``classes`` order."""
    m = bundle.manifest
    name = f"{who}_sanity"
    try:
        # Unseen test categories are a note of the contract check, not a refusal: score them
        # as the encoders' unknown whatever the serving policy (docs/serving.md).
        predictions = bundle.predict(frame, unseen_categories="unknown")
    except Exception as e:  # any failure to predict is a verdict, not a crash of the gate
        return None, GateCheck(name, False, f"{who} failed to predict: {type(e).__name__}: {e}")
    known = y >= 0 if n_classes else np.isfinite(y)
    if not known.any():
        return None, GateCheck(name, False, "the test target has no values")
    truth_varies = len(np.unique(y[known])) > 1
    proba = None
    pred: np.ndarray[Any, Any]
    if n_classes == 0:
        pred = np.asarray(predictions.labels, dtype=np.float64)
        if not np.all(np.isfinite(pred)):
            return None, GateCheck(name, False, f"{who} predicts non-finite values")
        if truth_varies and np.ptp(pred[known]) == 0:
            return None, GateCheck(name, False, f"{who} predicts the same value for every row")
    else:
        # Columns and codes in the candidate's class order, whatever order this model uses.
        order = [str(c) for c in (classes or m.classes or [])]
        own = [str(c) for c in (m.classes or [])]
        remap = np.array([order.index(c) for c in own], dtype=np.int64)
        pred = remap[np.asarray(predictions.codes, dtype=np.int64)]
        if predictions.proba is not None:
            proba = np.asarray(predictions.proba, dtype=np.float64)[
                :, [own.index(c) for c in order]
            ]
            if (
                not np.all(np.isfinite(proba))
                or proba.min(initial=0.0) < 0
                or proba.max(initial=0.0) > 1
                or np.abs(proba.sum(axis=1) - 1).max(initial=0.0) > 1e-4
            ):
                return None, GateCheck(
                    name, False, f"{who} returns probabilities that are not a distribution"
                )
        constant = len(np.unique(pred[known])) == 1 and (
            proba is None or float(np.ptp(proba[known], axis=0).max()) == 0
        )
        if truth_varies and constant:
            return None, GateCheck(name, False, f"{who} gives the same answer for every row")
    score = compute_metric(
        metric,
        m.task,
        y[known],
        pred[known],
        None if proba is None else proba[known],
        n_classes,
    )
    dropped = int((~known).sum())
    note = f"; {dropped} row(s) without a target left out" if dropped else ""
    return score, GateCheck(name, True, f"{who} predictions are finite and varied{note}")


def _beats(
    candidate: float | None, champion: float | None, better: bool, margin: float
) -> GateCheck:
    if candidate is None:
        return GateCheck(
            "beats_holder", False, "the candidate's score is undefined on the test data"
        )
    if champion is None:
        return GateCheck("beats_holder", True, "no holder to beat")
    gain = candidate - champion if better else champion - candidate
    if gain > margin:
        return GateCheck("beats_holder", True, f"better by {gain:.4f} (margin {margin:g})")
    return GateCheck(
        "beats_holder",
        False,
        f"not better than the holder by more than {margin:g} (difference {gain:+.4f})",
    )
