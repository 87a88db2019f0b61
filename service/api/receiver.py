"""Where providers report on jobs.

POST /hooks/{provider}/{token}: per-job callbacks; the signed token names the job.
POST /hooks/{provider}: account-level webhooks (OpenAI's project webhooks), one fixed URL; the job
is found by the provider job id in the body, so the signature is mandatory there.

What arrives is checked (token, then the provider's signature), persisted, and answered at once;
the worker applies it afterwards. A body is taken as the job's status only when its signature
verified; anything else merely makes the worker ask the provider. A provider's check of the URL
itself (MiniMax's challenge, `Provider.handshake`) is answered at once on a valid token.

Each webhook that names a job is told in the job's story: accepted, a duplicate of what is already
final, ignored, or rejected and why.
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
from storage.records import Job, JobNote


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
    try:
        trusted = await _verify(provider, request, body)
    except Unauthorized as exc:
        await _tell(request, job, "rejected", exc.message)
        raise
    if job.terminal or job.attempt_no != claim.attempt_no:
        return await _ignored(request, job)
    try:
        report: ProviderStatus | None = provider.parse_webhook(body)
    except TransientError:
        report = None
    known = job.provider_job_id
    if report is not None and known is not None and not names_job(known, report.provider_job_id):
        metrics.WEBHOOKS.labels(provider_name, "mismatch").inc()
        mismatch = WebhookMismatch("the webhook body is about another job")
        await _tell(request, job, "rejected", mismatch.message)
        raise mismatch
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
    if job is None or job.provider_job_id != report.provider_job_id:
        # Not ours: acknowledged so that it is not retried.
        metrics.WEBHOOKS.labels(provider.name, "ignored").inc()
        return JSONResponse({"received": True, "applied": False}, status_code=200)
    if job.terminal:
        return await _ignored(request, job)
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
    detail = {"outcome": "accepted", "signed": trusted, "provider": job.provider}
    if report is not None:
        detail |= {"status": report.status, "progress": report.progress}
    recorded = await context(request).store.add_webhook(
        job.id,
        job.provider,
        job.attempt_no,
        trusted,
        None if report is None else report.model_dump(mode="json"),
        body,
        time.time(),
        JobNote("webhook", detail),
    )
    if not recorded:  # the same report is already in: it can change nothing
        return await _ignored(request, job, "the same signed report already came")
    metrics.WEBHOOKS.labels(job.provider, "accepted").inc()
    return JSONResponse({"received": True}, status_code=202)


async def _ignored(request: Request, job: Job, repeated: str | None = None) -> Response:
    # A duplicate or a late report: acknowledged so the provider stops retrying.
    if repeated is not None:
        await _tell(request, job, "duplicate", repeated)
    elif job.terminal:
        await _tell(request, job, "duplicate", f"the job is already {job.status}")
    else:
        await _tell(request, job, "ignored", "it reports on an earlier attempt (a fallback ran)")
    metrics.WEBHOOKS.labels(job.provider, "ignored").inc()
    return JSONResponse({"received": True, "applied": False}, status_code=200)


async def _tell(request: Request, job: Job, outcome: str, why: str) -> None:
    note = JobNote("webhook", {"outcome": outcome, "why": why, "provider": job.provider})
    await context(request).store.add_job_note(job.id, note, time.time())
