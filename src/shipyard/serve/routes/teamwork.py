"""``/reviews``, ``/comments``, ``/activity``: four-eyes promotion and discussion over HTTP.

Thin adapters over ``registry.reviews.ReviewService``, ``track.comments.CommentService`` and
``store.activity``: the auth guard has already checked the route's action (the permission
table), and the services check the rest (four eyes, the rule's roles, staleness), so HTTP and
CLI answer alike: a requester approving their own request gets 403, a stale or closed request
409, an unknown one 404, a malformed body or query 422 naming the field. Without a teamwork
context (a server built without a workspace) these routes answer 503.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import TYPE_CHECKING, Any, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shipyard.core.errors import InvalidArgument, Unavailable
from shipyard.serve.bodies import json_response, read_json
from shipyard.serve.context import context_of
from shipyard.serve.openapi import BODY, GUARDED, errors, json_answer, json_body, model_schema

if TYPE_CHECKING:
    from shipyard.serve.context import Teamwork

router = APIRouter()
_Model = TypeVar("_Model", bound=BaseModel)

_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)
_OBJECT: dict[str, Any] = {"type": "object"}


class PromotionAsk(BaseModel):
    """``POST /reviews``."""

    model_config = _STRICT
    model: str = Field(min_length=1, max_length=100)
    version: int = Field(ge=1)
    alias: str = Field("production", min_length=1, max_length=100)
    reason: str | None = Field(None, max_length=2000)
    margin: float = Field(0.0, ge=0, allow_inf_nan=False)


class Decision(BaseModel):
    """``POST /reviews/{id}/approve`` (comment optional) and ``/reject`` (comment required)."""

    model_config = _STRICT
    comment: str | None = Field(None, max_length=10_000)


class CommentAsk(BaseModel):
    """``POST /comments``."""

    model_config = _STRICT
    kind: str = Field(min_length=1, max_length=16)
    target: str = Field(min_length=1, max_length=250)
    body: str = Field(min_length=1, max_length=20_000)


@router.get("/reviews", responses=errors(*GUARDED, 422, 503))
async def list_reviews(request: Request) -> Response:
    """Promotion requests, newest first (``?model=&alias=&state=&limit=``)."""
    teamwork = _teamwork(request)
    query = request.query_params
    _only(query, {"model", "alias", "state", "limit"})
    found = await asyncio.to_thread(
        teamwork.reviews.list,
        model=query.get("model"),
        alias=query.get("alias"),
        state=query.get("state"),
        limit=_int(query.get("limit"), "limit", 200),
    )
    return json_response({"requests": [dataclasses.asdict(r) for r in found]})


@router.post(
    "/reviews",
    responses={
        201: json_answer(_OBJECT, "The request, opened"),
        **errors(*GUARDED, *BODY, 404, 503),
    },
    openapi_extra=json_body(model_schema(PromotionAsk)),
)
async def request_promotion(request: Request) -> Response:
    """Ask for a reviewed promotion; 201 with the request, or 200 when the gate refused."""
    teamwork, ask = _teamwork(request), await _body(request, PromotionAsk)
    result = await asyncio.to_thread(
        teamwork.reviews.request_promotion,
        ask.model,
        ask.version,
        actor=request.state.identity,
        alias=ask.alias,
        reason=ask.reason,
        margin=ask.margin,
    )
    answer = {
        "action": result.action,
        "request_id": result.request_id,
        "summary": result.describe(),
        "verdict": None if result.verdict is None else result.verdict.to_dict(),
    }
    return json_response(answer, status_code=201 if result.request_id else 200)


@router.get("/reviews/{request_id}", responses=errors(*GUARDED, 404, 422, 503))
async def show_review(request_id: str, request: Request) -> Response:
    """One request with its evidence, decisions, approvals so far and staleness."""
    detail = await asyncio.to_thread(_teamwork(request).reviews.detail, request_id)
    return json_response(dataclasses.asdict(detail))


@router.post(
    "/reviews/{request_id}/approve",
    responses=errors(*GUARDED, *BODY, 404, 409, 503),
    openapi_extra=json_body(model_schema(Decision)),
)
async def approve(request_id: str, request: Request) -> Response:
    """Approve (403 for the requester); the last approval needed moves the alias."""
    teamwork, decision = _teamwork(request), await _body(request, Decision)
    outcome = await asyncio.to_thread(
        teamwork.reviews.approve, request_id, actor=request.state.identity, comment=decision.comment
    )
    return json_response(_outcome(outcome))


@router.post(
    "/reviews/{request_id}/reject",
    responses=errors(*GUARDED, *BODY, 404, 409, 503),
    openapi_extra=json_body(model_schema(Decision)),
)
async def reject(request_id: str, request: Request) -> Response:
    """Reject with a comment (required); the alias stays."""
    teamwork, decision = _teamwork(request), await _body(request, Decision)
    outcome = await asyncio.to_thread(
        teamwork.reviews.reject,
        request_id,
        actor=request.state.identity,
        comment=decision.comment or "",
    )
    return json_response(_outcome(outcome))


@router.get("/comments", responses=errors(*GUARDED, 404, 422, 503))
async def list_comments(request: Request) -> Response:
    """Comments on ``?kind=&target=``, oldest first, raw and as sanitized HTML."""
    from shipyard.track.markdown import render_markdown

    teamwork = _teamwork(request)
    query = request.query_params
    _only(query, {"kind", "target"})
    kind, target = query.get("kind"), query.get("target")
    if not kind or not target:
        raise InvalidArgument("query: kind and target are required (e.g. ?kind=run&target=ID)")
    found = await asyncio.to_thread(
        teamwork.comments.for_target, kind, target, actor=request.state.identity
    )
    comments = [{**dataclasses.asdict(c), "html": render_markdown(c.body)} for c in found]
    return json_response({"comments": comments})


@router.post(
    "/comments",
    responses={
        201: json_answer(_OBJECT, "The comment, written"),
        **errors(*GUARDED, *BODY, 404, 503),
    },
    openapi_extra=json_body(model_schema(CommentAsk)),
)
async def add_comment(request: Request) -> Response:
    """Comment on a run, dataset, model version (``name:N``) or review; 201."""
    teamwork, ask = _teamwork(request), await _body(request, CommentAsk)
    comment = await asyncio.to_thread(
        teamwork.comments.add, ask.kind, ask.target, ask.body, actor=request.state.identity
    )
    return json_response(dataclasses.asdict(comment), status_code=201)


@router.get("/activity", responses=errors(*GUARDED, 422, 503))
async def activity(request: Request) -> Response:
    """What changed recently, newest first (``?since_ms=&limit=``)."""
    from shipyard.store.activity import recent_activity

    teamwork = _teamwork(request)
    query = request.query_params
    _only(query, {"since_ms", "limit"})
    items = await asyncio.to_thread(
        recent_activity,
        teamwork.store,
        since_ms=_int(query.get("since_ms"), "since_ms", 0),
        limit=_int(query.get("limit"), "limit", 50),
    )
    return json_response({"items": [dataclasses.asdict(i) for i in items]})


def _teamwork(request: Request) -> Teamwork:
    teamwork = context_of(request).teamwork
    if teamwork is None:
        raise Unavailable("reviews and comments are off: this server was built without a store")
    return teamwork


async def _body(request: Request, model: type[_Model]) -> _Model:
    body = await read_json(request, context_of(request).max_body_bytes)
    try:
        return model.model_validate(body)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
            for err in e.errors()[:5]
        )
        raise InvalidArgument(f"invalid body: {problems}") from e


def _only(query: Any, allowed: set[str]) -> None:
    extra = sorted(set(query.keys()) - allowed)
    if extra:
        raise InvalidArgument(f"unknown query parameter(s) {extra}; allowed: {sorted(allowed)}")


def _int(text: str | None, name: str, default: int) -> int:
    if text is None:
        return default
    if not text.isdigit() or len(text) > 15:
        raise InvalidArgument(f"query: {name} must be a non-negative integer, got {text[:30]!r}")
    return int(text)


def _outcome(outcome: Any) -> dict[str, Any]:
    promotion = outcome.promotion
    return {
        "request": dataclasses.asdict(outcome.request),
        "decision": dataclasses.asdict(outcome.decision),
        "moved": None if promotion is None else promotion.moved,
        "summary": outcome.describe(),
    }
