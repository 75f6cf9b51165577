"""Bundles: round trips for every estimator kind, and the malicious-file corpus refused."""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import skops.io as sio

from shipyard.core.errors import ArtifactNotFound, IntegrityFailure, InvalidArgument, InvalidData
from shipyard.registry.bundle import (
    MODEL,
    Bundle,
    read_bundle,
    requirements_for,
    write_bundle,
)
from shipyard.registry.input_contract import MISSING_COLUMN, NOT_NUMBER, UNSEEN, ContractViolation
from tests.corpus import BAD_NAMES
from tests.unit.registry.models import (
    Fitted,
    call_node,
    fitted,
    members,
    rebuild,
    skops_with_node,
    zip_of,
)
from tests.unit.registry.payloads import Canary, pickle_payloads

REFERENCE = {"features": {"a": {"bins": [0.0, 1.0]}}, "sample_rows": 3}
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 32


def _write(tmp_path: Path, model: Fitted, **kwargs: Any) -> tuple[Path, str]:
    path = tmp_path / "bundle.zip"
    sha = write_bundle(
        path,
        model.model,
        model.manifest,
        reference=REFERENCE,
        reference_sample=model.frame.head(5),
        extra_files={"plots/roc.png": PNG, "card.md": b"# Card"},
        **kwargs,
    )
    return path, sha


def _native(model: Fitted) -> np.ndarray:
    x = model.x()
    if model.manifest.task == "regression":
        return np.asarray(model.model.predict(x))
    return np.asarray(model.model.predict_proba(x))


KINDS = [
    ("logistic", "binary", {}),
    ("random_forest", "binary", {}),
    ("hist_gradient_boosting", "binary", {}),
    ("lightgbm", "binary", {}),
    ("xgboost", "binary", {}),
    ("linear", "regression", {}),
    ("random_forest", "regression", {}),
    ("hist_gradient_boosting", "regression", {}),
    ("lightgbm", "regression", {}),
    ("xgboost", "regression", {}),
    ("hist_gradient_boosting", "multiclass", {"encoding": "ordinal"}),
    ("logistic", "binary", {"resample": "smote", "encoding": "target"}),
    ("random_forest", "binary", {"resample": "under"}),
]


@pytest.mark.parametrize(("estimator", "task", "options"), KINDS)
def test_round_trip_predicts_identically(
    tmp_path: Path, estimator: str, task: str, options: dict[str, Any]
):
    model = fitted(estimator, task, **options)
    path, sha = _write(tmp_path, model)
    assert sha == hashlib.sha256(path.read_bytes()).hexdigest()
    bundle = read_bundle(path, expected_sha256=sha)
    predictions = bundle.predict(model.frame)
    if task == "regression":
        np.testing.assert_array_equal(predictions.labels, _native(model))
        assert predictions.proba is None
        assert predictions.codes is None
    else:
        np.testing.assert_array_equal(predictions.proba, _native(model))
        expected_codes = (
            (_native(model)[:, 1] >= 0.5) if task == "binary" else _native(model).argmax(1)
        )
        np.testing.assert_array_equal(predictions.codes, expected_codes.astype(int))
        classes = np.asarray(model.manifest.classes)
        np.testing.assert_array_equal(predictions.labels, classes[expected_codes.astype(int)])


def test_a_bundle_carries_contract_reference_plots_lineage_and_requirements(tmp_path: Path):
    model = fitted("lightgbm", "binary", resample="smote", threshold=0.3)
    path, sha = _write(tmp_path, model)
    bundle = read_bundle(path)
    assert bundle.sha256 == sha
    assert bundle.manifest.features == model.manifest.features
    assert bundle.manifest.lineage == model.manifest.lineage
    assert bundle.reference() == REFERENCE
    sample = bundle.reference_sample()
    assert sample is not None
    assert sample.equals(model.frame.head(5))
    assert bundle.plots() == {"roc.png": PNG}
    assert bundle.file("card.md") == b"# Card"
    with pytest.raises(ArtifactNotFound, match=r"card\.md"):
        bundle.file("nope.txt")
    assert bundle.names() == sorted(
        [
            "card.md",
            "manifest.json",
            "model.skops",
            "plots/roc.png",
            "reference.json",
            "reference_sample.parquet",
        ]
    )
    files = bundle.manifest.files
    assert set(files) == set(bundle.names()) - {"manifest.json"}
    assert files["card.md"] == hashlib.sha256(b"# Card").hexdigest()
    requirements = bundle.manifest.requirements
    for package in ("python", "scikit-learn", "numpy", "scipy", "skops", "lightgbm"):
        assert package in requirements
    assert requirements["imbalanced-learn"] == __import__("imblearn").__version__
    assert "xgboost" not in requirements
    assert requirements == requirements_for(model.model)
    # the threshold decides, not 0.5
    proba = _native(model)[:, 1]
    np.testing.assert_array_equal(bundle.predict(model.frame).codes, (proba >= 0.3).astype(int))


