"""Schemathesis fuzzes a real model server (uvicorn on 127.0.0.1) from its own OpenAPI document.

Every operation gets schema-derived requests, valid and deliberately invalid, sent with a real
bearer token: an admin's (every route is reachable), then a viewer's (the admin routes must
answer a documented 403). Each answer must be no 5xx, have a status code the document declares,
and a body that matches the declared schema. The run is derandomized and bounded per operation,
so CI sees the same requests every time. Bugs it found stay pinned by unit tests in
tests/unit/serve/test_app.py.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from shipyard.core.clock import ManualClock
from shipyard.registry.bundle import Bundle
from shipyard.registry.registry import ModelRegistry
from shipyard.security.permissions import (
    HTTP_ROUTES,
    MLFLOW_HTTP_ROUTES,
    PUBLIC,
    allowed_roles,
    route_action,
)
from shipyard.security.roles import Role
from shipyard.serve.app import create_app
from shipyard.serve.prediction_log import PredictionLog
from shipyard.serve.runtime import Runtime
from shipyard.serve.server import teamwork_of
from shipyard.serve.traffic import DeploySpec
from shipyard.track.workspace import Workspace
from tests.servers import running
from tests.unit.serve.conftest import MemorySource, make_bundle
from tests.unit.serve.tokens import ServerTokens

pytestmark = pytest.mark.slow

# 25 examples per operation keep CI near a minute; FUZZ_MAX_EXAMPLES=500 digs deeper locally.
MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "25"))
MODEL = "churn"
POSITIVE, NEGATIVE = GenerationMode.POSITIVE, GenerationMode.NEGATIVE
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
]


class Served:
    """A running server: its base URL and a bearer header per role."""

    def __init__(self, url: str, tokens: ServerTokens) -> None:
        self.url = url
        self.headers = {role: tokens.headers(role) for role in (Role.ADMIN, Role.VIEWER)}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("fuzz")
    bundle: Bundle = make_bundle(tmp)
    source = MemorySource()
    source.bundles[("churn", 1)] = bundle
    source.aliases[("churn", "production")] = 1
    spec = DeploySpec(
        models={"churn": {"model": "churn"}}, max_body_bytes=20_000, poll_interval_s=60
    )
    tokens = ServerTokens(tmp / "security")
    log = PredictionLog(tmp / "predictions", clock=ManualClock(), flush_interval_s=30)
    with Workspace.open(tmp / "project") as workspace:  # behind /reviews, /comments, /activity
        teamwork = teamwork_of(workspace, ModelRegistry.for_workspace(workspace))
        app = create_app(
            Runtime(spec, source), auth=tokens.auth, prediction_log=log, teamwork=teamwork
        )
        with running(app, lifespan="on") as port:
            yield Served(f"http://127.0.0.1:{port}", tokens)


@pytest.fixture(scope="module")
def schema(served: Served) -> schemathesis.BaseSchema:
    """The server's own OpenAPI document, fetched over HTTP like any client would."""
    headers = served.headers[Role.ADMIN]
    loaded = schemathesis.openapi.from_url(f"{served.url}/openapi.json", headers=headers)
    loaded.config.update(base_url=served.url)
    # A body over the size limit is turned away before it is parsed: that is a rejection too.
    rejection = loaded.config.checks.negative_data_rejection
    rejection.expected_statuses = [*rejection.expected_statuses, "413"]
    return loaded


@pytest.fixture(scope="module")
def contract_schema(served: Served, schema: schemathesis.BaseSchema) -> schemathesis.BaseSchema:
    """The same document with predict/infer bodies narrowed to the served model's contract.

    The generic document must accept any model's columns, so most generated bodies stop at the
    contract check (422). This one is built from GET /v2/models/churn, so the generated rows
    reach the model: odd numbers, unseen and known categories, ints for floats, many rows.
    """
    meta = httpx.get(f"{served.url}/v2/models/{MODEL}", headers=served.headers[Role.ADMIN])
    features = {i["name"]: _value_schema(i) for i in meta.json()["inputs"]}
    record = {
        "type": "object",
        "required": list(features),
        "properties": features,
        "additionalProperties": False,
    }
    tensors = [
        {
            "type": "object",
            "required": ["name", "shape", "datatype", "data"],
            "properties": {
                "name": {"const": name},
                "shape": {"const": [3]},
                "datatype": {"const": "BYTES" if value.get("anyOf") else "FP64"},
                "data": {"type": "array", "items": value, "minItems": 3, "maxItems": 3},
            },
        }
        for name, value in features.items()
    ]
    raw = copy.deepcopy(schema.raw_schema)
    paths = raw["paths"]
    _set_body(
        paths["/models/{name}/predict"]["post"],
        {"type": "array", "items": record, "minItems": 1, "maxItems": 20},
    )
    _set_body(
        paths["/v2/models/{name}/infer"]["post"],
        {
            "type": "object",
            "required": ["inputs"],
            "properties": {
                "inputs": {
                    "type": "array",
                    "prefixItems": tensors,
                    "minItems": len(tensors),
                    "maxItems": len(tensors),
                }
            },
        },
    )
    narrowed = schemathesis.openapi.from_dict(raw)
    narrowed.config.update(base_url=served.url)
    return narrowed


