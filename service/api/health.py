"""Liveness, readiness and metrics."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.api.common import context
from service.metrics import exposition, refresh_queue_gauges
from storage import StorageError


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    try:
        await context(request).store.ping()
    except StorageError as exc:
        return JSONResponse({"status": "unavailable", "reason": str(exc)}, status_code=503)
    return JSONResponse({"status": "ok"})


async def metrics(request: Request) -> Response:
    await refresh_queue_gauges(context(request).store)
    return Response(exposition(), media_type=CONTENT_TYPE_LATEST)
