"""A verified ONNX export is kept per bundle and reused: later starts need only onnxruntime.

The reuse is checked in a fresh interpreter, as a restarted server is: it reads the bundle with
its model deferred, takes the export from the cache, predicts what the native model predicts,
and has imported none of scikit-learn, skops, skl2onnx or the boosting libraries (issue #17).
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import TYPE_CHECKING

import numpy as np
import pytest

from shipyard.registry.bundle import read_bundle
from shipyard.registry.onnx_cache import CachedExport, OnnxCache
from shipyard.serve.fast_path import OnnxPredictor
from shipyard.track.workspace import Workspace
from tests.unit.registry.trained import cached_bundle_file, churn

if TYPE_CHECKING:
    from pathlib import Path

SHA = "a" * 64

PROBE = """
import json, sys
from pathlib import Path
import polars as pl
from shipyard.registry.bundle import read_bundle
from shipyard.registry.onnx_cache import OnnxCache
from shipyard.serve.fast_path import OnnxPredictor

bundle = read_bundle(Path(sys.argv[1]), defer_model=True)
predictor, why = OnnxPredictor.try_build(bundle, OnnxCache(Path(sys.argv[2])))
rows = pl.DataFrame(json.loads(sys.argv[3]))
inputs = bundle.contract.decode_frame(rows)
labels = predictor(inputs).labels.tolist()
loaded = sorted({name.split(".")[0] for name in sys.modules})
print(json.dumps({"why": why, "labels": labels, "modules": loaded,
                  "model_loaded": bundle.model_loaded}))
"""

TRAINING_STACK = {"sklearn", "skops", "skl2onnx", "onnxmltools", "lightgbm", "xgboost", "scipy"}


def test_a_cached_export_round_trips(tmp_path: Path) -> None:
    cache = OnnxCache(tmp_path / "onnx")
    export = CachedExport(b"graph", ("a", "b"), ("c",))
    assert cache.get(SHA) is None
    cache.put(SHA, export)
    assert cache.get(SHA) == export


def test_an_edited_or_torn_entry_is_ignored(tmp_path: Path) -> None:
    cache = OnnxCache(tmp_path)
    cache.put(SHA, CachedExport(b"graph", ("a",), ()))
    (tmp_path / f"{SHA}.onnx").write_bytes(b"other graph")
    assert cache.get(SHA) is None
    cache.put(SHA, CachedExport(b"graph", ("a",), ()))
    (tmp_path / f"{SHA}.json").unlink()
    assert cache.get(SHA) is None


def test_a_key_that_is_not_a_sha256_reads_and_writes_nothing(tmp_path: Path) -> None:
    cache = OnnxCache(tmp_path)
    cache.put("../escape", CachedExport(b"graph", (), ()))
    assert list(tmp_path.iterdir()) == []
    assert cache.get("../escape") is None


@pytest.fixture(scope="module")
def bundle_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("onnx-cache")
    with Workspace.open(root) as workspace:
        return cached_bundle_file(workspace, root)


def test_the_first_load_exports_and_the_next_start_reuses_it_without_the_training_stack(
    bundle_path: Path, tmp_path: Path
) -> None:
    cache = OnnxCache(tmp_path / "onnx")
    first, why = OnnxPredictor.try_build(read_bundle(bundle_path, defer_model=True), cache)
    assert first is not None, why
    assert why == "onnx export verified on the reference sample"
    rows = churn(40, seed=3).drop("churned")
    native = read_bundle(bundle_path).predict(rows).labels.tolist()

    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(bundle_path), str(cache.directory), rows.write_json()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["why"] == "onnx export verified (cached)"
    assert found["labels"] == native
    assert found["model_loaded"] is False
    assert sorted(set(found["modules"]) & TRAINING_STACK) == []


def test_a_deferred_model_loads_on_first_use(bundle_path: Path) -> None:
    bundle = read_bundle(bundle_path, defer_model=True)
    assert not bundle.model_loaded
    rows = churn(10, seed=4).drop("churned")
    labels = bundle.predict(rows).labels
    assert bundle.model_loaded
    assert np.array_equal(labels, read_bundle(bundle_path).predict(rows).labels)
