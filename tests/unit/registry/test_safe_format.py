"""The trust boundary: skops with Shipyard's allow-list; pickles and crafted types refused."""

from __future__ import annotations

import copy
import io
import json
import pickle
import zipfile
from pathlib import Path

import joblib
import numpy as np
import polars as pl
import pytest
import skops.io as sio
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from shipyard.core.errors import IntegrityFailure, InvalidArgument
from shipyard.registry.safe_format import (
    TRUSTED_TYPES,
    dump_model,
    load_model,
    looks_like_pickle,
    untrusted_types,
)
from tests.unit.registry.models import call_node, fitted, skops_with_node, zip_of
from tests.unit.registry.payloads import Canary, pickle_payloads

PAYLOAD_MODULE = "tests.unit.registry.payloads"


def test_the_payloads_are_real(tmp_path: Path):
    """Unguarded loading of each payload does run code; the refusals below mean something."""
    canary = tmp_path / "canary"
    pickle.loads(pickle_payloads(canary)["protocol 2"])
    assert canary.exists()
    canary.unlink()
    joblib.load(io.BytesIO(pickle_payloads(canary)["joblib gzip"]))
    assert canary.exists()
    canary.unlink()
    base = sio.dumps(fitted("logistic", "binary").model)
    crafted = skops_with_node(base, call_node(PAYLOAD_MODULE, "touch", str(canary)))
    sio.loads(crafted, trusted=sio.get_untrusted_types(data=crafted))
    assert canary.exists()


def test_pickles_of_every_protocol_and_wrapper_are_recognised_and_refused(tmp_path: Path):
    canary = tmp_path / "canary"
    for name, payload in pickle_payloads(canary).items():
        assert looks_like_pickle(payload), name
        with pytest.raises(IntegrityFailure, match="pickle"):
            load_model(payload)
        inside_a_zip = zip_of({"model.pkl": payload})
        with pytest.raises(IntegrityFailure, match=r"no schema\.json"):
            load_model(inside_a_zip)
    assert not canary.exists()


def test_other_formats_are_not_mistaken_for_pickles():
    rng = np.random.default_rng(0)
    samples = [rng.bytes(n) for n in (1, 2, 3, 8, 64, 1000, 50_000) for _ in range(50)]
    parquet = io.BytesIO()
    pl.DataFrame({"a": [1, 2]}).write_parquet(parquet)
    npy = io.BytesIO()
    np.save(npy, np.arange(5))
    samples += [
        parquet.getvalue(),
        npy.getvalue(),
        b"\x89PNG\r\n\x1a\n" + rng.bytes(100),
        json.dumps({"a": [1, 2]}).encode(),
        b"# Model card\n(draft) text",
        b"a,b\n1,2\n",
        b"",
        dump_model(fitted("logistic", "binary").model),
    ]
    assert [s[:12] for s in samples if looks_like_pickle(s)] == []


def test_round_trip_gives_identical_predictions():
    model = fitted("hist_gradient_boosting", "multiclass")
    data = dump_model(model.model)
    assert untrusted_types(data) == []
    loaded = load_model(data)
    x = model.x()
    np.testing.assert_array_equal(loaded.predict_proba(x), model.model.predict_proba(x))


def test_a_crafted_type_whose_construction_runs_code_is_refused(tmp_path: Path):
    canary = tmp_path / "canary"
    model = copy.deepcopy(fitted("logistic", "binary").model)
    model.canary_ = Canary(str(canary))
    crafted = sio.dumps(model)
    with pytest.raises(IntegrityFailure, match=r"tests\.unit\.registry\.payloads\.Canary") as e:
        load_model(crafted)
    assert "not loaded" in str(e.value)
    assert not canary.exists()


