"""Anomalies: how unusual one request's inputs are, and whether the service just misbehaved.

Input anomalies are scored per request in the server, so they must be cheap and need nothing the
bundle does not already carry. A robust z-score does: for each numeric feature,
``|x - median| / scale`` with the median and a robust scale (normal-consistent MAD) of the
training sample (``bundle.reference_sample()``), or, without a sample, the median and
inter-quartile range read off the reference profile's quantile bins. A categorical value is
scored by how rare it was in training: a category with training share ``p`` gets the z-score
whose two-sided normal tail is ``p`` (``norm.isf(p / 2)``), so a category seen in 0.1% of the
training rows scores like a value 3.3 robust standard deviations out; unseen categories use the
share of ``__other__``, floored at one row in the training count. Missing values score nothing
(the drift monitor's missing rate covers them). A row's score is its largest feature score, a
request's the largest of its rows (one request is one prediction-log row).

Service anomalies compare the latest window of the prediction log with the windows before it:
the trailing windows give a median and a robust scale (MAD, floored so that a perfectly steady
history does not make every wiggle an anomaly), and the latest value's robust z-score against
them is the observation. Latency p99, error rate and request rate are ``service``
observations; the share of requests whose input anomaly score exceeds a threshold is an
``anomaly`` observation.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from shipyard.core.errors import InvalidArgument
from shipyard.monitor.signals import Observation

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from shipyard.registry.bundle import Bundle

MAD_TO_SIGMA = 1.4826  # MAD x this estimates the standard deviation of normal data
IQR_TO_SIGMA = 1.349  # the IQR of a normal distribution in standard deviations
DEFAULT_INPUT_THRESHOLD = 4.0
"""Input anomaly score above which a request counts as anomalous (robust z > 4)."""
DEFAULT_SERVICE_THRESHOLD = 3.5
"""Robust z-score of the latest window against the trailing ones that flags a service anomaly."""
_MAX_SCORE = 1e6  # caps the score of values far out (keeps the log's numbers readable)


@dataclass(frozen=True)
class _Numeric:
    name: str
    center: float
    scale: float


@dataclass(frozen=True)
class _Categorical:
    name: str
    scores: dict[str, float]
    unseen: float


class InputAnomalyScorer:
    """Robust z-scores of request inputs against a model's training reference.

    Build one per model version (``from_bundle``); ``score_columns`` is vectorized and safe to
    call from request handlers.
    """

    def __init__(self, numeric: Sequence[_Numeric], categorical: Sequence[_Categorical]) -> None:
        """Hold the per-feature centers and scales; use ``from_reference``/``from_bundle``."""
        self._numeric = list(numeric)
        self._categorical = list(categorical)

    @property
    def features(self) -> list[str]:
        """The features that are scored (constant or empty ones are left out)."""
        return [f.name for f in self._numeric] + [f.name for f in self._categorical]

    @classmethod
    def from_reference(
        cls, reference: Mapping[str, Any], sample: pl.DataFrame | None = None
    ) -> InputAnomalyScorer:
        """Build the scorer from a reference profile dict and, if given, the training sample.

        Numeric features use the sample's median and MAD when the sample has the column and
        its MAD is positive, else the profile's interpolated median and IQR, else its std.
        A feature with no spread at all is not scored (any scale would be arbitrary).

        Raises:
            InvalidArgument: ``reference`` is not a reference profile.
        """
        features = reference.get("features")
        if not isinstance(features, dict):
            raise InvalidArgument("not a reference profile: it has no 'features' object")
        numeric: list[_Numeric] = []
        categorical: list[_Categorical] = []
        for name, ref in features.items():
            if not isinstance(ref, dict):
                raise InvalidArgument(f"reference profile: feature {name!r} is not an object")
            if ref.get("kind") == "numeric":
                found = _numeric_center_scale(name, ref, sample)
                if found is not None:
                    numeric.append(_Numeric(name, *found))
            elif ref.get("kind") == "categorical":
                categorical.append(_categorical_scores(name, ref))
        return cls(numeric, categorical)

    @classmethod
    def from_bundle(cls, bundle: Bundle) -> InputAnomalyScorer | None:
        """The scorer of a bundle, or None when the bundle carries no reference profile."""
        reference = bundle.reference()
        if reference is None:
            return None
        return cls.from_reference(reference, bundle.reference_sample())

    def score_frame(self, frame: pl.DataFrame) -> pl.Series:
        """Score every row of ``frame``: its largest feature score (null if none applies)."""
        exprs: list[pl.Expr] = []
        for num in self._numeric:
            if num.name in frame.columns:
                value = pl.col(num.name).cast(pl.Float64, strict=False)
                z = ((value - num.center) / num.scale).abs()
                exprs.append(pl.when(value.is_nan()).then(None).otherwise(z.clip(0, _MAX_SCORE)))
        for cat in self._categorical:
            if cat.name in frame.columns:
                text = pl.col(cat.name).cast(pl.String, strict=False)
                score = text.replace_strict(cat.scores, default=cat.unseen, return_dtype=pl.Float64)
                exprs.append(pl.when(text.is_null()).then(None).otherwise(score))
        if not exprs:
            return pl.Series("anomaly_score", [None] * frame.height, dtype=pl.Float64)
        return frame.select(pl.max_horizontal(exprs).alias("anomaly_score")).to_series()

    def score_columns(self, columns: Mapping[str, Sequence[Any]]) -> float | None:
        """Score one request given as ``{column: values}``: the largest row score, or None.

        This runs for every served request, so it stays in numpy and plain dicts: building a
        Polars frame per request cost ~2 ms, half of a one-row prediction. Inputs numpy cannot
        take as numbers (text in a numeric column, ragged lists) go through ``score_frame``,
        which gives the same answer.
        """
        lengths = {len(columns[name]) for name in self.features if name in columns}
        if len(lengths) > 1:
            return None  # ragged columns: the contract would have refused them
        present = [n for n in self._numeric if n.name in columns]
        scores: list[float] = []
        if present:
            try:
                values = np.array([columns[n.name] for n in present], dtype=np.float64)
            except (TypeError, ValueError):  # text or ragged lists: the general path decides
                return self._score_with_polars(columns)
            if values.ndim != 2:
                return self._score_with_polars(columns)
            centers = np.array([n.center for n in present])[:, None]
            scales = np.array([n.scale for n in present])[:, None]
            with np.errstate(invalid="ignore", over="ignore"):
                z = np.clip(np.abs((values - centers) / scales), 0, _MAX_SCORE)
            if values.size and not np.isnan(z).all():
                scores.append(float(np.nanmax(z)))
        for cat in self._categorical:
            for value in columns.get(cat.name, ()):
                if value is None:
                    continue
                scores.append(cat.scores.get(_as_category(value), cat.unseen))
        return max(scores) if scores else None

    def score_numbers(
        self, blocks: Sequence[np.ndarray[Any, Any]], order: Sequence[str]
    ) -> list[float] | None:
        """``score_requests`` of requests already decoded to finite float64 matrices.

        ``blocks`` are the requests' rows, one matrix each, columns named by ``order`` (the
        serving contract's numeric features, as ``ModelInput.numbers``); the answer is the
        one ``score_requests`` gives their plain JSON columns, by the same operations, without
        turning each request back into columns first (issue 17). None when that shortcut
        does not apply (categorical features, a feature missing from ``order``, no rows):
        the caller then scores the columns.
        """
        names = [n.name for n in self._numeric]
        if self._categorical or not names or not blocks:
            return None
        positions = {name: i for i, name in enumerate(order)}
        if any(name not in positions for name in names):
            return None
        sizes = [block.shape[0] for block in blocks]
        if min(sizes) == 0:
            return None
        rows = np.concatenate(blocks)[:, [positions[name] for name in names]]
        centers = np.array([n.center for n in self._numeric])
        scales = np.array([n.scale for n in self._numeric])
        with np.errstate(invalid="ignore", over="ignore"):
            z = np.clip(np.abs((rows - centers) / scales), 0, _MAX_SCORE).max(axis=1)
        starts = np.cumsum([0, *sizes[:-1]])
        found: list[float] = np.maximum.reduceat(z, starts).tolist()
        return found

    def score_requests(self, requests: Sequence[Mapping[str, Sequence[Any]]]) -> list[float | None]:
        """Score many requests at once: ``score_columns`` of each, in one numpy pass.

        The prediction log's writer scores a batch of answers together (issue 17): the rows of
        every request whose numeric features are all plain numbers are stacked into one
        matrix and each request takes the largest score of its own rows. Requests with
        categorical features, missing values or anything else take ``score_columns``.
        """
        scores: list[float | None] = [None] * len(requests)
        names = [n.name for n in self._numeric]
        if self._categorical or not names:
            return [self.score_columns(r) for r in requests]
        owners: list[int] = []
        blocks: list[np.ndarray[Any, Any]] = []
        for i, columns in enumerate(requests):
            try:
                block = [columns[name] for name in names]
                plain = all(type(v) is float or type(v) is int for c in block for v in c)
                matrix = np.array(block, dtype=np.float64).T if plain else None
            except (KeyError, TypeError, ValueError, OverflowError):
                matrix = None
            if matrix is not None and matrix.ndim == 2 and matrix.shape[0]:
                blocks.append(matrix)
                owners.append(i)
            else:
                scores[i] = self.score_columns(columns)
        if not blocks:
            return scores
        sizes = [block.shape[0] for block in blocks]
        rows = np.concatenate(blocks)
        centers = np.array([n.center for n in self._numeric])
        scales = np.array([n.scale for n in self._numeric])
        with np.errstate(invalid="ignore", over="ignore"):
            z = np.clip(np.abs((rows - centers) / scales), 0, _MAX_SCORE).max(axis=1)
        starts = np.cumsum([0, *sizes[:-1]])
        for i, worst in zip(owners, np.maximum.reduceat(z, starts).tolist(), strict=True):
            scores[i] = float(worst)
        return scores

    def _score_with_polars(self, columns: Mapping[str, Sequence[Any]]) -> float | None:
        data = {
            name: pl.Series(name, columns[name], strict=False)
            for name in self.features
            if name in columns
        }
        if not data:
            return None
        try:
            frame = pl.DataFrame(data)
        except pl.exceptions.PolarsError:  # ragged columns: the contract would have refused them
            return None
        worst = self.score_frame(frame).max()
        return None if worst is None else float(worst)  # type: ignore[arg-type]


def _as_category(value: Any) -> str:
    """A request value as the text Polars' cast to String gives (how categories are stored)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _numeric_center_scale(
    name: str, ref: Mapping[str, Any], sample: pl.DataFrame | None
) -> tuple[float, float] | None:
    if sample is not None and name in sample.columns:
        values = sample.get_column(name).cast(pl.Float64, strict=False).drop_nulls().to_numpy()
        values = values[np.isfinite(values)]
        if values.size:
            mad = _normal_mad(values)
            if mad > 0:
                return float(np.median(values)), mad
    edges, fractions = ref.get("edges") or [], ref.get("fractions") or []
    if edges and len(fractions) == len(edges) + 1 and sum(fractions) > 0:
        # Bin i ends at edges[i], so the share below edges[i] is the sum of the first i+1 bins.
        below = np.cumsum(fractions[:-1])
        q25, median, q75 = np.interp([0.25, 0.5, 0.75], below, edges)
        if q75 > q25:
            return float(median), float((q75 - q25) / IQR_TO_SIGMA)
        center: float | None = float(median)
    else:
        center = ref.get("mean")
    std = ref.get("std")
    if center is not None and std and std > 0:
        return float(center), float(std)
    return None


