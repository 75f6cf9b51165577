"""The vectorized drift kernels give scipy's numbers (to 1e-9) on the same samples."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial.distance import jensenshannon

from shipyard.monitor import drift_stats
from shipyard.train.reference import build_reference

TOL = {"rel": 1e-9, "abs": 1e-12}


def _column(
    reference: np.ndarray, current: np.ndarray, edges: np.ndarray | None = None
) -> drift_stats.NumericColumn:
    finite = reference[np.isfinite(reference)]
    ref = drift_stats.NumericReference(
        edges=np.quantile(finite, [0.2, 0.4, 0.6, 0.8]) if edges is None else edges,
        low=float(finite.min()),
        high=float(finite.max()),
        sample=drift_stats.SortedSample.of(reference),
    )
    return drift_stats.numeric_columns(drift_stats.sorted_block([current]), [ref])[0]


@pytest.mark.parametrize(
    ("n_ref", "n_cur", "rounding", "method"),
    [
        (400, 650, None, "exact"),  # unequal sizes, exact p-value
        (3000, 3000, 1, "exact"),  # many ties
        (2000, 12_000, None, "asymp"),  # past 10,000: Smirnov's asymptotic distribution
        (15_000, 11_000, 2, "asymp"),
    ],
)
def test_ks_and_wasserstein_match_scipy(
    n_ref: int, n_cur: int, rounding: int | None, method: str
) -> None:
    rng = np.random.default_rng(n_ref + n_cur)
    reference = rng.normal(0.0, 1.0, n_ref)
    current = rng.normal(0.05, 1.1, n_cur)
    if rounding is not None:
        reference, current = np.round(reference, rounding), np.round(current, rounding)
    column = _column(reference, current)
    expected = stats.ks_2samp(reference, current)
    assert column.ks_method == method
    assert column.ks == pytest.approx(expected.statistic, **TOL)
    assert column.ks_pvalue == pytest.approx(expected.pvalue, **TOL)
    assert column.wasserstein == pytest.approx(
        stats.wasserstein_distance(reference, current), **TOL
    )


def test_several_columns_in_one_block_each_match_scipy() -> None:
    rng = np.random.default_rng(3)
    references = [rng.normal(size=500), rng.exponential(size=800), rng.integers(0, 5, 300) * 1.0]
    currents = [rng.normal(0.3, 1, 20_000), rng.exponential(2, 20_000), rng.integers(0, 6, 20_000)]
    refs = [
        drift_stats.NumericReference(np.array([0.5]), None, None, drift_stats.SortedSample.of(r))
        for r in references
    ]
    block = drift_stats.sorted_block([c.astype(np.float64) for c in currents])
    columns = drift_stats.numeric_columns(block, refs)
    for column, reference, current in zip(columns, references, currents, strict=True):
        expected = stats.ks_2samp(reference, current)
        assert column.ks == pytest.approx(expected.statistic, **TOL)
        assert column.ks_pvalue == pytest.approx(expected.pvalue, **TOL)
        assert column.wasserstein == pytest.approx(
            stats.wasserstein_distance(reference, current), **TOL
        )


def test_missing_and_infinite_values_are_counted_apart_from_the_tests() -> None:
    rng = np.random.default_rng(4)
    reference = rng.normal(size=1000)
    current = rng.uniform(reference.min(), reference.max(), size=1000)
    current[:10] = np.nan
    current[10:13] = np.inf
    current[13] = -np.inf
    current[14:16] = 50.0  # finite but above the training maximum
    column = _column(reference, current)
    finite = current[np.isfinite(current)]
    assert (column.rows, column.missing, column.finite) == (1000, 10, 986)
    assert (column.below, column.above) == (1, 5)
    assert column.bin_counts.sum() == 990  # infinities land in the open end bins
    assert column.ks == pytest.approx(stats.ks_2samp(reference, finite).statistic, **TOL)
    assert column.wasserstein == pytest.approx(stats.wasserstein_distance(reference, finite), **TOL)


def test_bin_counts_agree_with_the_reference_profiles_own_binning() -> None:
    import polars as pl

    from shipyard.train.reference import bin_fractions

    rng = np.random.default_rng(5)
    train = pl.DataFrame({"x": rng.gamma(2.0, size=3000)})
    feature = build_reference(train, ["x"]).features["x"]
    current = np.r_[rng.gamma(2.5, size=2000), [np.nan, np.inf, -1.0]]
    column = _column(train["x"].to_numpy(), current, edges=np.asarray(feature.edges))
    present = column.rows - column.missing
    assert (column.bin_counts / present).tolist() == pytest.approx(
        bin_fractions(feature, current), **TOL
    )


def test_categorical_statistics_match_scipy() -> None:
    counts = np.array([[30.0, 50.0, 0.0, 20.0], [5.0, 0.0, 95.0, 0.0]])
    shares = np.array([[0.25, 0.5, 0.05, 0.2], [0.4, 0.0, 0.6, 0.0]])
    reference_n = np.array([400, 1000])
    result = drift_stats.categorical_columns(counts, shares, reference_n)
    for i in range(2):
        table = np.vstack([counts[i], shares[i] * reference_n[i]])
        table = table[:, table.sum(axis=0) > 0]  # scipy refuses empty categories
        chi2, p, dof, _ = stats.chi2_contingency(table, correction=False)
        assert result.chi2[i] == pytest.approx(chi2, **TOL)
        assert result.chi2_pvalue[i] == pytest.approx(p, **TOL)
        assert result.dof[i] == dof
        js = jensenshannon(counts[i] / counts[i].sum(), shares[i], base=2)
        assert result.jensen_shannon[i] == pytest.approx(js, **TOL)


def test_a_single_category_has_no_test_to_fail() -> None:
    result = drift_stats.categorical_columns(
        np.array([[10.0, 0.0]]), np.array([[1.0, 0.0]]), np.array([50])
    )
    assert (result.chi2[0], result.chi2_pvalue[0], result.dof[0]) == (0.0, 1.0, 0)
    assert result.psi[0] == pytest.approx(0.0)
    assert result.jensen_shannon[0] == pytest.approx(0.0)


def test_psi_of_known_shares() -> None:
    p, q = np.array([0.5, 0.5]), np.array([0.25, 0.75])
    expected = (0.5 - 0.25) * np.log(0.5 / 0.25) + (0.5 - 0.75) * np.log(0.5 / 0.75)
    assert drift_stats.psi(p, q) == pytest.approx(expected, **TOL)
    empty_bin = drift_stats.psi(np.array([1.0, 0.0]), np.array([0.5, 0.5]))
    assert np.isfinite(empty_bin)  # floored at PSI_EPSILON, not infinite


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=60),
    st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=60),
)
def test_invariants_hold_for_any_samples(reference: list[float], current: list[float]) -> None:
    ref, cur = np.array(reference), np.array(current)
    column = _column(ref, cur, edges=np.array([0.0]))
    assert 0.0 <= column.ks <= 1.0
    assert column.wasserstein >= 0.0
    with warnings.catch_warnings():  # scipy may warn about its exact p-value; not our concern
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = stats.ks_2samp(ref, cur).statistic
    assert column.ks == pytest.approx(expected, **TOL)
    same = _column(ref, ref.copy(), edges=np.array([0.0]))
    assert same.ks == 0.0
    assert same.wasserstein == 0.0
    shares = same.bin_counts / same.bin_counts.sum()
    assert drift_stats.psi(shares, shares) == 0.0
