"""A job's story on one timeline: the lines of its job_log (created, submitted, each status seen,
each webhook received, retries, fallbacks, the end) and, after its event, each delivery with its
attempts, all in the order they happened."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from storage import Store
from storage.records import Attempt, Delivery, Job, JobLogEntry

# Deliveries of one event shown on the job's page; the rest are on the deliveries page.
DELIVERIES_SHOWN = 50


@dataclass
class Moment:
    at: float
    kind: str
    # ok, bad, wait or "" (neutral): the dot on the timeline.
    tone: str
    detail: dict[str, Any] = field(default_factory=dict)
    delivery: Delivery | None = None
    attempts: list[Attempt] = field(default_factory=list)


@dataclass
class Story:
    job: Job
    moments: list[Moment]
    event_id: str | None
    more_deliveries: bool


async def story(store: Store, job: Job) -> Story:
    log = await store.job_log(job.id)
    moments = [_moment(entry) for entry in log]
    event = await store.get_event_for_job(job.id) if job.terminal else None
    more = False
    if event is not None:
        page = await store.list_deliveries(event_id=event.id, limit=DELIVERIES_SHOWN)
        attempts = await store.delivery_attempts([delivery.seq for delivery in page.items])
        more = page.has_more
        moments += [
            Moment(
                at=delivery.created_at,
                kind="delivery",
                tone=_DELIVERY_TONE.get(delivery.status, ""),
                delivery=delivery,
                attempts=attempts[delivery.seq],
            )
            for delivery in reversed(page.items)
        ]
    # Stable: lines written at the same instant keep the order they were written in.
    moments.sort(key=lambda moment: moment.at)
    return Story(job, moments, None if event is None else event.id, more)


_DELIVERY_TONE = {"succeeded": "ok", "failed": "bad", "pending": "wait"}


def _moment(entry: JobLogEntry) -> Moment:
    detail = entry.detail
    tone = ""
    if entry.kind == "finished":
        tone = "ok" if detail.get("status") == "completed" else "bad"
    elif entry.kind == "webhook":
        tone = {"accepted": "ok", "rejected": "bad"}.get(detail.get("outcome", ""), "")
    elif entry.kind in ("retry", "fallback"):
        tone = "wait"
    return Moment(at=entry.at, kind=entry.kind, tone=tone, detail=detail)
