"""POST/GET /v1/videos: jobs. Submission to the provider happens in the worker, never here."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any, cast

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from handlers import handler_class
from handlers.base import CONTENT_URL_PREFIX, ContentProvider, ProviderError, how_to_configure
from service.api.common import (
    MAX_OUTPUT_INDEX,
    after_param,
    choice_param,
    context,
    int_param,
    json_response,
    limit_param,
    list_response,
    read_json,
    validate,
)
from service.errors import IdempotencyConflict, InvalidRequest, NotFound, ProviderUnavailable
from service.models import CreateVideo, Video
from service.urls import UrlRejected
from storage.ids import new_id
from storage.records import JOB_STATUSES, Job, JobNote

MAX_IDEMPOTENCY_KEY = 255


async def create(request: Request) -> Response:
    ctx = context(request)
    payload = await read_json(request)
    body = validate(CreateVideo, payload)
    # Image URLs are fetched by providers (and by videohooks itself for APIFree's upload): they
    # are held to the same policy as the URLs deliveries go to.
    urls = {"callback_url": body.callback_url}
    if body.image_url is not None and not body.image_url.startswith("data:"):
        urls["image_url"] = body.image_url
    for field, url in urls.items():
        if url is not None:
            try:
                await ctx.url_policy.check(url)
            except UrlRejected as exc:
                raise InvalidRequest.field(field, str(exc)) from None
    _require_configured_provider(request, body)
    idempotency_key = _idempotency_key(request)
    now = time.time()
    job = Job(
        id=new_id("vid"),
        status="queued",
        model=body.model,
        provider=body.provider(),
        metadata=body.metadata,
        callback_url=body.callback_url,
        request=body.model_dump(exclude={"callback_url", "metadata"}),
        attempts=[
            {
                "provider": body.provider(),
                "model": body.model,
                "provider_job_id": None,
                "error": None,
            }
        ],
        idempotency_key=idempotency_key,
        request_hash=None if idempotency_key is None else _request_hash(payload),
        created_at=now,
        updated_at=now,
        deadline_at=now + ctx.settings.job_timeout,
        next_check_at=now,
    )
    note = JobNote(
        "created",
        {"model": body.model, "provider": job.provider, "fallback_models": body.fallback_models},
    )
    stored, created = await ctx.store.create_job(job, note)
    if not created:
        if stored.request_hash != job.request_hash:
            raise IdempotencyConflict(
                "this Idempotency-Key was used with a different request body",
                details={"video_id": stored.id},
            )
        # Visibly a replay: the original job, not a new one.
        return json_response(
            Video.from_job(stored, ctx.settings.public_url),
            200,
            headers={"idempotent-replayed": "true"},
        )
    return json_response(
        Video.from_job(stored, ctx.settings.public_url),
        202,
        headers={"location": f"/v1/videos/{stored.id}"},
    )


async def retrieve(request: Request) -> Response:
    ctx = context(request)
    return json_response(Video.from_job(await _get(request), ctx.settings.public_url))


async def list_(request: Request) -> Response:
    ctx = context(request)
    store = ctx.store
    status = choice_param(request, "status", JOB_STATUSES)
    after = await after_param(request, store.get_job, "video")
    page = await store.list_jobs(status, limit_param(request), after)
    return list_response(
        page.items,
        page.has_more,
        lambda job: Video.from_job(job, ctx.settings.public_url).model_dump_json(),
        lambda job: job.id,
    )


async def content(request: Request) -> Response:
    """An output's bytes. Plain output URLs redirect; outputs only the provider can serve (an
    authenticated download, inline base64) are streamed from it through the handler."""
    ctx = context(request)
    job = await _get(request)
    index = int_param(request, "output", 0, 0, MAX_OUTPUT_INDEX)
    if index >= len(job.outputs):
        raise NotFound(f"no such output: this video has {len(job.outputs)}")
    url = job.outputs[index]["url"]
    if not url.startswith(CONTENT_URL_PREFIX):
        return RedirectResponse(url, status_code=307)
    provider = ctx.provider(job.provider)
    if not hasattr(provider, "content") or job.provider_job_id is None:
        raise ProviderUnavailable(f"provider {job.provider!r} cannot serve this output here")
    provider = cast(ContentProvider, provider)
    stack = AsyncExitStack()
    try:
        opened = await stack.enter_async_context(
            provider.content(job.provider_job_id, int(url.removeprefix(CONTENT_URL_PREFIX)))
        )
    except ProviderError as exc:
        await stack.aclose()
        raise ProviderUnavailable(f"{job.provider}: {exc.message}") from None

    async def stream() -> AsyncIterator[bytes]:
        try:
            async for chunk in opened.chunks:
                yield chunk
        finally:
            await stack.aclose()

    return StreamingResponse(stream(), media_type=opened.content_type)


async def _get(request: Request) -> Job:
    job = await context(request).store.get_job(request.path_params["video_id"])
    if job is None:
        raise NotFound("no such video")
    return job


def _require_configured_provider(request: Request, body: CreateVideo) -> None:
    providers = context(request).providers
    chain = [body.model, *body.fallback_models]
    if any(
        model.split("/", 1)[0] in providers and providers[model.split("/", 1)[0]].configured
        for model in chain
    ):
        return
    name = body.provider()
    raise InvalidRequest.field(
        "model",
        f"provider {name!r} is not configured here (set {how_to_configure(handler_class(name))}; "
        f"see docs/providers/{name}.md)",
    )


def _request_hash(payload: dict[str, Any]) -> str:
    """What tells a replayed request from another under the same Idempotency-Key: canonical
    JSON, so the same body in another key order or spacing is the same request."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not 0 < len(key) <= MAX_IDEMPOTENCY_KEY:
        raise InvalidRequest.field(
            "Idempotency-Key", f"must be 1 to {MAX_IDEMPOTENCY_KEY} characters"
        )
    # Keys are scoped to the API key that sent them.
    return f"{request.scope['api_key_hash'][:16]}:{key}"
