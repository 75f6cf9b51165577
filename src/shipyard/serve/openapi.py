"""What the model server's OpenAPI document promises: request bodies, answers and errors.

The routes read their bodies raw (size limit first, then orjson), so FastAPI cannot infer their
schemas, and it knows nothing of the errors the auth middleware and the handlers answer. Without
this module the document described a server that takes no bodies and only ever says 200 or 422,
and clients and the schemathesis fuzz test (tests/integration/test_api_fuzz.py) were checking
against a fiction. Each route names here the errors it can answer; every error has one body,
``{"error": ..., "detail": ...}``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, TypeAdapter

from shipyard.monitor.feedback import MAX_ID_CHARS, MAX_LABEL_CHARS, MAX_LABELS_PER_REQUEST
from shipyard.serve.contract import MAX_ROWS
from shipyard.serve.traffic import Policy


class ErrorAnswer(BaseModel):
    """The body of every error the server answers."""

    error: str
    detail: Any = None


_WHY = {
    400: "The body is not valid JSON (NaN and Infinity are not JSON).",
    401: "No bearer token, or one that is not valid here.",
    403: "The caller's role may not do this, or the route is not in the permission table.",
    404: "No model of that name is served here.",
    409: "The policy names aliases that are not loaded.",
    413: "The body is over the size limit, or too many labels in one request.",
    415: "The content type is not application/json.",
    422: "The body does not match the model's contract or the expected shape.",
    429: "Too many failed authentications from this address; retry later.",
    503: "The model failed to score, or the feature is off on this server.",
}

#: Every route behind the auth middleware may answer these.
GUARDED = (401, 403, 429)
#: Every route that reads a JSON body may answer these (see ``serve.bodies.read_json``).
BODY = (400, 413, 415, 422)


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """FastAPI ``responses=`` entries for ``codes``, each with the error body."""
    return {code: {"model": ErrorAnswer, "description": _WHY[code]} for code in codes}


def json_answer(schema: dict[str, Any], description: str = "Successful Response") -> dict[str, Any]:
    """A ``responses=`` entry whose body is JSON matching ``schema``."""
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def json_body(schema: dict[str, Any]) -> dict[str, Any]:
    """``openapi_extra`` declaring a required JSON request body matching ``schema``."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _inline(schema: Any, defs: dict[str, Any]) -> Any:
    """Replace pydantic's local ``#/$defs/X`` references by the definitions themselves."""
    if isinstance(schema, list):
        return [_inline(s, defs) for s in schema]
    if not isinstance(schema, dict):
        return schema
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return _inline(defs[ref.removeprefix("#/$defs/")], defs)
    return {k: _inline(v, defs) for k, v in schema.items() if k not in ("$defs", "discriminator")}


def model_schema(model: Any) -> dict[str, Any]:
    """The JSON schema of a pydantic model (or type), with its ``$defs`` inlined."""
    raw = TypeAdapter(model).json_schema()
    inlined: dict[str, Any] = _inline(raw, raw.get("$defs", {}))
    return inlined


def _policy_schema() -> dict[str, Any]:
    raw = TypeAdapter(Policy).json_schema()
    inlined: dict[str, Any] = _inline(raw, raw.get("$defs", {}))
    return inlined


_VALUE: dict[str, Any] = {"type": ["string", "number", "integer", "boolean", "null"]}
_RECORDS: dict[str, Any] = {
    "type": "array",
    "minItems": 1,
    "maxItems": MAX_ROWS,
    "items": {"type": "object", "additionalProperties": _VALUE},
}
_COLUMNS: dict[str, Any] = {
    "type": "object",
    "minProperties": 1,
    "additionalProperties": {"type": "array", "maxItems": MAX_ROWS, "items": _VALUE},
}

#: ``POST /models/{name}/predict``: records, ``{"records": [...]}``, ``{"columns": {...}}``
#: or a bare column map. The model's own contract (GET /v2/models/{name}) names the columns.
PREDICT_BODY: dict[str, Any] = {
    "anyOf": [
        _RECORDS,
        {"type": "object", "required": ["records"], "properties": {"records": _RECORDS}},
        {"type": "object", "required": ["columns"], "properties": {"columns": _COLUMNS}},
        _COLUMNS,
    ]
}

