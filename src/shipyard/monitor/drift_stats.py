"""The numbers behind drift: vectorized kernels that agree with scipy on the same samples.

Drift runs over every feature of every window, so the cost that matters is the current window's
columns, which can be large (a million rows) while the reference is fixed. The kernels here
therefore touch each current column once, in one sort, and derive every statistic from it:

* the window's columns are copied into one 2-D block and sorted in one ``ndarray.sort`` call
  (NaN sorts last, so missing, infinite and finite values fall into known slices that
  ``searchsorted`` finds without another pass);
* PSI bin counts and the out-of-range counts are ``searchsorted`` of the few reference edges
  into the sorted column;
* the two-sample Kolmogorov-Smirnov statistic is read at the reference points only: with both
  samples sorted, ``F_ref - F_cur`` is largest at a reference point and ``F_cur - F_ref`` just
  before one, so two ``searchsorted`` of the (small) reference into the column replace scipy's
  two searches of the merged samples. The candidates are the same count differences scipy
  computes, so the statistic matches ``scipy.stats.ks_2samp`` to rounding (tests pin 1e-9);
* the Wasserstein distance integrates ``|F_ref - F_cur|`` over the merged samples, built by
  scattering the reference into the sorted column (its positions come from the same
  ``searchsorted``), not by sorting the union again.

p-values come from scipy's own distributions, chosen the way ``ks_2samp(method="auto")``
chooses: exact (scipy's ``ks_2samp`` on the samples, which are small then) when both samples
have at most 10,000 values, else ``scipy.stats.kstwo.sf(D, round(n*m/(n+m)))`` for all columns
at once. Chi-square uses ``scipy.stats.chi2.sf`` and Jensen-Shannon is scipy's
``jensenshannon`` over a padded 2-D array. PSI has no scipy function; it is the usual
``sum((p - q) * ln(p / q))`` with shares floored at ``PSI_EPSILON``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import stats
from scipy.spatial.distance import jensenshannon

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from numpy.typing import NDArray

PSI_EPSILON = 1e-4
"""Shares below this count as this much in PSI, so an empty bin does not make it infinite."""
EXACT_KS_MAX_N = 10_000
"""Like ``ks_2samp(method="auto")``: exact p-values while both samples are at most this big."""


@dataclass(frozen=True)
class SortedSample:
    """A numeric reference sample, sorted once and reused for every window.

    Only the values are kept (8 bytes each): the ranks KS reads are recomputed per comparison
    with two ``searchsorted`` of the sample into itself, so a large (or full) reference costs
    one array, not three.

    Attributes:
        values: The finite values, ascending.
    """

    values: NDArray[np.float64]

    @classmethod
    def of(cls, values: NDArray[np.float64] | Sequence[float]) -> SortedSample:
        """Sort the finite values of ``values`` (NaN and infinities are left out)."""
        array = np.asarray(values, dtype=np.float64)
        finite = array[np.isfinite(array)]
        finite.sort()
        return cls(finite)

    @property
    def size(self) -> int:
        """Number of finite values."""
        return int(self.values.size)


@dataclass(frozen=True)
class NumericReference:
    """What the numeric kernel compares one column with.

    Attributes:
        edges: Inner PSI bin edges (bin ``i`` holds ``edges[i-1] <= x < edges[i]``).
        low: Smallest training value (None: no range known).
        high: Largest training value.
        sample: The reference sample for KS and Wasserstein (None: not available).
    """

    edges: NDArray[np.float64]
    low: float | None
    high: float | None
    sample: SortedSample | None


@dataclass(frozen=True)
class NumericColumn:
    """The window-side counts and two-sample statistics of one numeric column.

    Attributes:
        rows: Values in the column (missing included).
        missing: Null or NaN values.
        finite: Finite values (what KS and Wasserstein use).
        below: Non-missing values below the training minimum (``-inf`` included).
        above: Non-missing values above the training maximum (``inf`` included).
        bin_counts: Non-missing values per PSI bin, ``len(edges) + 1`` of them.
        ks: Two-sample KS statistic against the reference sample (NaN without one).
        ks_pvalue: Its p-value (NaN without one).
        ks_method: ``exact`` or ``asymp``, as scipy would have chosen; empty without one.
        wasserstein: First Wasserstein distance to the reference sample (NaN without one).
    """

    rows: int
    missing: int
    finite: int
    below: int
    above: int
    bin_counts: NDArray[np.int64]
    ks: float
    ks_pvalue: float
    ks_method: str
    wasserstein: float


def sorted_block(
    columns: Iterable[NDArray[np.float64]], count: int | None = None
) -> NDArray[np.float64]:
    """Copy equal-length columns into one C-ordered 2-D block and sort each row in one call.

    Args:
        columns: The columns; with ``count``, an iterator may read each one as it is reached,
            so only the block and one column are in memory at once.
        count: How many columns ``columns`` yields (needed only for an iterator).
    """
    if count is None:
        columns = list(columns)
        count = len(columns)
    block: NDArray[np.float64] | None = None
    for i, column in enumerate(columns):
        if block is None:
            block = np.empty((count, len(column)), dtype=np.float64)
        block[i] = column
        del column
    if block is None:
        return np.empty((0, 0), dtype=np.float64)
    block.sort(axis=1)
    return block


def numeric_columns(
    block: NDArray[np.float64], references: Sequence[NumericReference]
) -> list[NumericColumn]:
    """Count and compare each sorted row of ``block`` with its reference.

    Args:
        block: Rows from ``sorted_block`` (each ascending, NaN last).
        references: One per row of ``block``.

    Returns:
        One ``NumericColumn`` per row, KS p-values filled in as ``ks_2samp`` would.
    """
    out: list[NumericColumn] = []
    exact: dict[int, float] = {}
    for i, (row, ref) in enumerate(zip(block, references, strict=True)):
        present = int(np.searchsorted(row, np.nan, side="left"))  # NaN sorts last
        values = row[:present]
        lo = int(np.searchsorted(values, -np.inf, side="right"))
        hi = int(np.searchsorted(values, np.inf, side="left"))
        finite = values[lo:hi]
        cuts = np.searchsorted(values, ref.edges, side="left")
        bin_counts = np.diff(np.concatenate(([0], cuts, [present]))).astype(np.int64)
        below = above = 0
        if ref.low is not None and ref.high is not None:
            below = int(np.searchsorted(values, ref.low, side="left"))
            above = present - int(np.searchsorted(values, ref.high, side="right"))
        ks = wasserstein = np.nan
        method = ""
        if ref.sample is not None and ref.sample.size and finite.size:
            ks, wasserstein = _ks_and_wasserstein(finite, ref.sample)
            method = "exact" if max(finite.size, ref.sample.size) <= EXACT_KS_MAX_N else "asymp"
            if method == "exact":
                exact[i] = _exact_ks_pvalue(ref.sample.values, finite)
        out.append(
            NumericColumn(
                rows=int(row.size),
                missing=int(row.size) - present,
                finite=int(finite.size),
                below=below,
                above=above,
                bin_counts=bin_counts,
                ks=ks,
                ks_pvalue=np.nan,
                ks_method=method,
                wasserstein=wasserstein,
            )
        )
    return _with_pvalues(out, references, exact)


def _with_pvalues(
    columns: list[NumericColumn], references: Sequence[NumericReference], exact: dict[int, float]
) -> list[NumericColumn]:
    """Fill in the p-values: the exact ones computed already, the asymptotic ones at once."""
    asymp = [i for i, c in enumerate(columns) if c.ks_method == "asymp"]
    pvalues = dict(exact)
    if asymp:
        d = np.array([columns[i].ks for i in asymp])
        n1 = np.array([references[i].sample.size for i in asymp], dtype=np.float64)  # type: ignore[union-attr]
        n2 = np.array([columns[i].finite for i in asymp], dtype=np.float64)
        en = np.round(n1 * n2 / (n1 + n2))  # ks_2samp's effective size for method="asymp"
        pvalues.update(zip(asymp, np.clip(stats.kstwo.sf(d, en), 0.0, 1.0).tolist(), strict=True))
    return [
        replace(c, ks_pvalue=float(pvalues[i])) if i in pvalues else c
        for i, c in enumerate(columns)
    ]


def _exact_ks_pvalue(reference: NDArray[np.float64], current: NDArray[np.float64]) -> float:
    """Scipy's own exact two-sample p-value; the samples are small here, the cost too."""
    with warnings.catch_warnings():
        # scipy warns when it falls back from exact to asymptotic; that is its choice to make
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.ks_2samp(reference, current, method="auto").pvalue)