def test_writing_is_atomic_ordered_and_leaves_no_temp_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    model = fitted("logistic", "binary")
    path, _ = _write(tmp_path, model)
    write_bundle(
        tmp_path / "again.zip", model.model, model.manifest, extra_files={"b": b"", "a": b""}
    )
    with zipfile.ZipFile(tmp_path / "again.zip") as archive:
        infos = archive.infolist()
    assert [i.filename for i in infos] == ["manifest.json", "a", "b", MODEL]
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again.zip", "bundle.zip"]
    before = path.read_bytes()
    monkeypatch.setenv("SHIPYARD_FAULT", "bundle.after_tmp_write:raise:ENOSPC")
    other = fitted("random_forest", "binary")
    with pytest.raises(OSError, match="injected fault"):
        write_bundle(path, other.model, other.manifest)
    assert path.read_bytes() == before  # the old bundle is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again.zip", "bundle.zip"]


def test_writing_refuses_what_it_could_not_trust_later(tmp_path: Path):
    model = fitted("logistic", "binary")
    target = tmp_path / "b.zip"
    no_contract = model.manifest.model_construct(**{**dict(model.manifest), "features": []})
    with pytest.raises(InvalidArgument, match="contract"):
        write_bundle(target, model.model, no_contract)
    wrong_order = model.manifest.model_copy(
        update={"features": list(reversed(model.manifest.features))}
    )
    with pytest.raises(InvalidArgument, match="fitted on"):
        write_bundle(target, model.model, wrong_order)
    with pytest.raises(InvalidArgument, match="replace"):
        write_bundle(target, model.model, model.manifest, extra_files={MODEL: b"x"})
    with pytest.raises(InvalidArgument, match="pickle"):
        write_bundle(
            target,
            model.model,
            model.manifest,
            extra_files={"x.json": pickle_payloads(tmp_path / "c")["protocol 0"]},
        )
    with pytest.raises(InvalidArgument, match="plain JSON"):
        write_bundle(target, model.model, model.manifest, reference={"x": float("nan")})
    unsafe = copy.deepcopy(model.model)
    unsafe.canary_ = Canary(str(tmp_path / "canary"))
    with pytest.raises(InvalidArgument, match="Canary"):
        write_bundle(target, unsafe, model.manifest)
    for name in BAD_NAMES[:25]:
        with pytest.raises(InvalidArgument):
            write_bundle(target, model.model, model.manifest, extra_files={name: b"x"})
    assert not target.exists()
    assert not (tmp_path / "canary").exists()


# -- the malicious corpus ------------------------------------------------------------------