@pytest.mark.parametrize(
    ("module", "name", "shown"),
    [
        (PAYLOAD_MODULE, "touch", "tests.unit.registry.payloads.touch"),
        ("builtins", "eval", "builtins.eval"),
        ("os", "system", "os.system"),
        # a trusted type name on an untrusted node kind is still refused
        ("builtins", "dict", "skops:ConstructorFromReduceNode"),
    ],
)
def test_hand_edited_schemas_that_call_functions_are_refused(
    tmp_path: Path, module: str, name: str, shown: str
):
    canary = tmp_path / "canary"
    argument = str(canary) if name == "touch" else f"open({str(canary)!r}, 'w')"
    if name == "system":
        argument = f"touch {canary}"
    base = sio.dumps(fitted("logistic", "binary").model)
    crafted = skops_with_node(base, call_node(module, name, argument))
    assert shown in untrusted_types(crafted)
    with pytest.raises(IntegrityFailure, match="allow-list") as e:
        load_model(crafted)
    assert shown in str(e.value)
    assert not canary.exists()


def test_a_type_skops_trusts_by_default_is_still_outside_our_list():
    # FunctionTransformer and numpy ufuncs are on skops' default list, not on Shipyard's.
    x = np.random.default_rng(0).random((30, 2))
    model = make_pipeline(FunctionTransformer(np.log1p), LogisticRegression())
    model.fit(x, (x[:, 0] > 0.5).astype(int))
    assert sio.get_untrusted_types(data=sio.dumps(model)) == []  # skops alone would load it
    with pytest.raises(InvalidArgument, match="FunctionTransformer"):
        dump_model(model)
    with pytest.raises(IntegrityFailure, match="FunctionTransformer"):
        load_model(sio.dumps(model))


def test_the_allow_list_holds_no_callables_that_run_code():
    for name in ("builtins.eval", "builtins.exec", "os.system", "functools.partial"):
        assert name not in TRUSTED_TYPES
    # Our one type: a model step holding plain dicts of floats and strings (train/cleaning.py).
    ours = {n for n in TRUSTED_TYPES if n.startswith("shipyard.")}
    assert ours == {"shipyard.train.cleaning.TrainingRowCleaner"}
    assert all(
        n.split(".")[0]
        in {"builtins", "collections", "numpy", "sklearn", "imblearn", "lightgbm", "xgboost"}
        for n in TRUSTED_TYPES - ours
    )


def test_malformed_skops_files_are_refused_without_loading():
    base = sio.dumps(fitted("logistic", "binary").model)
    with zipfile.ZipFile(io.BytesIO(base)) as archive:
        content = {info.filename: archive.read(info) for info in archive.infolist()}
    cases = {
        "empty": b"",
        "random": np.random.default_rng(1).bytes(500),
        "truncated": base[: len(base) // 2],
        "bad json": zip_of({**content, "schema.json": b"{not json"}),
        "deep json": zip_of({**content, "schema.json": b"[" * 100_000 + b"]" * 100_000}),
    }
    for data in cases.values():
        with pytest.raises(IntegrityFailure, match=r"nothing was loaded|not loaded"):
            load_model(data)
    npy = next(n for n in content if n.endswith(".npy"))
    huge = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        huge, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)}
    )
    with pytest.raises(IntegrityFailure, match="declares"):
        load_model(zip_of({**content, npy: huge.getvalue() + b"\0" * 16}))
    with pytest.raises(IntegrityFailure, match="expand"):
        load_model(base, max_uncompressed=100)
    with pytest.raises(IntegrityFailure, match="members"):
        load_model(base, max_members=1)


def test_out_of_bounds_tree_nodes_are_refused_before_predict():
    x = np.random.default_rng(2).random((60, 3))
    y = (x[:, 0] > 0.5).astype(int)
    forest = RandomForestClassifier(n_estimators=2, random_state=0).fit(x, y)
    state = forest.estimators_[0].tree_.__getstate__()
    nodes = state["nodes"].copy()
    nodes["left_child"][0] = 10**6
    state["nodes"] = nodes
    forest.estimators_[0].tree_.__setstate__(state)
    with pytest.raises(IntegrityFailure, match="decision tree"):
        load_model(dump_model(forest))

    boosted = HistGradientBoostingClassifier(max_iter=3).fit(x, y)
    boosted._predictors[0][0].nodes["feature_idx"][0] = 10**6
    with pytest.raises(IntegrityFailure, match="gradient-boosting tree"):
        load_model(dump_model(boosted))