def _ks_and_wasserstein(
    current: NDArray[np.float64], reference: SortedSample
) -> tuple[float, float]:
    """KS statistic and Wasserstein distance of two sorted finite samples.

    ``F_ref`` steps up only at reference points, so ``F_ref - F_cur`` peaks at one;
    ``F_cur - F_ref`` peaks at the last current point before a reference point, where
    ``F_cur = #cur < r`` and ``F_ref = #ref < r``. Both are count differences scipy also
    evaluates, divided the same way, so the maximum is scipy's up to rounding.
    """
    r = reference.values
    n1, n2 = r.size, current.size
    cur_le = np.searchsorted(current, r, side="right")
    d_plus = float(np.max(np.searchsorted(r, r, side="right") / n1 - cur_le / n2))
    del cur_le
    cur_lt = np.searchsorted(current, r, side="left")
    d_minus = max(float(np.max(cur_lt / n2 - np.searchsorted(r, r, side="left") / n1)), 0.0)
    ks = d_minus if d_minus > d_plus else d_plus
    return ks, _wasserstein(current, r, cur_lt)


def _wasserstein(
    current: NDArray[np.float64], r: NDArray[np.float64], cur_lt: NDArray[np.intp]
) -> float:
    """Integrate ``|F_ref - F_cur|`` over the merged samples, in place where numpy allows.

    The temporaries are a few arrays of the merged length; with a full reference of a million
    rows each is 16 MB, so they are built and overwritten one at a time.
    """
    n1, n2 = r.size, current.size
    # Merge: reference value i goes before the current values equal to it.
    positions = np.arange(n1) + cur_lt
    is_ref = np.zeros(n1 + n2, dtype=bool)
    is_ref[positions] = True
    merged = np.empty(n1 + n2, dtype=np.float64)
    merged[positions] = r
    del positions
    merged[~is_ref] = current
    deltas = np.diff(merged)
    del merged
    ref_share = np.cumsum(is_ref[:-1], dtype=np.float64)  # reference values seen so far
    del is_ref
    cur_share = np.arange(1, n1 + n2, dtype=np.float64)
    cur_share -= ref_share  # current values seen so far
    cur_share /= n2
    ref_share /= n1
    ref_share -= cur_share
    del cur_share
    np.abs(ref_share, out=ref_share)
    ref_share *= deltas
    # At ties deltas are 0, so partial counts inside a run of equal values never matter.
    return float(np.sum(ref_share))