def _value_schema(feature: dict[str, Any]) -> dict[str, Any]:
    if feature["datatype"] == "BYTES":
        return {"anyOf": [{"enum": feature["categories"]}, {"type": "string"}]}
    return {"type": "number"}


def _set_body(operation: dict[str, Any], body: dict[str, Any]) -> None:
    operation["requestBody"]["content"]["application/json"]["schema"] = body


OPERATIONS = [
    (method, path)
    for (method, path) in HTTP_ROUTES
    # The tracking server's MLflow routes are not the model server's; their sweep is
    # tests/integration/test_mlflow_api_edges.py.
    if (method, path) not in MLFLOW_HTTP_ROUTES
    and path not in ("/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc")
    and method != "HEAD"  # the probes' HEAD is GET without a body, not in the document
]


def _runs() -> list[Any]:
    """(method, path, mode, name) to fuzz: ``name`` None lets schemathesis pick model names."""
    runs = []
    for method, path in OPERATIONS:
        named = "{name}" in path
        runs.append(pytest.param(method, path, POSITIVE, None, id=f"{method} {path} any-name"))
        if named:
            runs.append(pytest.param(method, path, POSITIVE, MODEL, id=f"{method} {path}"))
        if method in ("POST", "PUT"):  # nothing else to make invalid: a name is any string
            runs.append(pytest.param(method, path, NEGATIVE, MODEL, id=f"{method} {path} invalid"))
    return runs


def test_every_documented_operation_is_fuzzed(schema: schemathesis.BaseSchema) -> None:
    documented = {
        (method.upper(), path)
        for path, methods in schema.raw_schema["paths"].items()
        for method in methods
    }
    assert documented == set(OPERATIONS)


def _fuzz(
    schema: schemathesis.BaseSchema,
    served: Served,
    method: str,
    path: str,
    mode: GenerationMode,
    name: str | None,
    role: Role,
    *,
    strict: bool = True,
) -> int:
    """Fuzz one operation; returns how many requests were answered."""
    operation = schema[path][method]
    headers = served.headers[role]
    fixed = {"name": name} if name is not None else None
    action = route_action(method, path)
    denied = action != PUBLIC and role not in allowed_roles(action or "")
    answered = []

    @hypothesis.settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    @hypothesis.given(case=operation.as_strategy(mode, path_parameters=fixed))
    def fuzz(case: schemathesis.Case) -> None:
        if strict and mode is NEGATIVE:
            checks, skipped = [*CHECKS, negative_data_rejection], []
        else:  # schemathesis adds this check to negative cases unless it is excluded
            checks, skipped = CHECKS, [negative_data_rejection]
        response = case.call_and_validate(headers=headers, checks=checks, excluded_checks=skipped)
        answered.append(response.status_code)
        if denied:
            assert response.status_code == 403, response.text
        else:  # the token is good and its role may call this route
            assert response.status_code not in (401, 403, 429), response.text

    fuzz()
    return len(answered)


@pytest.mark.parametrize(("method", "path", "mode", "name"), _runs())
def test_fuzz_as_admin(
    schema: schemathesis.BaseSchema,
    served: Served,
    method: str,
    path: str,
    mode: GenerationMode,
    name: str | None,
) -> None:
    assert _fuzz(schema, served, method, path, mode, name, Role.ADMIN) > 0


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_fuzz_as_viewer(
    schema: schemathesis.BaseSchema, served: Served, method: str, path: str
) -> None:
    name = MODEL if "{name}" in path else None
    assert _fuzz(schema, served, method, path, POSITIVE, name, Role.VIEWER) > 0


@pytest.mark.parametrize("mode", [POSITIVE, NEGATIVE])
@pytest.mark.parametrize("path", ["/models/{name}/predict", "/v2/models/{name}/infer"])
def test_fuzz_rows_that_reach_the_model(
    contract_schema: schemathesis.BaseSchema, served: Served, path: str, mode: GenerationMode
) -> None:
    # Negative rows (text for numbers, objects for values) must be turned away with a 4xx; the
    # narrowed schema is this test's, not the server's, so rejection itself is not checked.
    assert _fuzz(contract_schema, served, "POST", path, mode, MODEL, Role.ADMIN, strict=False) > 0