PREDICT_ANSWER: dict[str, Any] = {
    "type": "object",
    "required": ["model", "version", "variant", "request_id", "predictions"],
    "properties": {
        "model": {"type": "string"},
        "version": {"type": "integer"},
        "variant": {"type": "string"},
        "request_id": {"type": "string"},
        "predictions": {"type": "array"},
        "probabilities": {
            "type": "array",
            "items": {"type": "object", "additionalProperties": {"type": "number"}},
        },
    },
}

_TENSOR: dict[str, Any] = {
    "type": "object",
    "required": ["name", "shape", "datatype", "data"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "shape": {"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 2},
        "datatype": {"type": "string"},
        "data": {"type": "array", "maxItems": MAX_ROWS, "items": _VALUE},
        "parameters": {"type": "object"},
    },
}

#: ``POST /v2/models/{name}/infer``: an Open Inference Protocol V2 request, one tensor a column.
INFER_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["inputs"],
    "properties": {
        "id": {"type": "string"},
        "inputs": {"type": "array", "minItems": 1, "items": _TENSOR},
        "parameters": {"type": "object"},
        "outputs": {"type": "array"},
    },
}

INFER_ANSWER: dict[str, Any] = {
    "type": "object",
    "required": ["model_name", "model_version", "id", "outputs"],
    "properties": {
        "model_name": {"type": "string"},
        "model_version": {"type": "string"},
        "id": {"type": "string"},
        "outputs": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "shape", "datatype", "data"],
                "properties": {
                    "name": {"type": "string"},
                    "shape": {"type": "array", "items": {"type": "integer"}},
                    "datatype": {"type": "string"},
                    "data": {"type": "array"},
                },
            },
        },
    },
}

_LABEL: dict[str, Any] = {
    "type": "object",
    "required": ["request_id", "label"],
    "additionalProperties": False,
    "properties": {
        "request_id": {"type": "string", "minLength": 1, "maxLength": MAX_ID_CHARS},
        "label": {
            "anyOf": [
                {"type": "string", "minLength": 1, "maxLength": MAX_LABEL_CHARS},
                {"type": ["number", "integer", "boolean"]},
            ]
        },
        "ts_ms": {"type": ["integer", "null"], "minimum": 0},
    },
}

#: ``POST /models/{name}/feedback``: one label or a list of them.
FEEDBACK_BODY: dict[str, Any] = {
    "anyOf": [
        _LABEL,
        {"type": "array", "minItems": 1, "maxItems": MAX_LABELS_PER_REQUEST, "items": _LABEL},
    ]
}

FEEDBACK_ANSWER: dict[str, Any] = {
    "type": "object",
    "required": ["accepted", "matched", "unmatched", "repeated", "unmatched_ids"],
    "properties": {
        name: {"type": "integer", "minimum": 0}
        for name in ("accepted", "matched", "unmatched", "repeated")
    }
    | {"unmatched_ids": {"type": "array", "items": {"type": "string"}}},
}

READY_ANSWER: dict[str, Any] = {
    "type": "object",
    "required": ["ready"],
    "properties": {"ready": {"type": "boolean"}},
}

#: ``PUT /admin/models/{name}/policy``: the new traffic policy, or ``null`` for none.
POLICY_BODY: dict[str, Any] = {"anyOf": [_policy_schema(), {"type": "null"}]}

__all__ = [
    "BODY",
    "FEEDBACK_ANSWER",
    "FEEDBACK_BODY",
    "GUARDED",
    "INFER_ANSWER",
    "INFER_BODY",
    "POLICY_BODY",
    "PREDICT_ANSWER",
    "PREDICT_BODY",
    "READY_ANSWER",
    "ErrorAnswer",
    "errors",
    "json_answer",
    "json_body",
]
