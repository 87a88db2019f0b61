"""Where providers report on jobs.

POST /hooks/{provider}/{token}: per-job callbacks; the signed token names the job.
POST /hooks/{provider}: account-level webhooks (OpenAI's project webhooks), one fixed URL; the job
is found by the provider job id in the body, so the signature is mandatory there.

What arrives is checked (token, then the provider's signature), persisted, and answered at once;
the worker applies it afterwards. A body is taken as the job's status only when its signature
verified; anything else merely makes the worker ask the provider. A provider's check of the URL
itself (MiniMax's challenge, `Provider.handshake`) is answered at once on a valid token.
"""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from handlers.base import Provider, ProviderStatus, TransientError, WebhookRejected, names_job
from service import metrics
from service.api.common import context
from service.errors import ApiError, NotFound, Unauthorized
from service.tokens import InvalidToken
from storage.records import Job


class WebhookMismatch(ApiError):
    status, code = 400, "webhook_mismatch"


class UnreadableWebhook(ApiError):
    status, code = 400, "invalid_webhook"


async def receive(request: Request) -> Response:
    ctx = context(request)
    provider_name = request.path_params["provider"]
    try:
        claim = ctx.tokens.verify(request.path_params["token"])
    except InvalidToken:
        metrics.WEBHOOKS.labels(provider_name, "rejected").inc()
        raise Unauthorized("invalid receiver token") from None
    provider = ctx.provider(provider_name)
    if claim.provider != provider_name or provider is None:
        raise NotFound("no such receiver")
    body = await request.body()
    # A provider checking the URL (MiniMax's challenge) must be answered within seconds, while
    # the submission that handed it the URL may still be waiting for its own answer.
    if (answer := provider.handshake(body)) is not None:
        metrics.WEBHOOKS.labels(provider_name, "handshake").inc()
        return JSONResponse(answer)
    job = await ctx.store.get_job(claim.job_id)
    if job is None:
        raise NotFound("no such job")
    trusted = await _verify(provider, request, body)
    if job.terminal or job.attempt_no != claim.attempt_no:
        return _ignored(provider_name)
    try:
        report: ProviderStatus | None = provider.parse_webhook(body)
    except TransientError:
        report = None
    known = job.provider_job_id
    if report is not None and known is not None and not names_job(known, report.provider_job_id):
        metrics.WEBHOOKS.labels(provider_name, "mismatch").inc()
        raise WebhookMismatch("the webhook body is about another job")
    return await _accept(request, job, trusted, report, body)


async def receive_account(request: Request) -> Response:
    ctx = context(request)
    provider = ctx.provider(request.path_params["provider"])
    if provider is None or not getattr(provider, "account_webhooks", False):
        raise NotFound("no such receiver")
    body = await request.body()
    if not await _verify(provider, request, body):
        variable = f"VIDEOHOOKS_{provider.name.upper()}_WEBHOOK_SECRET"
        raise Unauthorized(f"account webhooks must be signed; set {variable}")
    try:
        report = provider.parse_webhook(body)
    except TransientError as exc:
        raise UnreadableWebhook(exc.message) from None
    job = await ctx.store.find_job(provider.name, report.provider_job_id)
    if job is None or job.terminal or job.provider_job_id != report.provider_job_id:
        return _ignored(
            provider.name
        )  # not ours, or already final: acknowledged so it is not retried
    return await _accept(request, job, True, report, body)


async def _verify(provider: Provider, request: Request, body: bytes) -> bool:
    try:
        return await provider.verify_webhook(request.headers, body)
    except WebhookRejected as exc:
        metrics.WEBHOOKS.labels(provider.name, "rejected").inc()
        raise Unauthorized(exc.message) from None


async def _accept(
    request: Request, job: Job, trusted: bool, report: ProviderStatus | None, body: bytes
) -> Response:
    recorded = await context(request).store.add_webhook(
        job.id,
        job.provider,
        job.attempt_no,
        trusted,
        None if report is None else report.model_dump(mode="json"),
        body,
        time.time(),
    )
    if not recorded:  # the same report is already in: it can change nothing
        return _ignored(job.provider)
    metrics.WEBHOOKS.labels(job.provider, "accepted").inc()
    return JSONResponse({"received": True}, status_code=202)


def _ignored(provider: str) -> Response:
    # A duplicate or a late report: acknowledged so the provider stops retrying.
    metrics.WEBHOOKS.labels(provider, "ignored").inc()
    return JSONResponse({"received": True, "applied": False}, status_code=200)