@pytest.fixture(scope="module")
def good_bundle(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path, _ = _write(tmp_path_factory.mktemp("good"), fitted("logistic", "binary"))
    return path.read_bytes()


def test_a_bundle_with_a_crafted_type_is_refused_and_nothing_runs(
    tmp_path: Path, good_bundle: bytes
):
    canary = tmp_path / "canary"
    model = copy.deepcopy(fitted("logistic", "binary").model)
    model.canary_ = Canary(str(canary))
    crafted = rebuild(good_bundle, {MODEL: sio.dumps(model)})
    with pytest.raises(IntegrityFailure, match=r"payloads\.Canary.*not loaded"):
        read_bundle(crafted)
    calling = skops_with_node(
        members(good_bundle)[MODEL],
        call_node("tests.unit.registry.payloads", "touch", str(canary)),
    )
    with pytest.raises(IntegrityFailure, match=r"payloads\.touch"):
        read_bundle(rebuild(good_bundle, {MODEL: calling}))
    assert not canary.exists()


def test_pickles_in_any_place_are_refused_and_nothing_runs(tmp_path: Path, good_bundle: bytes):
    canary = tmp_path / "canary"
    for name, payload in pickle_payloads(canary).items():
        with pytest.raises(IntegrityFailure, match="pickle"):
            read_bundle(rebuild(good_bundle, {MODEL: payload}))  # checksums recomputed
        with pytest.raises(IntegrityFailure, match="pickle"):
            read_bundle(rebuild(good_bundle, {"plots/roc.png": payload}))
        with pytest.raises((IntegrityFailure, InvalidData), match=r"pickle|not a valid zip"):
            read_bundle(payload)  # the whole file
        with pytest.raises(InvalidData, match="manifest"):
            read_bundle(zip_of({"model.pkl": payload}))  # a pickle inside a zip
        with pytest.raises(InvalidData, match="manifest"):
            read_bundle(rebuild(good_bundle, {"manifest.json": payload}, fix_checksums=False))
        assert not canary.exists(), name


def test_a_manifest_declaring_trusted_types_is_refused(tmp_path: Path, good_bundle: bytes):
    canary = tmp_path / "canary"
    model = copy.deepcopy(fitted("logistic", "binary").model)
    model.canary_ = Canary(str(canary))
    smuggled = rebuild(
        good_bundle,
        {MODEL: sio.dumps(model)},
        manifest={"trusted_types": ["tests.unit.registry.payloads.Canary"]},
    )
    with pytest.raises(InvalidData, match="trusted_types"):
        read_bundle(smuggled)
    assert not canary.exists()


def test_broken_files_give_clear_errors(tmp_path: Path, good_bundle: bytes):
    before = set(tmp_path.parent.iterdir())
    cases: dict[str, tuple[bytes, type[Exception], str]] = {
        "zero bytes": (b"", InvalidData, "empty"),
        "truncated": (good_bundle[: len(good_bundle) // 2], InvalidData, "not a valid zip"),
        "random": (np.random.default_rng(3).bytes(4096), InvalidData, "not a valid zip"),
        "traversal": (rebuild(good_bundle, {"../x": b"x"}), InvalidData, "unsafe member name"),
        "absolute": (rebuild(good_bundle, {"/etc/x": b"x"}), InvalidData, "unsafe member name"),
        "backslash": (rebuild(good_bundle, {"..\\x": b"x"}), InvalidData, "unsafe member name"),
        "no manifest": (zip_of({MODEL: b"x"}), InvalidData, "no manifest"),
        "bad manifest": (
            rebuild(good_bundle, manifest={"task": "clustering", "features": []}),
            InvalidData,
            "task",
        ),
    }
    for name, (data, error, message) in cases.items():
        with pytest.raises(error, match=message):
            read_bundle(data)
        file = tmp_path / name.replace(" ", "_")
        file.write_bytes(data)
        with pytest.raises(error, match=message):
            read_bundle(file)
    duplicated = good_bundle_with_duplicate(good_bundle)
    with pytest.raises(InvalidData, match="twice"):
        read_bundle(duplicated)
    assert not (tmp_path.parent / "x").exists()
    assert set(tmp_path.parent.iterdir()) == before


def good_bundle_with_duplicate(bundle: bytes) -> bytes:
    content = members(bundle)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in content.items():
            archive.writestr(name, data)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Duplicate name", UserWarning)
            archive.writestr(MODEL, b"second model")  # the attack: a second member, same name
    return buffer.getvalue()


def test_limits_stop_zip_bombs_and_absurd_sizes(tmp_path: Path, good_bundle: bytes):
    bomb = rebuild(good_bundle, {"big.bin": b"\0" * (4 << 20)})
    assert len(bomb) < len(good_bundle) + (64 << 10)  # highly compressible
    with pytest.raises(InvalidData, match="zip bomb"):
        read_bundle(bomb, max_uncompressed=2 << 20)
    with pytest.raises(InvalidData, match="over the limit"):
        read_bundle(good_bundle, max_bytes=1000)
    path = tmp_path / "b.zip"
    path.write_bytes(good_bundle)
    with pytest.raises(InvalidData, match="over the limit"):
        read_bundle(path, max_bytes=1000)
    with pytest.raises(InvalidData, match="members"):
        read_bundle(good_bundle, max_members=2)
    with pytest.raises(InvalidData, match="not a regular file"):
        read_bundle(tmp_path)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(InvalidData, match="not a regular file"):
        read_bundle(fifo)
    with pytest.raises(ArtifactNotFound):
        read_bundle(tmp_path / "missing.zip")
    link = tmp_path / "link.zip"
    link.symlink_to(path)
    with pytest.raises(InvalidData, match="cannot be opened"):
        read_bundle(link)


def test_tampering_is_detected(tmp_path: Path, good_bundle: bytes):
    model_bytes = bytearray(members(good_bundle)[MODEL])
    model_bytes[len(model_bytes) // 2] ^= 0x01
    tampered = rebuild(good_bundle, {MODEL: bytes(model_bytes)}, fix_checksums=False)
    with pytest.raises(IntegrityFailure, match=r"'model\.skops' was modified"):
        read_bundle(tampered)
    extra = rebuild(good_bundle, {"extra.txt": b"x"}, fix_checksums=False)
    with pytest.raises(IntegrityFailure, match="not listed"):
        read_bundle(extra)
    sha = hashlib.sha256(good_bundle).hexdigest()
    assert read_bundle(good_bundle, expected_sha256=sha).sha256 == sha
    flipped = bytearray(good_bundle)
    flipped[100] ^= 0x01
    path = tmp_path / "b.zip"
    path.write_bytes(bytes(flipped))
    with pytest.raises(IntegrityFailure, match="modified after it was registered"):
        read_bundle(path, expected_sha256=sha)
    with pytest.raises((InvalidData, IntegrityFailure)):
        read_bundle(path)  # even without the registered digest, something fails


# -- the input contract at prediction time -----------------------------------------------


def test_check_input_and_predict_name_the_column(good_bundle: bytes):
    bundle = read_bundle(good_bundle)
    rows = fitted("logistic", "binary").frame
    assert bundle.check_input(rows) == []
    problems = bundle.check_input(
        rows.drop("a").with_columns(pl.lit("purple").alias("color"), pl.lit("x").alias("b"))
    )
    assert len(problems) == 3
    # One wording on every path (shipyard.registry.input_contract): field, problem, rows.
    assert problems[0] == f"a: {MISSING_COLUMN}"
    assert problems[1].startswith(f"b: {NOT_NUMBER} (rows 0, 1, 2")
    assert problems[2].startswith(f"color: {UNSEEN} (rows 0, 1")
    with pytest.raises(ContractViolation, match=f"a: {MISSING_COLUMN}"):
        bundle.predict(rows.drop("a"))
    with pytest.raises(InvalidData, match=f"b: {NOT_NUMBER}"):
        bundle.predict(rows.with_columns(pl.lit("x").alias("b")))
    # unseen categories are refused under the manifest's strict default, as over HTTP ...
    with pytest.raises(ContractViolation, match=f"color: {UNSEEN}"):
        bundle.predict(rows.with_columns(pl.lit("purple").alias("color")))
    # ... and scored as unknown (the encoder ignores them) when the caller asks for that
    unseen = bundle.predict(
        rows.with_columns(pl.lit("purple").alias("color")), unseen_categories="unknown"
    )
    assert unseen.labels.shape == (rows.height,)


def test_predict_takes_pandas_extra_columns_and_any_column_order(good_bundle: bytes):
    bundle = read_bundle(good_bundle)
    rows = fitted("logistic", "binary").frame
    expected = bundle.predict(rows).proba
    shuffled = rows.select(list(reversed(rows.columns))).with_columns(pl.lit(1).alias("extra"))
    np.testing.assert_array_equal(bundle.predict(shuffled).proba, expected)
    np.testing.assert_array_equal(bundle.predict(rows.to_pandas()).proba, expected)
    assert bundle.predict(rows.head(0)).labels.shape == (0,)


def test_the_stored_manifest_is_the_parsed_one(good_bundle: bytes):
    bundle = read_bundle(good_bundle)
    assert isinstance(bundle, Bundle)
    assert "logistic-binary" in repr(bundle)
    document = json.loads(bundle.file("manifest.json"))
    assert document["files"] == bundle.manifest.files
