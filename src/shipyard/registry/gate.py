"""The promotion gate: a candidate must beat the alias holder on the same rows, and be sane.

Both models are scored on one frame — by default the candidate's own held-out test split — with
the candidate's primary metric, so the comparison is like for like. The verdict (every check and
both scores) is stored with the alias event whether the candidate passes or not.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from shipyard.train.metrics import compute_metric, greater_is_better

if TYPE_CHECKING:
    import polars as pl

    from shipyard.registry.bundle import Bundle


@dataclass(frozen=True)
class GateCheck:
    """One named check and what it found."""

    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class GateVerdict:
    """Whether the candidate may take the alias, and the numbers behind it."""

    passed: bool
    metric: str
    greater_is_better: bool
    candidate_score: float | None
    champion_score: float | None
    margin: float
    rows: int
    checks: list[GateCheck] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form, stored with the alias event."""
        return asdict(self)

    def summary(self) -> str:
        """One line for people: the scores and the first failed check."""
        scores = (
            f"{self.metric}: candidate {_fmt(self.candidate_score)}, "
            f"holder {_fmt(self.champion_score)}"
        )
        failed = [c for c in self.checks if not c.passed]
        if not failed:
            return f"passed ({scores}, margin {self.margin:g})"
        return f"refused: {failed[0].detail} ({scores})"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def run_gate(
    candidate: Bundle, champion: Bundle | None, test_frame: pl.DataFrame, *, margin: float
) -> GateVerdict:
    """Judge ``candidate`` against ``champion`` (None: no holder yet) on ``test_frame``."""
    manifest = candidate.manifest
    metric = manifest.primary_metric
    better = greater_is_better(metric)
    checks = [_contract(candidate, champion, test_frame)]
    candidate_score = champion_score = None
    if checks[0].passed:
        y, n_classes = _truth(candidate, test_frame)
        candidate_score, sanity = _score(candidate, test_frame, y, n_classes, "candidate")
        checks.append(sanity)
        if champion is not None:
            champion_score, champion_sanity = _score(
                champion, test_frame, y, n_classes, "holder", classes=manifest.classes
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
        checks.append(_beats(candidate_score, champion_score, better, margin))
    passed = all(c.passed for c in checks)
    return GateVerdict(
        passed, metric, better, candidate_score, champion_score, margin, test_frame.height, checks
    )


def _contract(candidate: Bundle, champion: Bundle | None, frame: pl.DataFrame) -> GateCheck:
    m = candidate.manifest
    problems = []
    if m.target not in frame.columns:
        problems.append(f"the test data has no target column {m.target!r}")
    missing = [f for f in m.feature_names if f not in frame.columns]
    if missing:
        problems.append(f"the test data lacks feature(s) {', '.join(missing)}")
    if champion is not None:
        h = champion.manifest
        if (h.task, h.target) != (m.task, m.target):
            problems.append(
                f"the holder predicts {h.task} {h.target!r}, the candidate {m.task} {m.target!r}"
            )
        if (
            h.classes is not None
            and m.classes is not None
            and sorted(map(str, h.classes)) != sorted(map(str, m.classes))
        ):
            problems.append("the holder and the candidate know different classes")
        gone = [f for f in h.feature_names if f not in frame.columns]
        if gone:
            problems.append(f"the test data lacks the holder's feature(s) {', '.join(gone)}")
    if frame.height == 0:
        problems.append("the test data is empty")
    if problems:
        return GateCheck("contract", False, "; ".join(problems))
    return GateCheck("contract", True, "same task, target and classes; every feature present")


def _truth(candidate: Bundle, frame: pl.DataFrame) -> tuple[np.ndarray[Any, Any], int]:
    m = candidate.manifest
    target = frame[m.target]
    if m.classes is None:
        return target.cast(float).to_numpy(), 0
    index = {str(c): i for i, c in enumerate(m.classes)}
    codes = np.array([index.get(str(v), -1) for v in target.to_list()], dtype=np.int64)
    return codes, len(m.classes)


def _score(
    bundle: Bundle,
    frame: pl.DataFrame,
    y: np.ndarray[Any, Any],
    n_classes: int,
    who: str,
    classes: list[Any] | None = None,
) -> tuple[float | None, GateCheck]:
    m = bundle.manifest
    try:
        predictions = bundle.predict(frame)
    except Exception as e:
        return None, GateCheck(
            f"{who}_sanity", False, f"{who} failed to predict: {type(e).__name__}: {e}"
        )
    known = y >= 0 if n_classes else np.ones(len(y), dtype=bool)
    if n_classes == 0:
        pred = np.asarray(predictions.labels, dtype=np.float64)
        if not np.all(np.isfinite(pred)):
            return None, GateCheck(f"{who}_sanity", False, f"{who} predicts non-finite values")
        proba = None
    else:
        order = [str(c) for c in (classes or m.classes or [])]
        own = [str(c) for c in (m.classes or [])]
        columns = [own.index(c) for c in order]
        proba = None if predictions.proba is None else np.asarray(predictions.proba)[:, columns]
        pred = np.array([order.index(str(v)) for v in predictions.labels], dtype=np.int64)
        if proba is not None and (
            not np.all(np.isfinite(proba)) or np.abs(proba.sum(axis=1) - 1).max() > 1e-3
        ):
            return None, GateCheck(
                f"{who}_sanity", False, f"{who} returns probabilities that are not a distribution"
            )
        if (
            len(np.unique(y[known])) > 1
            and len(np.unique(pred)) == 1
            and proba is not None
            and np.ptp(proba[:, -1]) == 0
        ):
            return None, GateCheck(
                f"{who}_sanity", False, f"{who} gives the same answer for every row"
            )
    score = compute_metric(
        m.primary_metric,
        m.task,
        y[known],
        pred[known],
        None if proba is None else proba[known],
        n_classes,
    )
    return score, GateCheck(f"{who}_sanity", True, f"{who} predictions are finite and varied")


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
    if gain > margin or (margin == 0 and gain >= 0 and gain > 0):
        return GateCheck("beats_holder", True, f"better by {gain:.4f} (margin {margin:g})")
    return GateCheck(
        "beats_holder",
        False,
        f"not better than the holder by more than {margin:g} (difference {gain:+.4f})",
    )
