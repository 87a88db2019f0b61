"""The store interface: every backend (SQLite, PostgreSQL) implements `Store`.

The job state machine is enforced here, in conditional updates, so that it holds across processes:
a job's status only moves forward (queued → in_progress → completed|failed), a terminal job never
changes again, and the terminal transition inserts the job's one event and its deliveries in the
same transaction. Each of these steps may carry a `JobNote`, appended to the job's story (the
dashboard's timeline) in the same transaction. Work (jobs to submit or poll, received webhooks,
deliveries) is claimed under a lease (`claimed_by`, `claimed_until`): a worker that dies loses
nothing, its claims lapse, or are given back sooner once its heartbeat stops (`reap_workers`). A
job records a submission as under way before its provider is called (`begin_submission`), so that
a submission whose worker died is never taken for one that was never sent.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any, Protocol

from storage.records import (
    ApiKey,
    Attempt,
    AttemptResult,
    DashboardSession,
    Delivery,
    DeliveryStats,
    DeliveryTask,
    Event,
    InboundWebhook,
    Job,
    JobFinal,
    JobLogEntry,
    JobNote,
    JobProgress,
    NewDelivery,
    Page,
    Subscription,
)

# Decides, inside the terminal transaction, which deliveries an event gets.
Router = Callable[[Sequence[Subscription]], Sequence[NewDelivery]]

CHANNELS = ("jobs", "webhooks", "deliveries")


class StorageError(Exception):
    """The database could not be reached or stayed busy past every retry."""


class Cipher(Protocol):
    """Seals the secrets the store keeps (service/encryption.py holds the keys)."""

    @property
    def prefix(self) -> str:
        """What every value sealed with the newest key starts with."""
        ...

    def seal(self, value: str) -> str: ...

    def open(self, value: str) -> str:
        """The clear value of a sealed one (a value stored in clear is returned as it is)."""
        ...


class Store(Protocol):
    # Subscription secrets are written sealed with it and read opened.
    cipher: Cipher

    async def migrate(self) -> None: ...

    async def schema_version(self) -> int:
        """The highest migration applied (0 before the first)."""
        ...

    async def close(self) -> None: ...

    async def ping(self) -> None: ...

    # Wake-ups: a write that creates work notifies its channel; idle workers wait on it.
    def notify(self, channel: str) -> None: ...

    async def wait(self, channel: str, timeout: float) -> None:
        """Returns when `channel` is notified (by any process sharing the database, where the
        backend can tell) or after `timeout` seconds."""
        ...

    async def meta_get_or_set(self, key: str, value: str) -> str:
        """The stored value for key, storing `value` first if there is none."""
        ...

    async def meta_get(self, key: str) -> str | None: ...

    async def meta_set(self, key: str, value: str) -> None: ...

    async def meta_replace(self, key: str, old: str, new: str) -> bool:
        """Sets the value only if it is still `old`; whether it was."""
        ...

    async def reseal_secrets(self) -> int:
        """Seals again, with the cipher's newest key, every subscription secret stored in clear
        or sealed with an older key; the number of values changed."""
        ...

    async def add_first_api_key(self, key: ApiKey) -> bool:
        """Stores the key if no API key exists yet (revoked ones count); True when it was."""
        ...

    async def add_api_key(self, key: ApiKey) -> None: ...

    async def api_key_known(self, key_hash: str) -> bool:
        """Whether a key with this hash exists and is not revoked."""
        ...

    async def list_api_keys(self) -> list[ApiKey]:
        """Every stored key, revoked ones too, oldest first."""
        ...

    async def revoke_api_key(self, key_id: str, now: float) -> bool:
        """False when no unrevoked key has this id."""
        ...

    async def touch_api_key(self, key_hash: str, now: float, stale_before: float) -> None:
        """Records a use, unless one was recorded at `stale_before` or later."""
        ...

    # Jobs
    async def create_job(self, job: Job, note: JobNote | None = None) -> tuple[Job, bool]:
        """Inserts the job; on an idempotency-key clash returns the existing job and False."""
        ...

    async def get_job(self, job_id: str) -> Job | None: ...

    async def find_job(self, provider: str, provider_job_id: str) -> Job | None:
        """The job whose current or last attempt is this provider job."""
        ...

    async def list_jobs(
        self,
        status: str | None,
        limit: int,
        after: str | None,
        provider: str | None = None,
        model: str | None = None,
        metadata: tuple[str, str] | None = None,
    ) -> Page[Job]:
        """Newest first; `metadata` is one (key, value) the job's metadata must hold."""
        ...

    async def next_job_due(self) -> float | None:
        """When the next job is due for a submission or a poll (None: no job is waiting)."""
        ...

    async def claim_jobs(
        self, worker: str, now: float, limit: int, lease: float, skip_providers: Collection[str]
    ) -> list[Job]: ...

    async def begin_submission(self, job: Job, worker: str, now: float) -> bool:
        """Records, before the provider is called, that a submission of the job's current attempt
        is under way (`Job.submission_unresolved` from now on); False when `worker` no longer
        holds the job."""
        ...

    async def record_submission(
        self,
        job: Job,
        worker: str,
        progress: JobProgress,
        attempts: list[dict[str, Any]],
        now: float,
        next_check_at: float,
        note: JobNote | None = None,
    ) -> bool:
        """Records the provider job of the current attempt (the submission is resolved) and
        releases `worker`'s claim if it holds one. Whoever holds the job may record it: the
        worker that sent it, one reconciling it, a webhook adopting it. False when the job has
        moved on, or records another provider job."""
        ...

    async def submission_unanswered(
        self,
        job: Job,
        worker: str,
        uncertain: bool,
        next_check_at: float,
        check_count: int,
        note: JobNote | None = None,
    ) -> bool:
        """A submission got no answer: it stays unresolved, as uncertain, or (`uncertain` False:
        it certainly never reached the provider) is cleared; the claim is released until
        `next_check_at`."""
        ...

    async def reschedule_job(
        self,
        job_id: str,
        worker: str,
        next_check_at: float,
        check_count: int,
        note: JobNote | None = None,
    ) -> bool: ...

    async def record_progress(
        self,
        job_id: str,
        attempt_no: int,
        progress: JobProgress,
        now: float,
        worker: str | None = None,
        next_check_at: float | None = None,
        note: JobNote | None = None,
    ) -> bool:
        """Applies a non-terminal observation (never backwards); with `worker`, also reschedules
        the next check and releases that worker's claim. The note is written only when the
        observation moved the job."""
        ...

    async def switch_attempt(
        self,
        job_id: str,
        attempt_no: int,
        model: str,
        provider: str,
        attempts: list[dict[str, Any]],
        now: float,
        note: JobNote | None = None,
    ) -> bool:
        """Moves a job to its next fallback model (attempt_no + 1), to be submitted at once."""
        ...

    async def poke_job(self, job_id: str, now: float) -> None:
        """Brings a running job's next poll forward to now (an unsigned webhook arrived)."""
        ...

    async def finish_job(
        self,
        job_id: str,
        attempt_no: int,
        final: JobFinal,
        event: Event,
        route: Router,
        note: JobNote | None = None,
    ) -> bool:
        """The terminal transition, its event and its deliveries, atomically; False (and nothing
        written) when the job was already terminal or has moved to another attempt."""
        ...

    # Received provider webhooks (the receiver's inbox)
    async def add_webhook(
        self,
        job_id: str,
        provider: str,
        attempt_no: int,
        trusted: bool,
        report: dict[str, Any] | None,
        body: bytes,
        now: float,
        note: JobNote | None = None,
    ) -> bool:
        """Records a received webhook for the worker; False, and nothing recorded, when it is
        verified (`trusted`) and the same report is already recorded for this job attempt: a
        duplicate. An unverified one is always recorded: it is only a reason to ask the provider,
        and a repeat may come because something changed."""
        ...

    async def add_job_note(self, job_id: str, note: JobNote, now: float) -> None:
        """A line of the job's story from outside (a webhook refused or ignored), up to a bound
        per job."""
        ...

    async def job_log(self, job_id: str) -> list[JobLogEntry]:
        """The job's story, oldest first."""
        ...

    async def claim_webhooks(
        self, worker: str, now: float, limit: int, lease: float
    ) -> list[InboundWebhook]: ...

    async def finish_webhooks(self, ids: Sequence[int], now: float) -> None: ...

    async def defer_webhook(self, webhook_id: int, until: float) -> None:
        """Leaves a webhook unprocessed until `until` (its job's submission is not recorded yet)."""
        ...

    # Subscriptions
    async def create_subscription(self, subscription: Subscription) -> None: ...

    async def get_subscription(self, subscription_id: str) -> Subscription | None: ...

    async def list_subscriptions(
        self,
        limit: int,
        after: str | None,
        kind: str = "subscription",
        url: str | None = None,
        status: str | None = None,
    ) -> Page[Subscription]:
        """Subscriptions (or hooks, with kind="hook"), newest first; with `url`, only those
        delivering to exactly that URL; with `status`, only the active or the disabled."""
        ...

    async def update_subscription(
        self, subscription_id: str, changes: dict[str, Any], now: float
    ) -> Subscription | None:
        """Applies the changes; disabling keeps its pending deliveries as skipped, enabling clears
        the reason it was disabled."""
        ...

    async def rotate_secret(
        self, subscription_id: str, secret: str, grace_until: float, now: float
    ) -> Subscription | None:
        """The new secret signs from now on; the old one too until `grace_until`."""
        ...

    async def delete_subscription(self, subscription_id: str, now: float) -> bool:
        """Removes the subscription and cancels its pending deliveries."""
        ...

    async def take_rate_tokens(
        self, subscription_id: str, rate: float, count: int, now: float
    ) -> list[float]:
        """Takes `count` tokens of the subscription's rate limit (`rate` a second, one bucket
        shared by every worker, holding at most `rate` and at least one); the seconds each of
        them must wait before it is used, in order."""
        ...

    async def give_back_rate_tokens(self, subscription_id: str, rate: float, count: int) -> None:
        """Returns tokens taken but not used."""
        ...

    # Events and deliveries
    async def get_event(self, event_id: str) -> Event | None: ...

    async def get_event_for_job(self, job_id: str) -> Event | None:
        """The job's one terminal event, once it has one."""
        ...

    async def list_events(
        self, type: str | None, limit: int, after: str | None, since: float | None = None
    ) -> Page[Event]:
        """Newest first; with `since`, only events created at or after it (Unix seconds)."""
        ...

    async def list_deliveries(
        self,
        status: str | None = None,
        subscription_id: str | None = None,
        event_id: str | None = None,
        since: float | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> Page[Delivery]: ...

    async def get_delivery(self, delivery_id: str) -> Delivery | None: ...

    async def delivery_attempts(self, seqs: Sequence[int]) -> dict[int, list[Attempt]]: ...

    async def redeliver(self, event_id: str, subscription_id: str | None, now: float) -> int:
        """Queues the event again for all its targets (or one subscription, creating that
        delivery if the subscription did not get one); the number queued."""
        ...

    async def recover(
        self, subscription_id: str, since: float, until: float, now: float, limit: int
    ) -> int:
        """Queues again at most `limit` failed and skipped deliveries created in [since, until)."""
        ...

    async def claim_deliveries(
        self, worker: str, now: float, limit: int, lease: float, cap: int
    ) -> list[DeliveryTask]:
        """Due deliveries, at most `cap` in flight per subscription or callback URL."""
        ...

    async def record_attempts(
        self, worker: str, results: Sequence[AttemptResult], disable_after: float
    ) -> None:
        """Records outcomes; a subscription answering 410, or failing with no success for
        `disable_after` seconds, is disabled and its pending deliveries kept as skipped; a hook
        answering 410 is removed and its pending deliveries cancelled."""
        ...

    async def delivery_stats(self) -> DeliveryStats: ...

    async def job_counts(self, since: float) -> list[tuple[str, str, int]]:
        """(status, provider, count) of the jobs created since `since`."""
        ...

    async def delivery_counts(self, since: float) -> dict[str, int]:
        """Deliveries created since `since`, counted by status."""
        ...

    async def oldest_pending_delivery(self) -> Delivery | None: ...

    # Dashboard sessions: a signed cookie names one; signing out deletes it.
    async def create_session(self, session: DashboardSession) -> None: ...

    async def get_session(self, session_id: str) -> DashboardSession | None: ...

    async def delete_session(self, session_id: str) -> None: ...

    async def expire(self, cutoff: float, batch: int) -> int:
        """Removes up to `batch` each of events (with their deliveries), attempts, processed
        webhooks, job story lines and expired sessions older than `cutoff`; the number removed.
        Jobs are kept."""
        ...

    async def release_claims(self, worker: str) -> None:
        """Gives back everything `worker` still holds, for another worker to take at once, and
        forgets the worker (it stops)."""
        ...

    # Workers: a heartbeat each, so that the claims of a dead one are given back at once.
    async def heartbeat(self, worker: str, host: str, pid: int, now: float) -> None: ...

    async def workers_on_host(self, host: str) -> list[tuple[str, int]]:
        """The (worker, pid) of each worker that registered on `host`."""
        ...

    async def reap_workers(self, silent_since: float, dead: Collection[str]) -> list[str]:
        """Releases the claims of the workers not heard from since `silent_since`, and of those
        named in `dead`, and forgets them; their ids."""
        ...
