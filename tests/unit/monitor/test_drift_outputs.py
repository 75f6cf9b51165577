"""Drift of the model's own output, against what the bundle predicts for its reference sample."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from shipyard.core.errors import InvalidArgument
from shipyard.monitor.drift import DriftConfig, DriftReference, compute_drift
from shipyard.monitor.drift_report import PREDICTION, PROBABILITY
from shipyard.registry.bundle import Bundle, read_bundle, write_bundle
from shipyard.train.reference import build_reference
from tests.unit.registry.bundles import TARGET, bundle_bytes, held_out, train_frame


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> tuple[Bundle, Bundle]:
    """The same binary model without and with a reference profile."""
    directory = tmp_path_factory.mktemp("bundles")
    plain = read_bundle(bundle_bytes(directory, "binary"))
    profile = build_reference(train_frame("binary"), plain.manifest.feature_names)
    path = directory / "with-reference.shipyard"
    write_bundle(
        path,
        plain.model,
        plain.manifest,
        reference=profile.to_dict(),
        reference_sample=profile.sample,
    )
    return plain, read_bundle(path)


def served(bundle: Bundle, rows: pl.DataFrame) -> pl.DataFrame:
    """What the decoded prediction log holds for ``rows``: inputs, labels as text, P(class 1)."""
    predicted = bundle.predict(rows)
    assert predicted.proba is not None
    return rows.select(bundle.manifest.feature_names).with_columns(
        pl.Series(PREDICTION, [str(v) for v in predicted.labels.tolist()]),
        pl.Series(PROBABILITY, predicted.proba[:, -1]),
    )


def test_the_output_reference_comes_from_predicting_the_reference_sample(
    bundles: tuple[Bundle, Bundle],
) -> None:
    _, bundle = bundles
    reference = DriftReference.from_bundle(bundle)
    assert list(reference.features)[-2:] == [PREDICTION, PROBABILITY]
    labels = reference.features[PREDICTION]
    assert labels.kind == "categorical"
    assert sorted(labels.categories or []) == ["0", "1"]
    assert reference.features[PROBABILITY].kind == "numeric"
    assert reference.schema()[PREDICTION] == pl.String
    assert reference.numeric[PROBABILITY].sample is not None


def test_held_out_rows_do_not_move_the_output_but_one_class_only_does(
    bundles: tuple[Bundle, Bundle],
) -> None:
    _, bundle = bundles
    reference = DriftReference.from_bundle(bundle)
    rows = held_out("binary")
    usual = compute_drift(reference, served(bundle, rows))
    assert not usual.feature(PREDICTION).drifted
    assert not usual.feature(PROBABILITY).drifted

    malignant = rows.filter(pl.col(TARGET["binary"]) == 1)
    config = DriftConfig(min_rows=30)
    skewed = compute_drift(reference, served(bundle, malignant), config=config)
    chi2 = skewed.feature(PREDICTION).get("chi2")
    ks = skewed.feature(PROBABILITY).get("ks")
    assert chi2 is not None
    assert chi2.breached
    assert ks is not None
    assert ks.breached
    observed = {(o.subject, o.statistic) for o in skewed.observations() if o.breached}
    assert {(PREDICTION, "chi2"), (PROBABILITY, "ks")} <= observed


def test_a_bundle_without_a_reference_is_a_clear_error(bundles: tuple[Bundle, Bundle]) -> None:
    plain, _ = bundles
    with pytest.raises(InvalidArgument, match="no reference profile"):
        DriftReference.from_bundle(plain)


def test_inputs_alone_when_outputs_are_not_wanted(bundles: tuple[Bundle, Bundle]) -> None:
    _, bundle = bundles
    reference = DriftReference.from_bundle(bundle, outputs=False)
    assert PREDICTION not in reference.features
    assert list(reference.features) == bundle.manifest.feature_names


def test_the_reference_is_read_from_the_bundle_file(tmp_path: Path) -> None:
    raw = bundle_bytes(tmp_path, "regression")
    plain = read_bundle(raw)
    profile = build_reference(train_frame("regression"), plain.manifest.feature_names)
    path = tmp_path / "r.shipyard"
    write_bundle(
        path,
        plain.model,
        plain.manifest,
        reference=profile.to_dict(),
        reference_sample=profile.sample,
    )
    reference = DriftReference.from_bundle(read_bundle(path))
    assert reference.features[PREDICTION].kind == "numeric"  # regression values
    assert PROBABILITY not in reference.features
