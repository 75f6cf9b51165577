"""Learning curves: test quality against the share of training rows, and what each fit costs.

Issue 8 asks whether more data is worth having. The answer is a curve: refit one candidate
(estimator and hyperparameters) on growing, nested shares of the training rows and score each
fit on the *same* held-out test rows, with the spec's metric. Where the curve flattens, more
data of the same kind buys little; the CPU seconds of each fit, priced on the active instance,
say what the extra rows cost to train on.

The rows are split exactly as ``shipyard.train.trainer.train`` splits them (same spec, same
seed, same dataset: same test rows), so the right end of the curve is comparable with the
model the trainer built. Each repeat draws its own nested subsets (a smaller share is always a
subset of a larger one within a repeat, so a step on the curve is the effect of adding rows,
not of drawing different ones), stratified by class for classification, seeded by
``spec.seed + repeat``. Binary thresholds are tuned on the validation rows, as in training.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from shipyard.core.errors import InvalidArgument, InvalidData
from shipyard.cost.attribution import cpu_share_usd
from shipyard.train.fitting import Candidate, build_pipeline, fit_pipeline, predict_scores
from shipyard.train.imbalance import tune_threshold
from shipyard.train.metrics import check_metric, compute_metric, greater_is_better
from shipyard.train.preprocess import model_input, resolve_columns
from shipyard.train.spec import DEFAULT_METRIC
from shipyard.train.splits import hold_out

# The trainer's own target encoding and fit conditions (one thread, no solver chatter), so a
# curve point is fitted exactly as a training refit would be and its CPU seconds are one core's.
from shipyard.train.trainer import encode_target, infer_task, single_threaded_quiet_fits

if TYPE_CHECKING:
    from collections.abc import Sequence
    from decimal import Decimal

    from shipyard.cost.catalog import ActiveInstance
    from shipyard.train.preprocess import Columns
    from shipyard.train.spec import Task, TrainSpec

DEFAULT_FRACTIONS = (0.1, 0.25, 0.5, 0.75, 1.0)
MAX_FRACTIONS = 20
MAX_REPEATS = 20


def parse_fractions(text: str) -> tuple[float, ...]:
    """Read ``"0.1,0.25,0.5"`` into checked fractions.

    Raises:
        InvalidArgument: A value is not a number, or the list breaks ``check_fractions``.
    """
    parts = [p.strip() for p in text.split(",")]
    values = []
    for part in parts:
        try:
            values.append(float(part))
        except ValueError:
            raise InvalidArgument(
                f"--fractions: {part!r} is not a number; give shares of the training rows "
                "such as 0.1,0.25,0.5,1.0"
            ) from None
    return check_fractions(values)


def check_fractions(fractions: Sequence[float]) -> tuple[float, ...]:
    """Return ``fractions`` as a tuple after checking they make a curve.

    Raises:
        InvalidArgument: Empty, too many, a value outside ``(0, 1]`` (or not finite), or not
            strictly increasing (which also refuses duplicates).
    """
    values = tuple(float(f) for f in fractions)
    if not values:
        raise InvalidArgument("--fractions: give at least one share, e.g. 0.1,0.5,1.0")
    if len(values) > MAX_FRACTIONS:
        raise InvalidArgument(f"--fractions: at most {MAX_FRACTIONS} shares, got {len(values)}")
    for f in values:
        if not math.isfinite(f) or not 0.0 < f <= 1.0:
            raise InvalidArgument(
                f"--fractions: {f:g} is not a share of the training rows; each must be "
                "above 0 and at most 1 (1 = all training rows)"
            )
    for a, b in pairwise(values):
        if b <= a:
            raise InvalidArgument(
                f"--fractions must increase strictly, without repeats: {a:g} is followed by "
                f"{b:g} (got {', '.join(f'{v:g}' for v in values)})"
            )
    return values


@dataclass(frozen=True)
class CurvePoint:
    """One share of the training rows: its test scores over repeats and its fitting cost."""

    fraction: float
    rows: int
    scores: tuple[float | None, ...]
    cpu_seconds: tuple[float, ...]
    cost_usd: Decimal | None
    """Mean cost of one fit at this share (``None`` without an instance to price on)."""

    @property
    def mean(self) -> float | None:
        """Mean test score over the repeats where the metric was defined."""
        defined = [s for s in self.scores if s is not None]
        return float(np.mean(defined)) if defined else None

    @property
    def std(self) -> float | None:
        """Sample standard deviation of the test scores (0 with a single defined score)."""
        defined = [s for s in self.scores if s is not None]
        if not defined:
            return None
        return float(np.std(defined, ddof=1)) if len(defined) > 1 else 0.0

    @property
    def mean_cpu_seconds(self) -> float:
        """Mean CPU seconds of one fit at this share."""
        return float(np.mean(self.cpu_seconds))


@dataclass(frozen=True)
class Gain:
    """What going from one share to the next bought, and at what training cost."""

    from_fraction: float
    to_fraction: float
    score_delta: float | None
    per_doubling: float | None
    """``score_delta / log2(rows ratio)``: the gain per doubling of the training rows."""
    cost_ratio: float | None
    """CPU seconds of one fit at ``to_fraction`` over one at ``from_fraction``."""


@dataclass(frozen=True)
class LearningCurve:
    """Test quality and training cost of one candidate along growing shares of the rows."""

    task: Task
    metric: str
    greater_is_better: bool
    candidate: Candidate
    train_rows: int
    test_rows: int
    repeats: int
    seed: int
    points: tuple[CurvePoint, ...]

    def gains(self) -> list[Gain]:
        """The change between each pair of neighbouring shares."""
        out = []
        for a, b in pairwise(self.points):
            delta = None if a.mean is None or b.mean is None else b.mean - a.mean
            doublings = math.log2(b.rows / a.rows) if b.rows > a.rows else 0.0
            per = None if delta is None or doublings == 0.0 else delta / doublings
            ratio = b.mean_cpu_seconds / a.mean_cpu_seconds if a.mean_cpu_seconds > 0.0 else None
            out.append(Gain(a.fraction, b.fraction, delta, per, ratio))
        return out

    def summary(self) -> str:
        """One plain sentence about the last doubling: what the rest of the data buys, for what.

        The step compared is from the share nearest half the largest one (50% -> 100% with the
        default fractions) to the largest, so the sentence reads as the price of the last
        doubling of the data whatever shares were asked for.
        """
        if len(self.points) < 2:
            only = self.points[0]
            return (
                f"{only.fraction:.0%} of the training rows ({only.rows:,}) scores "
                f"{_score(only.mean)} {self.metric}; give two or more fractions to see a trend"
            )
        b = self.points[-1]
        a = min(self.points[:-1], key=lambda p: (abs(p.fraction - b.fraction / 2), -p.fraction))
        delta = None if a.mean is None or b.mean is None else b.mean - a.mean
        if delta is None:
            change = f"leaves {self.metric} undefined"
        else:
            better = (delta > 0) == self.greater_is_better
            verdict = "no change" if delta == 0 else "better" if better else "worse"
            change = f"adds {delta:+.4f} {self.metric} ({verdict})"
        cost = (
            f"{b.mean_cpu_seconds / a.mean_cpu_seconds:.1f}x the training cost"
            if a.mean_cpu_seconds > 0.0
            else "a training cost too small to measure at the smaller share"
        )
        line = (
            f"going from {a.fraction:.0%} to {b.fraction:.0%} of the data "
            f"({a.rows:,} to {b.rows:,} rows) {change} for {cost}"
        )
        spread = max((p.std or 0.0) for p in (a, b))
        if delta is not None and self.repeats > 1 and abs(delta) <= spread:
            line += f"; the step is within the spread of repeats (±{spread:.4f})"
        return line

    def to_dict(self) -> dict[str, Any]:
        """Plain values for ``--json`` and the run's ``curve.json`` artifact."""
        return {
            "task": self.task,
            "metric": self.metric,
            "greater_is_better": self.greater_is_better,
            "estimator": self.candidate.estimator,
            "params": self.candidate.params,
            "train_rows": self.train_rows,
            "test_rows": self.test_rows,
            "repeats": self.repeats,
            "seed": self.seed,
            "points": [
                {
                    "fraction": p.fraction,
                    "rows": p.rows,
                    "scores": list(p.scores),
                    "mean": p.mean,
                    "std": p.std,
                    "cpu_seconds": p.mean_cpu_seconds,
                    "cost": p.cost_usd,
                }
                for p in self.points
            ],
            "gains": [
                {
                    "from": g.from_fraction,
                    "to": g.to_fraction,
                    "score_delta": g.score_delta,
                    "per_doubling": g.per_doubling,
                    "cost_ratio": g.cost_ratio,
                }
                for g in self.gains()
            ],
            "summary": self.summary(),
        }


