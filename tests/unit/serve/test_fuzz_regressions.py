"""Bugs the schemathesis fuzz test (tests/integration/test_api_fuzz.py) found, pinned one by one."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from fastapi.testclient import TestClient

from shipyard.serve.app import create_app
from shipyard.serve.fast_path import OnnxPredictor
from shipyard.serve.runtime import Runtime
from shipyard.serve.traffic import DeploySpec
from tests.unit.serve.tokens import ServerTokens

# Finite in JSON and float64, beyond float32 (3.4e38): the ONNX fast path made them +-inf, and
# with opposite-signed coefficients the graph answered NaN probabilities (sent as null) and
# class 0; under warnings-as-errors the overflow warning turned into a 503.
HUGE = {"tenure": 1e300, "charges": 1e300, "plan": "basic"}


@pytest.fixture
def client(source, tmp_path):
    spec = DeploySpec(models={"churn": {"model": "churn"}}, poll_interval_s=60)
    tokens = ServerTokens(tmp_path / "security")
    app = create_app(Runtime(spec, source), auth=tokens.auth)
    with TestClient(app, raise_server_exceptions=False, headers=tokens.headers()) as c:
        yield c


def test_values_beyond_float32_get_the_native_models_answer(client, bundles) -> None:
    assert client.get("/v2/models/churn").json()["engine"] == "onnx"  # the fast path serves
    answer = client.post("/models/churn/predict", json=[HUGE, {**HUGE, "charges": 3e39}])
    assert answer.status_code == 200, answer.text
    expected = bundles[1].predict(pl.DataFrame([HUGE, {**HUGE, "charges": 3e39}]))
    body = answer.json()
    assert body["predictions"] == expected.labels.tolist()
    for row, want in zip(body["probabilities"], expected.proba, strict=True):
        assert all(math.isfinite(p) for p in row.values())
        assert [row["0"], row["1"]] == pytest.approx(want.tolist())


def test_the_fast_path_still_serves_ordinary_rows(bundles) -> None:
    predictor, why = OnnxPredictor.try_build(bundles[1])
    assert predictor is not None, why
    predictor.native = lambda inputs: pytest.fail("ordinary rows went the slow way")
    frame = pl.DataFrame([{**HUGE, "tenure": 12.0, "charges": 3e38}])  # just inside float32
    got = predictor(bundles[1].contract.decode_frame(frame))
    assert got.proba is not None
    assert np.isfinite(got.proba).all()
