"""``/admin``: what a server serves, and its traffic policies changed at run time (audited)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request

from shipyard.core.errors import Conflict, InvalidArgument, NotFound
from shipyard.security.permissions import Action
from shipyard.serve.bodies import read_json
from shipyard.serve.context import context_of
from shipyard.serve.openapi import BODY, GUARDED, POLICY_BODY, errors, json_body
from shipyard.serve.traffic import ServedModelSpec

router = APIRouter()


@router.get("/admin/models", responses=errors(*GUARDED))
async def admin_models(request: Request) -> dict[str, Any]:
    """Every served name: loaded versions, policy and canary state."""
    return context_of(request).runtime.describe()


@router.put(
    "/admin/models/{name}/policy",
    responses=errors(*GUARDED, *BODY, 404, 409),
    openapi_extra=json_body(POLICY_BODY),
)
async def set_policy(name: str, request: Request) -> dict[str, Any]:
    """Replace a served name's traffic policy at run time (aliases must already be loaded)."""
    context = context_of(request)
    runtime = context.runtime
    body = await read_json(request, context.max_body_bytes)
    router_ = runtime.routers.get(name)
    if router_ is None:
        raise NotFound(f"no model named {name!r} is served here")
    try:
        spec = ServedModelSpec.model_validate({**router_.spec.model_dump(), "policy": body})
    except ValueError as e:
        raise InvalidArgument(f"invalid policy: {e}") from e
    missing = [a for a in spec.aliases() if (name, a) not in runtime.slots]
    if missing:
        raise Conflict(
            f"alias(es) {', '.join(missing)} are not loaded; restart with them in deploy:"
        )
    runtime.set_policy(name, spec)
    await asyncio.to_thread(
        context.auth.record,
        request.state.identity,
        Action.SERVE_POLICY,
        name,
        detail={"policy": body},
    )
    described: dict[str, Any] = runtime.describe()[name]
    return described