def _score(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.4f}"


def learning_curve(
    spec: TrainSpec,
    frame: pl.DataFrame,
    candidate: Candidate,
    *,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    repeats: int = 3,
    instance: ActiveInstance | None = None,
) -> LearningCurve:
    """Refit ``candidate`` on nested shares of the training rows and score each on the test rows.

    Args:
        spec: The project's train spec (target, features, split, metric, preprocessing, seed).
        frame: The dataset, split here exactly as training splits it.
        candidate: The estimator and its full parameters (e.g. the production model's).
        fractions: Strictly increasing shares of the training rows, each in ``(0, 1]``.
        repeats: Subsets drawn per share (and model seeds ``spec.seed + repeat``).
        instance: Prices each fit's CPU seconds (``cpu_share``); ``None`` leaves costs out.

    Raises:
        InvalidArgument: Bad fractions or repeats, or a candidate the task cannot use.
        InvalidData: The data cannot support the spec, or a share is too small to fit.
    """
    shares = check_fractions(fractions)
    if not 1 <= repeats <= MAX_REPEATS:
        raise InvalidArgument(f"--repeats must be 1 to {MAX_REPEATS}, not {repeats}")
    columns = resolve_columns(spec, frame.schema)
    labelled = frame.filter(pl.col(spec.target).is_not_null())
    task = spec.task or infer_task(labelled[spec.target])
    metric = spec.metric or DEFAULT_METRIC[task]
    check_metric(metric, task)
    y, classes = encode_target(labelled[spec.target], task)
    n_classes = 0 if classes is None else len(classes)
    split = hold_out(spec.split, labelled, y, task=task, seed=spec.seed)
    x = model_input(labelled, columns)
    x_val, y_val = x.iloc[split.validation], y[split.validation]
    x_test, y_test = x.iloc[split.test], y[split.test]
    y_train = y[split.train]

    scores: list[list[float | None]] = [[] for _ in shares]
    cpu: list[list[float]] = [[] for _ in shares]
    rows = [0] * len(shares)
    with single_threaded_quiet_fits():
        # One unmeasured fit first: the first fit in a process pays for lazy imports and
        # caches (measured at 7x a warm fit), which would be charged to the smallest share.
        warm = split.train[_take(_nested_order(y_train, task, seed=spec.seed), shares[0], task)]
        _fit(spec, task, columns, candidate, x.iloc[warm], y[warm], n_classes, shares[0])
        for repeat in range(repeats):
            seeded = spec.model_copy(update={"seed": spec.seed + repeat})
            order = _nested_order(y_train, task, seed=spec.seed + repeat)
            for i, share in enumerate(shares):
                picked = _take(order, share, task)
                rows[i] = len(picked)
                positions = split.train[picked]
                started = time.process_time()
                model = _fit(
                    seeded, task, columns, candidate, x.iloc[positions], y[positions],
                    n_classes, share,
                )  # fmt: skip
                cpu[i].append(time.process_time() - started)
                scores[i].append(
                    _test_score(model, spec, task, metric, n_classes, x_val, y_val, x_test, y_test)
                )
    points = tuple(
        CurvePoint(
            fraction=share,
            rows=rows[i],
            scores=tuple(scores[i]),
            cpu_seconds=tuple(cpu[i]),
            cost_usd=None
            if instance is None
            else cpu_share_usd(float(np.mean(cpu[i])), instance.instance, instance.hourly),
        )
        for i, share in enumerate(shares)
    )
    return LearningCurve(
        task=task,
        metric=metric,
        greater_is_better=greater_is_better(metric),
        candidate=candidate,
        train_rows=len(split.train),
        test_rows=len(split.test),
        repeats=repeats,
        seed=spec.seed,
        points=points,
    )


