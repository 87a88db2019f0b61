"""Drives jobs through their state machine: submit, poll, apply what webhooks and polls report,
fall back to the next model when an attempt fails, and turn a terminal status into the job's one
event with its deliveries.

A provider job is paid for once: a submission is recorded as under way before the provider is
called, and one that may have reached the provider unanswered is reconciled, never sent again
blindly (service/reconcile.py says how).

The store enforces the rules (forward-only status, one terminal transition); this module decides
what to ask of it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from typing import Any

from handlers import handler_class, implemented
from handlers.base import (
    JobError,
    PermanentError,
    Provider,
    ProviderStatus,
    Reconciliation,
    SubmitRequest,
    TransientError,
    UncertainError,
    how_to_configure,
    names_job,
)
from service import metrics, reconcile
from service.context import Context
from service.models import Video
from service.retry import Backoff, PollPolicy
from storage.ids import new_id
from storage.records import (
    Event,
    InboundWebhook,
    Job,
    JobFinal,
    JobNote,
    JobProgress,
    NewDelivery,
    Subscription,
)

log = logging.getLogger("videohooks.jobs")

GENERATION_FAILED = JobError(code="generation_failed", message="the provider reported failure")


def event_object(event_id: str, event_type: str, created_at: float, video: Video) -> dict[str, Any]:
    """The Event exactly as every subscriber receives it."""
    return {
        "id": event_id,
        "object": "event",
        "type": event_type,
        "created_at": int(created_at),
        "data": video.model_dump(mode="json"),
    }


def sample_event(event_type: str, public_url: str | None) -> dict[str, Any]:
    """A realistic event of `event_type`, for platforms that ask for sample data before any event
    exists (Zapier's and n8n's trigger setup): a made-up simulator job, finished and turned into
    its event by the code that builds real ones."""
    now = time.time()
    model = "simulator/default"
    status = event_type.removeprefix("video.")
    job = Job(
        id=new_id("vid"),
        status=status,
        model=model,
        provider="simulator",
        provider_job_id=new_id("sim"),
        progress=100 if status == "completed" else 40,
        metadata={"user_id": "42"},
        request={"model": model, "prompt": "a fox in the snow", "fallback_models": []},
        attempts=[{"provider": "simulator", "model": model, "provider_job_id": None}],
        created_at=now - 42,
        updated_at=now,
        completed_at=now,
        deadline_at=now,
    )
    sim_id = job.provider_job_id
    job.attempts[0]["provider_job_id"] = sim_id
    if status == "completed":
        url = f"{public_url or 'https://videohooks.example'}/simulator/files/{sim_id}.mp4"
        job.outputs = [{"url": url, "content_type": "video/mp4"}]
    else:
        job.error = GENERATION_FAILED.model_dump()
        job.attempts[0]["error"] = job.error
    return event_object(new_id("evt"), event_type, now, Video.from_job(job, public_url))


def matches(filter_: dict[str, str] | None, event: dict[str, Any]) -> bool:
    """Every dot path of the filter names a field of the event equal to its value; a non-string
    field is compared by its JSON text."""
    for path, expected in (filter_ or {}).items():
        value: Any = event
        for part in path.split("."):
            if not isinstance(value, dict) or part not in value:
                return False
            value = value[part]
        if (value if isinstance(value, str) else json.dumps(value)) != expected:
            return False
    return True


def route_event(
    job: Job, event: dict[str, Any], subscriptions: Sequence[Subscription]
) -> list[NewDelivery]:
    """One delivery per subscription or hook that wants the event (skipped, to recover later,
    when it is disabled), and one to the job's callback_url. A hook's `*` wants every event."""
    deliveries = [
        NewDelivery(
            subscription_id=subscription.id,
            url=subscription.url,
            status="pending" if subscription.status == "active" else "skipped",
        )
        for subscription in subscriptions
        if (event["type"] in subscription.events or "*" in subscription.events)
        and matches(subscription.filter, event)
    ]
    if job.callback_url:
        deliveries.append(NewDelivery(subscription_id=None, url=job.callback_url))
    return deliveries


class JobEngine:
    def __init__(self, context: Context, worker_id: str) -> None:
        self.context = context
        self.store = context.store
        self.worker_id = worker_id
        settings = context.settings
        self.poll_policy = PollPolicy(minimum=settings.poll_min, maximum=settings.poll_max)
        self.submit_backoff = Backoff(first=settings.poll_min, cap=300.0)

    # -- claimed work -----------------------------------------------------------------------

    async def handle(self, job: Job) -> None:
        """One step for a claimed job: time it out, submit it, reconcile it, or poll it."""
        if time.time() >= job.deadline_at:
            hours = self.context.settings.job_timeout / 3600
            error = JobError(code="timeout", message=f"no terminal status within {hours:g} h")
            await self.finish(job, "failed", error=error)
        elif job.submission_unresolved:
            await self.reconcile(job)
        elif job.provider_job_id is None:
            await self.submit(job)
        else:
            await self.poll(job)

    async def submit(self, job: Job, fresh: bool = True) -> None:
        """Sends the job's current attempt. A `fresh` submission is the first that may reach the
        provider (or, opted in, one that gave up on an uncertain one); otherwise an earlier one
        may have, and this one repeats it with the same reference."""
        provider = await self.configured(job)
        if provider is None:
            return
        callback_url = self.callback_url(job, provider)
        if not await self.store.begin_submission(job, self.worker_id, time.time()):
            return  # the claim was lost: another worker has the job
        try:
            report = await provider.submit(self.submit_request(job, callback_url))
        except TransientError as exc:
            uncertain = isinstance(exc, UncertainError)
            result = "uncertain" if uncertain else "transient_error"
            metrics.SUBMISSIONS.labels(job.provider, result).inc()
            delay = self.submit_backoff.delay(job.check_count + 1, exc.retry_after)
            await self.unanswered(job, exc, uncertain or not fresh, delay)
            return
        except PermanentError as exc:
            metrics.SUBMISSIONS.labels(job.provider, "rejected").inc()
            await self.attempt_failed(job, JobError(code=exc.code, message=exc.message))
            return
        reconciled = not fresh and job.submission_unresolved
        metrics.SUBMISSIONS.labels(job.provider, "reconciled" if reconciled else "accepted").inc()
        log.info(
            "submitted",
            extra={"job_id": job.id, "provider": job.provider, "webhook": bool(callback_url)},
        )
        await self.record(job, provider, report, webhook=callback_url is not None)

    async def reconcile(self, job: Job) -> None:
        """The job's submission may have reached the provider unanswered: find out what the
        provider did, or wait, or give up, as its documentation allows."""
        provider = await self.configured(job)
        if provider is None:
            return
        if job.submission_state == "sending":
            # Its worker stopped (or lost the claim) between calling the provider and recording
            # the answer.
            metrics.SUBMISSIONS.labels(job.provider, "uncertain").inc()
            log.warning("a submission was under way when its worker stopped", extra=_ids(job))
        settings, now = self.context.settings, time.time()
        step = reconcile.next_step(
            job, job.provider, self.reconciliation(job, provider), settings, now
        )
        match step:
            case reconcile.Resend():
                await self.submit(job, fresh=False)
            case reconcile.Lookup():
                await self.look_up(job, provider)
            case reconcile.Wait(until=until):
                next_check = min(until, job.deadline_at)
                await self.store.submission_unanswered(
                    job, self.worker_id, True, next_check, job.check_count + 1
                )
            case reconcile.Resubmit():
                log.warning("sending an uncertain submission again, as configured", extra=_ids(job))
                await self.submit(job)
            case reconcile.GiveUp(error=error):
                log.warning("giving up on an uncertain submission", extra=_ids(job))
                await self.finish(job, "failed", error=error)

    async def look_up(self, job: Job, provider: Provider) -> None:
        callback_url = self.callback_url(job, provider)
        try:
            found = await provider.find_submission(self.submit_request(job, callback_url))
        except TransientError as exc:
            delay = self.submit_backoff.delay(job.check_count + 1, exc.retry_after)
            await self.unanswered(job, exc, True, delay)
            return
        except PermanentError as exc:
            await self.attempt_failed(job, JobError(code=exc.code, message=exc.message))
            return
        if found is not None:
            metrics.SUBMISSIONS.labels(job.provider, "reconciled").inc()
            log.info("found the uncertain submission's provider job", extra=_ids(job))
            await self.record(job, provider, found, webhook=callback_url is not None)
            return
        # The provider has no job for this reference. A request still being handled could yet
        # create one, so a new one goes only once the last could no longer be answered.
        settled = (job.submission_started_at or 0.0) + self.context.settings.provider_timeout
        if time.time() < settled:
            await self.store.submission_unanswered(
                job, self.worker_id, True, settled, job.check_count + 1
            )
            return
        await self.submit(job)

    async def record(
        self, job: Job, provider: Provider, report: ProviderStatus, webhook: bool
    ) -> None:
        """Records the provider job a submission created (and applies a terminal report)."""
        now = time.time()
        attempts = _with_attempt(job, provider_job_id=report.provider_job_id)
        first_check = (
            self.context.settings.webhook_grace
            if webhook or provider.account_webhooks_expected
            else self.poll_policy.first_delay()
        )
        progress = JobProgress(
            report.status if not report.terminal else "in_progress",
            report.progress,
            report.provider_job_id,
        )
        note = JobNote(
            "submitted",
            {
                "attempt": job.attempt_no,
                "provider": job.provider,
                "model": job.model,
                "provider_job_id": report.provider_job_id,
                "status": report.status,
                "progress": report.progress,
                "webhook": webhook or provider.account_webhooks_expected,
            },
        )
        recorded = await self.store.record_submission(
            job,
            self.worker_id,
            progress,
            attempts,
            now,
            min(now + first_check, job.deadline_at),
            note,
        )
        if not recorded:
            # Another provider job was recorded meanwhile, or the job moved on: look again.
            await self.store.reschedule_job(job.id, self.worker_id, now, job.check_count)
            return
        if report.terminal:
            job = job.model_copy(
                update={
                    "provider_job_id": report.provider_job_id,
                    "attempts": attempts,
                    "submission_state": None,
                }
            )
            await self.apply(job, report, source="submission")

    async def unanswered(
        self, job: Job, exc: TransientError, uncertain: bool, delay: float
    ) -> None:
        log.warning(
            "provider call failed, will retry",
            extra=_ids(job)
            | {"error": exc.message, "retry_in_s": round(delay, 2), "uncertain": uncertain},
        )
        next_check = min(time.time() + delay, job.deadline_at)
        note = JobNote(
            "retry",
            {
                "step": "submission",
                "error": exc.message,
                "retry_in_s": round(delay, 2),
                "uncertain": uncertain,
            },
        )
        await self.store.submission_unanswered(
            job, self.worker_id, uncertain, next_check, job.check_count + 1, note
        )

    async def configured(self, job: Job) -> Provider | None:
        """The job's provider, or None after failing the attempt because it is not configured."""
        provider = self.context.provider(job.provider)
        if provider is not None and provider.configured:
            return provider
        metrics.SUBMISSIONS.labels(job.provider, "not_configured").inc()
        found = handler_class(job.provider) if job.provider in implemented() else None
        hint = f" (set {how_to_configure(found)})" if found is not None else ""
        message = f"provider {job.provider!r} is not configured{hint}"
        await self.attempt_failed(job, JobError(code="provider_not_configured", message=message))
        return None

    def callback_url(self, job: Job, provider: Provider) -> str | None:
        if not provider.webhooks:
            return None
        return self.context.receiver_url(job.provider, job.id, job.attempt_no)

    def reconciliation(self, job: Job, provider: Provider) -> Reconciliation:
        # Without a receiver URL no webhook can come: waiting for one is waiting for nothing.
        if provider.reconciliation == "webhook" and self.callback_url(job, provider) is None:
            return "none"
        return provider.reconciliation

    async def poll(self, job: Job) -> None:
        provider = self.context.provider(job.provider)
        if provider is None:
            message = f"provider {job.provider!r} is no longer configured"
            await self.attempt_failed(
                job, JobError(code="provider_not_configured", message=message)
            )
            return
        assert job.provider_job_id is not None
        try:
            report = await provider.fetch_status(job.provider_job_id)
        except TransientError as exc:
            metrics.POLLS.labels(job.provider, "transient_error").inc()
            delay = self.poll_policy.next_delay(job.check_count, 0.0, retry_after=exc.retry_after)
            await self.retry_later(job, exc, delay, "poll")
            return
        except PermanentError as exc:
            metrics.POLLS.labels(job.provider, "permanent_error").inc()
            await self.attempt_failed(job, JobError(code="provider_error", message=exc.message))
            return
        metrics.POLLS.labels(job.provider, report.status).inc()
        await self.apply(job, report, source="poll")

    async def retry_later(self, job: Job, exc: TransientError, delay: float, step: str) -> None:
        log.warning(
            "provider call failed, will retry",
            extra={
                "job_id": job.id,
                "provider": job.provider,
                "error": exc.message,
                "retry_in_s": round(delay, 2),
            },
        )
        next_check = min(time.time() + delay, job.deadline_at)
        note = JobNote("retry", {"step": step, "error": exc.message, "retry_in_s": round(delay, 2)})
        await self.store.reschedule_job(
            job.id, self.worker_id, next_check, job.check_count + 1, note
        )

    # -- observations -----------------------------------------------------------------------

    async def apply(self, job: Job, report: ProviderStatus, source: str = "webhook") -> None:
        """Applies one observation of the provider job to our job; `source` (poll, webhook,
        submission) is told in the job's story."""
        if report.status == "completed":
            outputs = [o.model_dump() for o in report.outputs]
            await self.finish(job, "completed", outputs=outputs, source=source)
        elif report.status == "failed":
            error = report.error or GENERATION_FAILED
            await self.attempt_failed(job, error, source)
        elif source == "poll":
            now = time.time()
            delay = self.poll_policy.next_delay(
                job.check_count,
                now - (job.submitted_at or job.created_at),
                progress=report.progress,
                eta=report.eta_s,
            )
            await self.store.record_progress(
                job.id,
                job.attempt_no,
                JobProgress(report.status, report.progress),
                now,
                worker=self.worker_id,
                next_check_at=min(now + delay, job.deadline_at),
                note=_observed(report, source),
            )
        else:
            progress = JobProgress(report.status, report.progress, report.provider_job_id)
            await self.store.record_progress(
                job.id, job.attempt_no, progress, time.time(), note=_observed(report, source)
            )

    async def attempt_failed(self, job: Job, error: JobError, source: str = "worker") -> None:
        """The current attempt failed: move on to the next fallback model, or fail the job. Not
        while its submission is unresolved: a fallback would pay again for what the provider may
        be making."""
        attempts = _with_attempt(job, error=error.model_dump())
        chain = [job.request["model"], *job.request.get("fallback_models", [])]
        if job.attempt_no + 1 >= len(chain) or job.submission_unresolved:
            await self.finish(job, "failed", error=error, attempts=attempts, source=source)
            return
        model = chain[job.attempt_no + 1]
        provider = model.split("/", 1)[0]
        attempts.append(
            {"provider": provider, "model": model, "provider_job_id": None, "error": None}
        )
        note = JobNote(
            "fallback",
            {"from": job.model, "to": model, "error": error.model_dump(), "source": source},
        )
        switched = await self.store.switch_attempt(
            job.id, job.attempt_no, model, provider, attempts, time.time(), note
        )
        if switched:
            log.info(
                "falling back", extra={"job_id": job.id, "model": model, "error": error.message}
            )

    async def finish(
        self,
        job: Job,
        status: str,
        outputs: list[dict[str, Any]] | None = None,
        error: JobError | None = None,
        attempts: list[dict[str, Any]] | None = None,
        source: str = "worker",
    ) -> bool:
        now = time.time()
        final = JobFinal(
            status=status,
            progress=100 if status == "completed" else job.progress,
            outputs=outputs or [],
            error=None if error is None else error.model_dump(),
            attempts=attempts if attempts is not None else job.attempts,
            completed_at=now,
            unsubmitted=job.submission_unresolved,
        )
        finished_job = job.model_copy(
            update={
                "status": status,
                "progress": final.progress,
                "outputs": final.outputs,
                "error": final.error,
                "attempts": final.attempts,
                "updated_at": now,
                "completed_at": now,
            }
        )
        event_type = f"video.{status}"
        event_id = new_id("evt")
        video = Video.from_job(finished_job, self.context.settings.public_url)
        body = event_object(event_id, event_type, now, video)
        event = Event(
            id=event_id,
            type=event_type,
            job_id=job.id,
            payload=json.dumps(body, separators=(",", ":")),
            created_at=now,
        )
        note = JobNote(
            "finished",
            {"status": status, "error": final.error, "event_id": event_id, "source": source},
        )
        finished = await self.store.finish_job(
            job.id,
            job.attempt_no,
            final,
            event,
            lambda subscriptions: route_event(finished_job, body, subscriptions),
            note,
        )
        if finished:
            metrics.EVENTS.labels(event_type).inc()
            log.info(
                "job finished", extra={"job_id": job.id, "status": status, "event_id": event_id}
            )
        return finished

    # -- received webhooks ------------------------------------------------------------------

    async def process_webhook(self, hook: InboundWebhook) -> bool:
        """Applies one received webhook; False when it must wait and be tried again shortly."""
        job = await self.store.get_job(hook.job_id)
        if job is None or job.terminal or job.attempt_no != hook.attempt_no:
            return True
        if job.provider_job_id is None:
            return await self.adopt(job, hook)
        if hook.trusted and hook.report is not None:
            report = ProviderStatus.model_validate(hook.report)
            if names_job(job.provider_job_id, report.provider_job_id) and not report.refetch:
                await self.apply(
                    job, report.model_copy(update={"provider_job_id": job.provider_job_id})
                )
                return True
        # Unsigned or unreadable: only a reason to ask the provider now.
        await self.store.poke_job(job.id, time.time())
        return True

    async def adopt(self, job: Job, hook: InboundWebhook) -> bool:
        """A webhook on this attempt's receiver URL before its submission was recorded (the
        answer is late, lost, or was never going to come): the provider job it names is this
        attempt's, since only the provider holds the URL. A signed body is taken as it is; an
        unsigned one only names the job, whose status is asked of the provider."""
        provider = self.context.provider(job.provider)
        if not job.submission_unresolved:
            return False  # the submission is not even under way: wait for it
        if provider is None or hook.report is None:
            return True  # nothing here names the provider's job
        reported = ProviderStatus.model_validate(hook.report)
        request = self.submit_request(job, self.callback_url(job, provider))
        provider_job_id = provider.adopted_job_id(request, reported.provider_job_id)
        if hook.trusted and not reported.refetch:
            report = reported.model_copy(update={"provider_job_id": provider_job_id})
        else:
            try:
                report = await provider.fetch_status(provider_job_id)
            except TransientError:
                return False
            except PermanentError:
                return True  # the provider knows no such job: the body was not about ours
        if job.submission_state == "uncertain":
            metrics.SUBMISSIONS.labels(job.provider, "reconciled").inc()
        log.info("a webhook named the submission's provider job", extra=_ids(job))
        await self.record(job, provider, report, webhook=True)
        return True

    def submit_request(self, job: Job, callback_url: str | None) -> SubmitRequest:
        request = dict(job.request)
        del request["model"], request["fallback_models"]
        return SubmitRequest(
            job_id=job.id,
            model=job.model.split("/", 1)[1],
            metadata=job.metadata,
            callback_url=callback_url,
            reference=f"{job.id}.{job.attempt_no}",
            **request,
        )


def _observed(report: ProviderStatus, source: str) -> JobNote:
    detail = {"status": report.status, "progress": report.progress, "source": source}
    return JobNote("status", detail)


def _ids(job: Job) -> dict[str, str]:
    return {"job_id": job.id, "provider": job.provider}


def _with_attempt(job: Job, **changes: Any) -> list[dict[str, Any]]:
    attempts = [dict(attempt) for attempt in job.attempts]
    attempts[job.attempt_no] |= changes
    return attempts