def psi(current: NDArray[np.float64], reference: NDArray[np.float64]) -> NDArray[np.float64]:
    """Population stability index of each row of two share arrays (same shape, rows sum to 1).

    Zero-padded bins (present in neither) contribute nothing.
    """
    p = np.maximum(current, PSI_EPSILON)
    q = np.maximum(reference, PSI_EPSILON)
    return np.asarray(np.sum((p - q) * np.log(p / q), axis=-1), dtype=np.float64)


@dataclass(frozen=True)
class CategoricalColumns:
    """Two-sample statistics of several categorical columns at once.

    Attributes:
        chi2: Pearson chi-square of the 2 x bins table (window, reference), no continuity
            correction, over bins that are non-empty on either side.
        chi2_pvalue: ``scipy.stats.chi2.sf(chi2, dof)``; 1.0 when ``dof`` is 0.
        dof: Non-empty bins minus one.
        jensen_shannon: Jensen-Shannon distance, base 2 (0 = same shares, 1 = disjoint).
        psi: Population stability index over the bins.
    """

    chi2: NDArray[np.float64]
    chi2_pvalue: NDArray[np.float64]
    dof: NDArray[np.int64]
    jensen_shannon: NDArray[np.float64]
    psi: NDArray[np.float64]


def categorical_columns(
    counts: NDArray[np.float64], reference_shares: NDArray[np.float64], reference_n: NDArray[Any]
) -> CategoricalColumns:
    """Compare window counts with reference shares, one row per column, bins zero-padded.

    Args:
        counts: Window counts, shape (columns, bins); each row must have a positive total.
        reference_shares: Reference shares, same shape, rows summing to 1.
        reference_n: Reference rows behind the shares, one per column (turns shares back
            into counts for the chi-square table).
    """
    totals = counts.sum(axis=1, keepdims=True)
    shares = counts / totals
    reference_counts = reference_shares * np.asarray(reference_n, dtype=np.float64)[:, None]
    table = np.stack([counts, reference_counts], axis=1)  # (columns, 2, bins)
    column_sums = table.sum(axis=1, keepdims=True)  # (columns, 1, bins)
    row_sums = table.sum(axis=2, keepdims=True)  # (columns, 2, 1)
    grand = row_sums.sum(axis=1, keepdims=True)  # (columns, 1, 1)
    used = column_sums > 0
    expected = np.where(used, row_sums * column_sums / grand, 1.0)
    chi2 = np.sum(np.where(used, (table - expected) ** 2 / expected, 0.0), axis=(1, 2))
    dof = np.asarray(used.sum(axis=(1, 2)) - 1, dtype=np.int64)
    pvalue = np.where(dof > 0, stats.chi2.sf(chi2, np.maximum(dof, 1)), 1.0)
    chi2 = np.where(dof > 0, chi2, 0.0)
    js = np.asarray(jensenshannon(shares, reference_shares, axis=1, base=2), dtype=np.float64)
    return CategoricalColumns(
        chi2=chi2,
        chi2_pvalue=pvalue,
        dof=dof,
        jensen_shannon=js,
        psi=psi(shares, reference_shares),
    )
