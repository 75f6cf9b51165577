"""``POST /models/{name}/feedback``: ground truth for earlier answers, stored beside the log."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from shipyard.core.errors import Unavailable
from shipyard.monitor.feedback import MAX_LABELS_PER_REQUEST, parse_feedback_json
from shipyard.serve.bodies import json_response, read_json
from shipyard.serve.context import context_of
from shipyard.serve.errors import HttpError
from shipyard.serve.openapi import (
    BODY,
    FEEDBACK_ANSWER,
    FEEDBACK_BODY,
    GUARDED,
    errors,
    json_answer,
    json_body,
)

router = APIRouter()


@router.post(
    "/models/{name}/feedback",
    responses={200: json_answer(FEEDBACK_ANSWER), **errors(*GUARDED, *BODY, 404, 503)},
    openapi_extra=json_body(FEEDBACK_BODY),
)
async def post_feedback(name: str, request: Request) -> Response:
    """Ground truth for earlier answers: ``{request_id, label[, ts_ms]}`` or a list of them."""
    context = context_of(request)
    context.runtime.served(name)  # 404 before reading the body
    feedback, log = context.feedback, context.prediction_log
    if feedback is None:
        raise Unavailable("feedback is off: this server keeps no prediction log")
    body = await read_json(request, context.max_body_bytes)
    if isinstance(body, list) and len(body) > MAX_LABELS_PER_REQUEST:
        raise HttpError(413, f"over {MAX_LABELS_PER_REQUEST} labels; send them in batches")
    labels = parse_feedback_json(body)  # InvalidData: 422 naming the item

    def store() -> dict[str, Any]:
        if log is not None:  # so labels for answers still queued match
            log.flush(timeout_s=5.0)
        return feedback.add(name, labels).to_dict()

    return json_response(await asyncio.to_thread(store))