def _categorical_scores(name: str, ref: Mapping[str, Any]) -> _Categorical:
    categories = [str(c) for c in ref.get("categories") or []]
    fractions = list(ref.get("fractions") or [])
    floor = 1.0 / (int(ref.get("count") or 0) + 1)
    shares = fractions[: len(categories)] + [0.0] * (len(categories) - len(fractions))
    other = fractions[len(categories)] if len(fractions) > len(categories) else 0.0
    scores = {c: _rarity(max(p, floor)) for c, p in zip(categories, shares, strict=True)}
    return _Categorical(name, scores, _rarity(max(other, floor)))


def _rarity(share: float) -> float:
    """The z-score whose two-sided normal tail probability is ``share`` (0 for share >= 1)."""
    from scipy import stats  # categorical references only: serving need not import scipy

    return float(stats.norm.isf(min(share, 1.0) / 2))


#: ``scipy.special.ndtri(0.75)``: the MAD of a normal sample over its standard deviation.
_NORMAL_MAD = 0.6744897501960817


def _normal_mad(values: np.ndarray[Any, Any]) -> float:
    """``scipy.stats.median_abs_deviation(values, scale="normal")``, the same operations.

    Computed here so the model server's prediction log, which scores every request against
    the training reference, does not import scipy (seconds of CPU, taken from the serving
    loop's core the first time a batch is logged; issue 17).
    """
    return float(np.median(np.abs(values - np.median(values))) / _NORMAL_MAD)