def _fit(
    spec: TrainSpec,
    task: Task,
    columns: Columns,
    candidate: Candidate,
    x_fit: Any,
    y_fit: np.ndarray[Any, Any],
    n_classes: int,
    share: float,
) -> Any:
    """Build and fit the candidate's pipeline on these rows, as a training refit would."""
    minority = int(np.bincount(y_fit.astype(np.int64)).min()) if n_classes else 0
    model = build_pipeline(spec, task, columns, candidate, minority_rows=minority)
    try:
        return fit_pipeline(model, x_fit, y_fit, spec=spec, task=task, candidate=candidate)
    except ValueError as e:
        raise InvalidData(
            f"{candidate.estimator} cannot fit {share:g} of the training rows "
            f"({len(y_fit)} rows): {e}; use larger --fractions"
        ) from e


def _nested_order(y: np.ndarray[Any, Any], task: Task, *, seed: int) -> list[np.ndarray[Any, Any]]:
    """Shuffled positions into the training rows: one list per class, or one for regression.

    A share takes a prefix of each list, so smaller shares are subsets of larger ones.
    """
    rng = np.random.default_rng(seed)
    if task == "regression":
        return [rng.permutation(len(y))]
    return [rng.permutation(np.flatnonzero(y == c)) for c in np.unique(y)]


def _take(order: list[np.ndarray[Any, Any]], share: float, task: Task) -> np.ndarray[Any, Any]:
    """The first ``share`` of each list; every class keeps at least one row."""
    floor = 0 if task == "regression" else 1
    parts = [group[: max(floor, round(share * len(group)))] for group in order]
    picked = np.sort(np.concatenate(parts)).astype(np.int64)
    if len(picked) < 2:
        raise InvalidData(
            f"{share:g} of the training rows is {len(picked)} row(s); use larger --fractions"
        )
    return picked


def _test_score(
    model: Any,
    spec: TrainSpec,
    task: Task,
    metric: str,
    n_classes: int,
    x_val: Any,
    y_val: np.ndarray[Any, Any],
    x_test: Any,
    y_test: np.ndarray[Any, Any],
) -> float | None:
    """Score one fitted model on the test rows, deciding binary cases as training would."""
    pred, proba = predict_scores(model, x_test, task)
    if task == "binary":
        assert proba is not None
        _, val_proba = predict_scores(model, x_val, task)
        assert val_proba is not None
        threshold = tune_threshold(spec.imbalance.threshold, y_val, val_proba[:, 1]).threshold
        pred = (proba[:, 1] >= threshold).astype(np.int64)
    return compute_metric(metric, task, y_test, pred, proba, n_classes)
