"""What to do, as data, with a submission that may have reached its provider unanswered.

A submission is uncertain when its request may have been acted on but no answer came (a timeout
after sending, a lost connection, a 5xx: `UncertainError`), or when its worker stopped while
sending (the job still says "sending" when another worker takes it). Sending it again blindly
could pay for the video twice, so the next step depends on what the provider documents
(`Provider.reconciliation`):

    idempotency_key  send it again: the same reference goes as the idempotency key, so the
                     provider answers with the job the first request created, if it did;
    lookup           ask the provider for the job created with this reference, and adopt it;
                     when there is none, nothing was created, and it is sent again;
    webhook          wait: the provider's webhook to this attempt's receiver URL names its job
                     (service/jobs.py adopts it);
    none             wait too: nothing can tell.

Waiting ends after VIDEOHOOKS_SUBMIT_RECONCILE: the job fails with `submission_uncertain`, never
moving to a fallback model (that would pay twice as surely), or with
VIDEOHOOKS_RESUBMIT_UNCERTAIN=true it is sent again, accepting that the provider may run both.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from handlers.base import JobError, Reconciliation
from service.settings import Settings
from storage.records import Job


@dataclass(frozen=True)
class Resend:
    """Send again with the same reference (the provider's idempotency key)."""


@dataclass(frozen=True)
class Lookup:
    """Ask the provider for the job this reference created."""


@dataclass(frozen=True)
class Wait:
    """Nothing to do before `until` (a webhook may adopt the job meanwhile)."""

    until: float


@dataclass(frozen=True)
class Resubmit:
    """Send again as a new submission: the operator accepts paying twice."""


@dataclass(frozen=True)
class GiveUp:
    error: JobError


Step = Resend | Lookup | Wait | Resubmit | GiveUp


def next_step(
    job: Job, provider: str, reconciliation: Reconciliation, settings: Settings, now: float
) -> Step:
    """The next step for `job`, whose submission is unresolved (`Job.submission_unresolved`)."""
    if reconciliation == "idempotency_key":
        return Resend()
    if reconciliation == "lookup":
        return Lookup()
    started = job.submission_started_at or job.updated_at
    if now < started + settings.submit_reconcile:
        return Wait(started + settings.submit_reconcile)
    if settings.resubmit_uncertain:
        return Resubmit()
    return GiveUp(uncertain_error(job, provider, reconciliation, settings))


def uncertain_error(
    job: Job, provider: str, reconciliation: Reconciliation, settings: Settings
) -> JobError:
    started = job.submission_started_at or job.updated_at
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(started))
    if reconciliation == "webhook":
        why = f"no webhook from {provider} named its job within {_duration(settings)}"
    else:
        why = f"{provider} offers no way to look a submission up"
    message = (
        f"the submission to {provider} at {when} may have been accepted, but its answer never "
        f"came and {why}; check the {provider} console for a job created then (model "
        f"{job.model.split('/', 1)[1]!r}, reference {job.id}.{job.attempt_no}): if it exists "
        "it may have been billed, so look there before submitting this video again"
    )
    return JobError(code="submission_uncertain", message=message)


def _duration(settings: Settings) -> str:
    seconds = settings.submit_reconcile
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"
