"""``GET /metrics``: Prometheus exposition of request, latency, batching and log series."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shipyard.serve.context import context_of
from shipyard.serve.openapi import GUARDED, errors

router = APIRouter()


@router.get("/metrics", response_class=PlainTextResponse, responses=errors(*GUARDED))
async def prometheus(request: Request) -> Response:
    """Prometheus exposition of request, latency, batching and prediction-log series."""
    context = context_of(request)
    metrics, log = context.metrics, context.prediction_log
    if log is not None:
        metrics.log_depth.set(log.depth)
        metrics.log_dropped.set(log.dropped)
    metrics.swaps.set(context.runtime.swaps)
    health = context.runtime.health
    metrics.store_degraded.set(1 if health.degraded else 0)
    metrics.store_failures.set(health.failures)
    metrics.stale_identities.set(health.stale_identities)
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