_SCORERS: OrderedDict[str, InputAnomalyScorer | None] = OrderedDict()
_SCORERS_LOCK = threading.Lock()
_MAX_SCORERS = 64


def scorer_for(bundle: Bundle) -> InputAnomalyScorer | None:
    """The (cached) scorer of a bundle, keyed by its SHA-256; None without a reference."""
    with _SCORERS_LOCK:
        if bundle.sha256 in _SCORERS:
            _SCORERS.move_to_end(bundle.sha256)
            return _SCORERS[bundle.sha256]
    scorer = InputAnomalyScorer.from_bundle(bundle)
    with _SCORERS_LOCK:
        _SCORERS[bundle.sha256] = scorer
        while len(_SCORERS) > _MAX_SCORERS:
            _SCORERS.popitem(last=False)
    return scorer


# -- service anomalies -------------------------------------------------------------------------


# Smallest scale a series' spread is taken to have: below it, differences are noise
# (1 ms of latency, one point of error or anomaly rate, 0.1 requests per second).
_MIN_SCALE = {
    "latency_p99_ms": 1.0,
    "error_rate": 0.01,
    "request_rate_per_s": 0.1,
    "input_anomaly_rate": 0.01,
}


def robust_z(latest: float, history: Sequence[float], *, min_scale: float = 0.0) -> float:
    """The latest value's robust z-score against ``history`` (median, normal-consistent MAD).

    The scale is floored at ``min_scale`` and at 1% of the median's size, so a flat history
    (MAD 0) does not turn a tiny change into an infinite score.
    """
    values = np.asarray(history, dtype=np.float64)
    median = float(np.median(values))
    mad = _normal_mad(values)
    scale = max(mad, min_scale, 0.01 * abs(median), 1e-12)
    return (latest - median) / scale


