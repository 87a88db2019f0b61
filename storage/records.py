"""The rows the store reads and writes, as typed records.

Storage knows no provider: provider-shaped values (outputs, errors, the original request) are kept
as JSON and given their types by the service.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field

T = TypeVar("T")

JOB_STATUSES = ("queued", "in_progress", "completed", "failed")
DELIVERY_STATUSES = ("pending", "succeeded", "failed", "skipped", "cancelled")


class Job(BaseModel):
    id: str
    status: str
    model: str
    provider: str
    provider_job_id: str | None = None
    progress: int = 0
    outputs: list[dict[str, Any]] = Field(default_factory=list)
    error: dict[str, Any] | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    callback_url: str | None = None
    request: dict[str, Any] = Field(default_factory=dict)
    attempts: list[dict[str, Any]] = Field(default_factory=list)
    attempt_no: int = 0
    idempotency_key: str | None = None
    request_hash: str | None = None
    created_at: float
    updated_at: float
    completed_at: float | None = None
    deadline_at: float
    next_check_at: float | None = None
    check_count: int = 0
    submitted_at: float | None = None
    claimed_by: str | None = None
    claimed_until: float | None = None
    # A submission of attempt `submission_attempt` began at `submission_started_at` and its
    # outcome is not recorded: "sending" (under way, or its worker died) or "uncertain" (no
    # answer came). See `submission_unresolved`.
    submission_state: str | None = None
    submission_attempt: int | None = None
    submission_started_at: float | None = None

    @property
    def terminal(self) -> bool:
        return self.status in ("completed", "failed")

    @property
    def submission_unresolved(self) -> bool:
        """A submission of the current attempt may have reached the provider, and no provider
        job is recorded for it: sending it again could pay for a second job."""
        return (
            self.provider_job_id is None
            and self.submission_state is not None
            and self.submission_attempt == self.attempt_no
        )


class Subscription(BaseModel):
    id: str
    # "subscription", or "hook": a REST hook (the Zapier convention), removed on 410 Gone.
    kind: str = "subscription"
    url: str
    events: list[str]
    description: str | None = None
    status: str = "active"
    secret: str
    filter: dict[str, str] | None = None
    created_at: float
    updated_at: float
    disabled_reason: str | None = None
    # The first failed attempt since the last success; None while the subscriber is healthy.
    failing_since: float | None = None
    # Deliveries are signed with this one too until it expires (secret rotation).
    previous_secret: str | None = None
    previous_secret_expires_at: float | None = None
    max_in_flight: int | None = None
    rate_limit: float | None = None


class ApiKey(BaseModel):
    id: str
    # SHA-256 of the key, hex: the key itself is never stored.
    hash: str
    name: str | None = None
    # The key's first characters, to recognise it by (None for keys made before they were kept).
    prefix: str | None = None
    created_at: float
    last_used_at: float | None = None
    revoked_at: float | None = None


class Event(BaseModel):
    id: str
    type: str
    job_id: str
    # The exact JSON delivered to subscribers: the Event object with its `data`.
    payload: str
    created_at: float


class Delivery(BaseModel):
    seq: int
    id: str
    event_id: str
    subscription_id: str | None
    url: str
    status: str
    attempt_count: int = 0
    next_attempt_at: float | None = None
    last_status_code: int | None = None
    last_error: str | None = None
    created_at: float
    updated_at: float
    delivered_at: float | None = None


class Attempt(BaseModel):
    attempted_at: float
    status_code: int | None
    duration_ms: float
    error: str | None
    error_class: str | None
    response_body: str | None


class InboundWebhook(BaseModel):
    id: int
    job_id: str
    provider: str
    attempt_no: int
    trusted: bool
    # The status the body reports (a ProviderStatus as JSON) when it could be read.
    report: dict[str, Any] | None = None
    received_at: float


@dataclass(slots=True)
class NewDelivery:
    subscription_id: str | None
    url: str
    # pending (to be sent now) or skipped (recorded for a disabled subscription, sent on recovery)
    status: str = "pending"


@dataclass(slots=True)
class DeliveryTask:
    """A claimed delivery with everything needed to send it (hot path: a plain slotted class)."""

    seq: int
    id: str
    event_id: str
    subscription_id: str | None
    url: str
    attempt_count: int
    # The event as sent, encoded once for all of the event's deliveries in a claim.
    body: bytes
    # Signing secrets, newest first; empty for callback deliveries (the service signs those).
    secrets: list[str]
    # The subscription's deliveries per second, when it has a limit.
    rate_limit: float | None = None


@dataclass(slots=True)
class AttemptResult:
    seq: int
    subscription_id: str | None
    attempted_at: float
    duration_ms: float
    # pending (retry at next_attempt_at), succeeded, failed (no attempts left), or deferred (not
    # attempted: back to the queue until next_attempt_at, e.g. for a rate limit)
    status: str
    next_attempt_at: float | None
    status_code: int | None
    error: str | None = None
    # timeout, connection, http_status, redirect, blocked, internal
    error_class: str | None = None
    response_body: str | None = None
    # Set when the receiver answered 410 Gone: its subscription is disabled, a hook removed.
    disable_reason: str | None = None


@dataclass(slots=True)
class DeliveryStats:
    pending: int
    failed: int
    oldest_pending_at: float | None


@dataclass
class Page(Generic[T]):
    items: list[T]
    has_more: bool


@dataclass(slots=True)
class JobProgress:
    """A non-terminal observation: status may only move forward, progress only up."""

    status: str
    progress: int | None = None
    provider_job_id: str | None = None


@dataclass(slots=True)
class JobFinal:
    status: str
    progress: int
    outputs: list[dict[str, Any]]
    error: dict[str, Any] | None
    attempts: list[dict[str, Any]]
    completed_at: float
    # Applies only while no provider job is recorded (giving up on an uncertain submission): a
    # webhook that adopted the provider's job meanwhile wins.
    unsubmitted: bool = False


@dataclass(slots=True)
class JobNote:
    """One line of a job's story (the dashboard's timeline), written in the same transaction as
    the change it tells of."""

    kind: str
    detail: dict[str, Any]


class JobLogEntry(BaseModel):
    id: int
    job_id: str
    at: float
    kind: str
    detail: dict[str, Any]


class DashboardSession(BaseModel):
    id: str
    key_hash: str
    created_at: float
    expires_at: float
