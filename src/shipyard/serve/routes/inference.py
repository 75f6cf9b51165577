"""Prediction routes: plain JSON ``/models/{name}/predict``, Open Inference V2, model metadata.

The hot path (issue 17), per request: the body is read and parsed once with orjson; rows that
are plainly well formed (``RequestContract.plain_records``) become the model's numpy input in
one call, anything else goes through the full contract check, which names every bad field
with a 422; the decoded rows join the model's micro-batch (``serve.batching``); metrics are
counted through cached series; the prediction log only enqueues. ``serve.fast_lane`` calls
``predict`` and ``infer`` directly, past FastAPI's routing; FastAPI still documents them.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from shipyard.core.errors import ShipyardError
from shipyard.serve.bodies import json_response, read_json
from shipyard.serve.context import ServerContext, context_of
from shipyard.serve.contract import ContractError
from shipyard.serve.errors import HttpError
from shipyard.serve.openapi import (
    BODY,
    GUARDED,
    INFER_ANSWER,
    INFER_BODY,
    PREDICT_ANSWER,
    PREDICT_BODY,
    errors,
    json_answer,
    json_body,
)
from shipyard.serve.payloads import plain_columns, plain_response, v2_columns, v2_response
from shipyard.serve.request_ids import RequestIds

if TYPE_CHECKING:
    from collections.abc import Mapping

    from shipyard.registry.input_contract import ModelInput
    from shipyard.serve.contract import RequestContract
    from shipyard.serve.host import ServedModel
    from shipyard.serve.runtime import Answer

_IDS = RequestIds()  # used from the event loop only

#: The prediction routes (``serve.fast_lane`` calls their handlers directly).
predict_router = APIRouter()
#: Model metadata.
router = APIRouter()


@router.get("/v2/models/{name}", responses=errors(*GUARDED, 404))
async def model_metadata(name: str, request: Request) -> dict[str, Any]:
    """V2 model metadata: versions, inputs with types and categories, outputs."""
    described: dict[str, Any] = context_of(request).runtime.served(name).describe()
    return described


@router.get("/v2/models/{name}/ready", responses=errors(*GUARDED, 404))
async def model_ready(name: str, request: Request) -> dict[str, Any]:
    """V2 per-model readiness."""
    runtime = context_of(request).runtime
    runtime.served(name)
    return {"name": name, "ready": runtime.ready}


@predict_router.post(
    "/models/{name}/predict",
    responses={200: json_answer(PREDICT_ANSWER), **errors(*GUARDED, *BODY, 404, 503)},
    openapi_extra=json_body(PREDICT_BODY),
)
async def predict(name: str, request: Request) -> Response:
    """Plain JSON: records ``[{col: val}]`` or columns ``{col: [vals]}``."""
    context = context_of(request)
    model = context.runtime.served(name)  # 404 before reading the body
    body = await read_json(request, context.max_body_bytes)
    content = await answer_plain(context, name, model, body, request.headers)
    return Response(content, media_type="application/json")


async def answer_plain(
    context: ServerContext,
    name: str,
    model: ServedModel,
    body: Any,
    headers: Mapping[str, str],
) -> bytes:
    """The JSON answer to a parsed plain-JSON body, scored, counted and logged.

    Shared by the ``predict`` route and ``serve.direct`` (which calls it straight from ASGI),
    so both give byte-identical answers and raise the same errors.

    Raises:
        ContractError: The body breaks the contract (422).
        HttpError: The model failed (503).
    """
    inputs, columns = decode_plain(model.contract, body)
    answer, request_id, seconds = await _score(context, name, inputs, headers, None)
    payload = plain_response(
        answer.scored,
        model=name,
        version=answer.model.version,
        variant=answer.alias,
        request_id=request_id,
        classes=answer.model.bundle.manifest.classes,
    )
    _log(
        context,
        name,
        answer,
        columns,
        body,
        request_id,
        seconds,
        inputs if columns is None else None,
    )
    return orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)


@predict_router.post(
    "/v2/models/{name}/infer",
    responses={200: json_answer(INFER_ANSWER), **errors(*GUARDED, *BODY, 404, 503)},
    openapi_extra=json_body(INFER_BODY),
)
async def infer(name: str, request: Request) -> Response:
    """Open Inference Protocol V2: one tensor per feature column."""
    context = context_of(request)
    model = context.runtime.served(name)  # 404 before reading the body
    body = await read_json(request, context.max_body_bytes)
    columns, given_id = v2_columns(body)
    inputs = model.contract.frame(columns)
    answer, request_id, seconds = await _score(context, name, inputs, request.headers, given_id)
    payload = v2_response(
        answer.scored,
        model=name,
        version=answer.model.version,
        request_id=request_id,
        classes=answer.model.bundle.manifest.classes,
    )
    _log(context, name, answer, columns, body, request_id, seconds)
    return json_response(payload)


def decode_plain(
    contract: RequestContract, body: Any
) -> tuple[ModelInput, dict[str, list[Any]] | None]:
    """A plain-JSON body as the model's input, and its columns when the full check made them.

    Well-formed numeric records take the one-call numpy reader; everything else the full
    check, so a bad body gets exactly the full contract's 422.

    Raises:
        ContractError: The body breaks the contract (422 naming the fields and rows).
    """
    inputs = contract.plain_records(body)
    if inputs is not None:
        return inputs, None
    columns = plain_columns(body)
    return contract.frame(columns), columns


async def _score(
    context: ServerContext,
    name: str,
    inputs: ModelInput,
    headers: Mapping[str, str],
    given_id: str | None,
) -> tuple[Answer, str, float]:
    started = time.perf_counter()
    request_id = given_id or headers.get("x-request-id") or _IDS.new()
    try:
        answer = await context.runtime.answer(name, inputs, headers)
    except (ContractError, ShipyardError):
        raise
    except Exception as e:
        context.metrics.failed(name)
        raise HttpError(
            503, "the model failed to score this request; it has been logged", type(e).__name__
        ) from e
    seconds = time.perf_counter() - started
    context.metrics.answered(
        name,
        answer.alias,
        answer.model.version,
        rows=inputs.height,
        seconds=seconds,
        cpu_s=answer.scored.cpu_seconds,
    )
    return answer, request_id, seconds


def _log(
    context: ServerContext,
    name: str,
    answer: Answer,
    columns: dict[str, list[Any]] | None,
    body: Any,
    request_id: str,
    seconds: float,
    inputs: ModelInput | None = None,
) -> None:
    log = context.prediction_log
    if log is None:
        return
    from shipyard.serve.logging_hooks import log_answer

    # Plain records are turned into columns by the log's writer, not here (logging_hooks).
    records = body if columns is None else None
    log_answer(log, name, answer, columns, request_id, seconds, records=records, inputs=inputs)