def service_anomalies(
    log: pl.DataFrame | pl.LazyFrame,
    *,
    model: str,
    now_ms: int,
    window_ms: int,
    trailing: int = 12,
    min_trailing: int = 4,
    threshold: float = DEFAULT_SERVICE_THRESHOLD,
    input_threshold: float = DEFAULT_INPUT_THRESHOLD,
) -> list[Observation]:
    """Compare the latest window of one model's prediction log with the trailing windows.

    Windows are ``[now - (k+1)w, now - kw)`` for ``k = 0`` (latest) to ``trailing``. Shadow
    rows are left out (their latency and volume are not what callers see). For each series
    with values in at least ``min_trailing`` trailing windows, one observation: latency p99
    (ms, ``service``), error rate (share of ``status >= 400``, ``service``), request rate
    (per second, ``service``, flagged in both directions: a spike or a drop) and the share of
    requests with an input anomaly score above ``input_threshold`` (``anomaly``). ``value``
    is the latest window's figure; ``detail`` holds the robust z-score, the trailing median
    and the window sizes. ``threshold`` is on the z-score.

    Raises:
        InvalidArgument: A non-positive window or too few trailing windows.
    """
    if window_ms <= 0 or trailing < 1 or not 1 <= min_trailing <= trailing:
        raise InvalidArgument("window_ms must be > 0 and 1 <= min_trailing <= trailing")
    start = now_ms - (trailing + 1) * window_ms
    rows = (
        log.lazy()
        .filter(
            pl.col("model") == model,
            pl.col("ts_ms") >= start,
            pl.col("ts_ms") < now_ms,
            ~pl.col("variant").fill_null("").str.starts_with("shadow:"),
        )
        .with_columns(((now_ms - 1 - pl.col("ts_ms")) // window_ms).alias("_k"))
        .group_by("_k")
        .agg(
            pl.len().alias("requests"),
            pl.col("latency_ms").quantile(0.99, interpolation="linear").alias("latency_p99_ms"),
            (pl.col("status") >= 400).mean().alias("error_rate"),
            (pl.col("anomaly_score") > input_threshold).mean().alias("input_anomaly_rate"),
            pl.col("anomaly_score").is_not_null().sum().alias("scored"),
        )
        .collect()
    )
    by_k = {int(r["_k"]): r for r in rows.iter_rows(named=True)}
    series: dict[str, list[float | None]] = {
        "latency_p99_ms": [],
        "error_rate": [],
        "request_rate_per_s": [],
        "input_anomaly_rate": [],
    }
    for k in range(trailing + 1):
        row = by_k.get(k)
        series["request_rate_per_s"].append((row["requests"] if row else 0) / (window_ms / 1000))
        series["latency_p99_ms"].append(row["latency_p99_ms"] if row else None)
        series["error_rate"].append(row["error_rate"] if row else None)
        scored = row is not None and row["scored"] > 0
        series["input_anomaly_rate"].append(row["input_anomaly_rate"] if row and scored else None)
    latest_row = by_k.get(0)
    out = []
    for statistic, values in series.items():
        latest, history = values[0], [v for v in values[1:] if v is not None]
        if latest is None or len(history) < min_trailing:
            continue
        z = robust_z(latest, history, min_scale=_MIN_SCALE[statistic])
        breached = abs(z) > threshold if statistic == "request_rate_per_s" else z > threshold
        out.append(
            Observation(
                model=model,
                version=None,
                kind="anomaly" if statistic == "input_anomaly_rate" else "service",
                statistic=statistic,
                subject="*",
                value=float(latest),
                window_start_ms=now_ms - window_ms,
                window_end_ms=now_ms,
                threshold=threshold,
                breached=bool(breached),
                detail={
                    "z": z if math.isfinite(z) else None,
                    "trailing_median": float(np.median(history)),
                    "trailing_windows": len(history),
                    "requests": int(latest_row["requests"]) if latest_row else 0,
                    "window_ms": window_ms,
                    **(
                        {"input_threshold": input_threshold}
                        if statistic == "input_anomaly_rate"
                        else {}
                    ),
                },
            )
        )
    return out


def input_anomalies(
    log: pl.DataFrame | pl.LazyFrame, *, threshold: float = DEFAULT_INPUT_THRESHOLD, limit: int = 20
) -> pl.DataFrame:
    """The logged requests whose input anomaly score exceeds ``threshold``, worst first."""
    return (
        log.lazy()
        .filter(pl.col("anomaly_score") > threshold)
        .sort("anomaly_score", descending=True)
        .select("request_id", "model", "version", "variant", "ts_ms", "anomaly_score")
        .head(limit)
        .collect()
    )
