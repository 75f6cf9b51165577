"""One input contract on every path: HTTP, batch scoring and ``Bundle.predict`` agree.

Hypothesis draws rows of every kind of trouble (nulls, NaN, infinity, unseen categories,
``"true"``/``"1"`` text, values of the wrong kind, missing and extra columns) and sends the
same rows through a real served app, through ``score_file`` on a Parquet file, and through the
Python API, under the strict default policy and a lenient one. Every path must take the same
rows, refuse the same rows with the same messages, and predict the same values.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
import polars as pl
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from shipyard.registry.bundle import Bundle, read_bundle, write_bundle
from shipyard.registry.input_contract import (
    MISSING_COLUMN,
    NULL,
    UNKNOWN_COLUMN,
    ContractViolation,
    reasons,
)
from shipyard.registry.manifest import BundleManifest, InputPolicy, features_from_frame
from shipyard.serve.app import create_app
from shipyard.serve.batch import score_file
from shipyard.serve.contract import RequestContract
from shipyard.serve.runtime import Runtime
from shipyard.serve.traffic import DeploySpec
from shipyard.train.preprocess import Columns, model_input
from tests.unit.serve.tokens import ServerTokens

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

NUMERIC = ("x", "n", "flag")  # x: float with nulls in training; n: int64; flag: bool
CATEGORICAL = ("plan", "city")  # city had nulls in training, plan did not
FEATURES = (*NUMERIC, *CATEGORICAL)
POLICIES = {
    "strict": InputPolicy(),
    "lenient": InputPolicy(unseen_categories="unknown", text_to_number=True, text_to_bool=True),
}


def _training_frame() -> pl.DataFrame:
    n = 60
    return pl.DataFrame(
        {
            "x": [None if i % 7 == 0 else (i % 11) / 3 for i in range(n)],
            "n": [i % 5 for i in range(n)],
            "flag": [i % 3 == 0 for i in range(n)],
            "plan": [["basic", "plus", "pro"][i % 3] for i in range(n)],
            "city": [None if i % 4 == 0 else ["a", "b"][i % 2] for i in range(n)],
            "y": [int((i % 11) / 3 + (i % 3 == 0) > 2) for i in range(n)],
        }
    )


def _bundle(directory: Path, policy: InputPolicy) -> Bundle:
    frame = _training_frame()
    columns = Columns(numeric=NUMERIC, categorical=CATEGORICAL)
    prep = ColumnTransformer(
        [
            ("numeric", SimpleImputer(), list(NUMERIC)),
            (
                "categorical",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="most_frequent")),
                        ("encode", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
                    ]
                ),
                list(CATEGORICAL),
            ),
        ]
    )
    model = Pipeline([("prep", prep), ("est", LogisticRegression())])
    model.fit(model_input(frame, columns), frame["y"].to_numpy())
    manifest = BundleManifest(
        name="agree",
        task="binary",
        target="y",
        features=features_from_frame(frame, FEATURES),
        classes=[0, 1],
        input_policy=policy,
        primary_metric="roc_auc",
        created_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    )
    path = directory / "agree.shipyard"
    sha = write_bundle(path, model, manifest)
    return read_bundle(path, expected_sha256=sha)


@dataclass
class _Source:
    bundle: Bundle

    def resolve(self, model: str, alias: str) -> int:
        return 1

    def load(self, model: str, version: int) -> Bundle:
        return self.bundle

    def promote(self, model: str, alias: str, version: int, *, reason: str) -> None:
        raise AssertionError("no canary here")


@dataclass
class _Served:
    bundle: Bundle
    client: TestClient
    folder: Path


@pytest.fixture(scope="module", params=sorted(POLICIES))
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[_Served]:
    folder = tmp_path_factory.mktemp(f"agree-{request.param}")
    bundle = _bundle(folder, POLICIES[request.param])
    spec = DeploySpec(models={"agree": {"model": "agree"}}, poll_interval_s=3600, fast_path=False)
    tokens = ServerTokens(folder / "security")
    app = create_app(Runtime(spec, _Source(bundle)), auth=tokens.auth)
    with TestClient(app, raise_server_exceptions=False, headers=tokens.headers()) as client:
        yield _Served(bundle, client, folder)


# -- rows ----------------------------------------------------------------------------------

FINITE = st.one_of(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), st.integers(-9, 9))
ODD_NUMBERS = st.sampled_from([math.nan, math.inf, -math.inf])
KNOWN = st.sampled_from(["basic", "plus", "pro", "a", "b"])
ODD_TEXTS = st.sampled_from(["gold", "true", "false", "1", "0", "1.5", "-2e3", "abc", ""])
FAMILIES = {
    "number": st.one_of(*[FINITE] * 7, ODD_NUMBERS),
    "bool": st.booleans(),
    "text": st.one_of(*[KNOWN] * 7, ODD_TEXTS),
}
DTYPES = {"number": pl.Float64, "bool": pl.Boolean, "text": pl.String}
OWN = {"x": "number", "n": "number", "flag": "bool", "plan": "text", "city": "text"}


@st.composite
def batches(draw: st.DrawFn) -> tuple[dict[str, tuple[str, list[Any]]], bool]:
    """Columns of 1-6 rows, each of one JSON kind (its frame dtype), and an extra column?

    Mostly each feature gets values of its own kind, so whole batches pass as well as fail.
    """
    height = draw(st.integers(1, 6))
    missing = draw(st.sampled_from([*[None] * 25, *FEATURES]))  # now and then one is missing
    columns = {}
    for name in FEATURES:
        if name == missing:
            continue
        family = draw(st.sampled_from([OWN[name]] * 12 + sorted(FAMILIES)))
        values = FAMILIES[family]
        cell = st.one_of(st.none(), *[values] * 7) if draw(st.integers(0, 3)) == 0 else values
        columns[name] = (family, draw(st.lists(cell, min_size=height, max_size=height)))
    return columns, draw(st.integers(0, 9)) == 0


def _frame(columns: dict[str, tuple[str, list[Any]]]) -> pl.DataFrame:
    return pl.DataFrame(
        [pl.Series(n, values, dtype=DTYPES[family]) for n, (family, values) in columns.items()]
    )


def _by_row(problems: list[tuple[str, str, tuple[int, ...]]]) -> dict[int, str]:
    """Per-row reasons, as the batch reject file writes them, from 422-style problems."""
    order = {name: i for i, name in enumerate(FEATURES)}
    pairs: dict[int, list[tuple[str, str]]] = {}
    for field, problem, rows in problems:
        for row in rows:
            pairs.setdefault(row, []).append((field, problem))
    return {r: reasons(sorted(p, key=lambda fp: order[fp[0]])) for r, p in sorted(pairs.items())}


def _http(served: _Served, values: dict[str, list[Any]]) -> tuple[int, Any]:
    """The HTTP answer; infinity is not JSON, so such rows go through the served contract."""
    if any(isinstance(v, float) and math.isinf(v) for vs in values.values() for v in vs):
        try:  # what the app's handler calls with the parsed body
            RequestContract(served.bundle.contract).frame(values)
        except ContractViolation as e:
            return 422, {"detail": [p.to_dict() for p in e.problems]}
        raise AssertionError("infinity was accepted")
    body = orjson.dumps({"columns": values})  # NaN goes as null: JSON's only missing value
    answer = served.client.post(
        "/models/agree/predict", content=body, headers={"content-type": "application/json"}
    )
    return answer.status_code, answer.json()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(drawn=batches())
def test_http_batch_and_python_api_agree(served: _Served, drawn: Any, tmp_path_factory) -> None:
    columns, extra = drawn
    frame = _frame(columns)
    values = {n: v for n, (_, v) in columns.items()}
    if extra:
        status, body = _http(served, {**values, "extra": [1.0] * frame.height})
        assert status == 422
        unknown = {"field": "extra", "problem": UNKNOWN_COLUMN}
        assert unknown in body["detail"]  # an HTTP body names only features ...
        frame = frame.with_columns(pl.lit(1.0).alias("extra"))  # ... a frame may carry more
    status, body = _http(served, values)
    missing = [n for n in FEATURES if n not in values]

    # the Python API
    try:
        python = served.bundle.predict(frame)
        python_problems = None
    except ContractViolation as e:
        python, python_problems = None, [(p.field, p.problem, p.rows) for p in e.problems]

    # batch scoring of the same rows from Parquet (typed, like the frame)
    folder = tmp_path_factory.mktemp("batch")
    source, output = folder / "in.parquet", folder / "out.parquet"
    frame.write_parquet(source)
    if missing:  # a missing column fails the whole request, file and call, in the same words
        with pytest.raises(ContractViolation) as raised:
            score_file(served.bundle, source, output)
        problems = [(p.field, p.problem) for p in raised.value.problems]
        assert problems == [(missing[0], MISSING_COLUMN)]
        assert status == 422
        assert body["detail"] == [{"field": missing[0], "problem": MISSING_COLUMN}]
        assert python_problems == [(missing[0], MISSING_COLUMN, ())]
        event("missing column")
        return
    report = score_file(served.bundle, source, output)
    rejected = {}
    if report.rejects is not None:
        rejects = pl.read_csv(report.rejects, schema={"row": pl.Int64, "reasons": pl.String})
        rejected = dict(zip(rejects["row"], rejects["reasons"], strict=True))
    scored = pl.read_parquet(output)

    if status == 200:
        assert python_problems is None
        assert rejected == {}
        assert python is not None
        assert body["predictions"] == python.labels.tolist()
        assert scored["prediction"].to_list() == python.labels.tolist()
        http_proba = [row["1"] for row in body["probabilities"]]
        assert http_proba == pytest.approx(python.proba[:, 1].tolist())
        assert scored["proba_1"].to_list() == pytest.approx(python.proba[:, 1].tolist())
        event("all rows scored")
        return
    assert status == 422, body
    http_problems = [(d["field"], d["problem"], tuple(d.get("rows", ()))) for d in body["detail"]]
    assert http_problems == python_problems  # the same problems, words and rows
    assert _by_row(http_problems) == rejected  # the reject file says the same per row
    for field, problem, _ in http_problems:
        event(f"refused: {field}: {problem}")
    good = [i for i in range(frame.height) if i not in rejected]
    if not good:
        assert scored.height == 0
        return
    event("some rows scored, some refused")
    assert scored["source_row"].to_list() == good
    alone = served.bundle.predict(frame[good])
    assert scored["prediction"].to_list() == alone.labels.tolist()


def test_an_all_null_row_is_refused_naming_every_non_nullable_field(served: _Served) -> None:
    manifest = served.bundle.manifest
    required = [f.name for f in manifest.features if not f.nullable]
    assert sorted(required) == ["flag", "n", "plan"]  # x and city had nulls in training
    row = dict.fromkeys(FEATURES)
    answer = served.client.post("/models/agree/predict", json=[row])
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"] == [
        {"field": name, "problem": NULL, "rows": [0]} for name in FEATURES if name in required
    ]
    v2 = {
        "inputs": [{"name": n, "shape": [1], "datatype": "FP64", "data": [None]} for n in FEATURES]
    }
    assert served.client.post("/v2/models/agree/infer", json=v2).status_code == 422
    with pytest.raises(ContractViolation, match="flag: missing value"):
        served.bundle.predict(pl.DataFrame([row], schema=dict.fromkeys(FEATURES, pl.Float64)))
