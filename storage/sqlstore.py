"""The store written once for both SQL backends.

Every operation is a transaction written as a generator: it yields statements (`Fetch`,
`Execute`, `ExecuteMany`, naming queries of storage/sql/queries.sql, or of
storage/sql/<dialect>/queries.sql where the dialects differ) and receives their results. A
backend supplies only the driver that runs such a generator as one transaction — synchronously
on SQLite's thread, asynchronously on an asyncpg connection — plus reads, wake-ups and
migrations. So the state machine and the outbox are stated once, and the two backends cannot
drift apart: the same conformance suite runs against both.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Awaitable, Callable, Collection, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from storage.base import Cipher, Router
from storage.ids import new_id
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
    Page,
    Subscription,
)

T = TypeVar("T")
Row = Mapping[str, Any]

JOB_JSON = ("outputs", "error", "metadata", "request", "attempts")
SUBSCRIPTION_JSON = ("events", "filter")
# Stored sealed (the store's cipher), read opened.
SECRET_COLUMNS = ("secret", "previous_secret")
UPDATABLE = {"url", "events", "description", "status", "filter", "max_in_flight", "rate_limit"}
# Lines a job's story keeps of what arrives from outside (webhooks); its own steps are bounded by
# the state machine (statuses only move forward, progress only up).
JOB_LOG_CAP = 500
JOB_LOG_READ = 2000
IF_MOVED = "job_log_insert_if_changed"
SUBMISSION = ("submission_state", "submission_attempt", "submission_started_at")
RELEASES = ("release_jobs", "release_webhooks", "release_deliveries")


@dataclass(frozen=True, slots=True)
class Fetch:
    """Rows of a query (or of a write with RETURNING)."""

    query: str
    params: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Execute:
    """A write; its result is the number of rows it changed."""

    query: str
    params: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ExecuteMany:
    query: str
    rows: Sequence[Mapping[str, Any]]


Statement = Fetch | Execute | ExecuteMany
Steps = Generator[Statement, Any, T]


# One encoder for every stored JSON column: json.dumps with any non-default argument builds a new
# encoder on each call.
_COMPACT = json.JSONEncoder(separators=(",", ":"))


def dumps(value: Any) -> str | None:
    return None if value is None else _COMPACT.encode(value)


def decode(row: Row, json_columns: Iterable[str]) -> dict[str, Any]:
    """A row as a dict; JSON columns parsed (SQLite returns their text, PostgreSQL may have
    parsed them already)."""
    data = dict(row)
    for column in json_columns:
        if isinstance(data.get(column), str):
            data[column] = json.loads(data[column])
    return data


def job(row: Row) -> Job:
    return Job.model_validate(decode(row, JOB_JSON))


def routable(row: Row) -> Subscription:
    """A subscription as an event's routing reads it: its secrets left sealed, as routing never
    reads them (opening every subscription's on every event would cost more than routing)."""
    return Subscription.model_validate(decode(row, SUBSCRIPTION_JSON))


class Routes:
    """Subscriptions as routing reads them, each row parsed once per version: every terminal
    transition reads them all, and parsing every row into a model for every event cost more
    than the routing. A version is the row's id, updated_at and status: every write that changes
    what routing reads (url, events, filter, status) sets updated_at."""

    LIMIT = 10_000

    def __init__(self) -> None:
        self._parsed: dict[tuple[Any, ...], Subscription] = {}

    def __call__(self, rows: Iterable[Row]) -> list[Subscription]:
        parsed = self._parsed
        if len(parsed) > self.LIMIT:
            parsed.clear()  # versions of rows long changed or gone
        subscriptions = []
        for row in rows:
            version = (row["id"], row["updated_at"], row["status"])
            subscription = parsed.get(version)
            if subscription is None:
                subscription = parsed[version] = routable(row)
            subscriptions.append(subscription)
        return subscriptions


class Batched(Generic[T]):
    """Lookups by key that arrive while a batch is being read go together in the next: one
    query (one round trip, one thread hand-off) for many. A worker reads a job for each of the
    up to 200 webhooks it applies at once."""

    def __init__(self, read: Callable[[list[str]], Awaitable[dict[str, T]]]) -> None:
        self._read = read
        self._waiting: list[tuple[str, asyncio.Future[T | None]]] = []
        self._reading: asyncio.Task[None] | None = None

    async def get(self, key: str) -> T | None:
        done: asyncio.Future[T | None] = asyncio.get_running_loop().create_future()
        self._waiting.append((key, done))
        if self._reading is None or self._reading.done():
            self._reading = asyncio.create_task(self._read_batches())
        return await done

    async def _read_batches(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                found = await self._read(sorted({key for key, _ in batch}))
            except Exception as exc:
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                continue
            for key, done in batch:
                if not done.done():  # else its caller was cancelled
                    done.set_result(found.get(key))

    async def close(self) -> None:
        if self._reading is not None:
            await self._reading


def page(rows: list[T], limit: int) -> Page[T]:
    return Page(items=rows[:limit], has_more=len(rows) > limit)


def job_row(new: Job) -> dict[str, Any]:
    """A new job's columns, as job_insert takes them."""
    params = new.model_dump(exclude={"claimed_by", "claimed_until", *SUBMISSION})
    for column in JOB_JSON:
        params[column] = dumps(params[column])
    return params


def told(
    job_id: str, note: JobNote | None, at: float, query: str = "job_log_insert", **extra: Any
) -> Steps[None]:
    """Appends `note` to the job's story, when there is a note (a step of a transaction)."""
    if note is not None:
        params = {"job_id": job_id, "at": at, "kind": note.kind, "detail": dumps(note.detail)}
        yield Execute(query, params | extra)


def failing_reason(since: float, now: float) -> str:
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(since))
    return f"every delivery failed since {started} ({(now - since) / 86400:.1f} days, no success)"


class SqlStore:
    """The Store protocol over four primitives each backend implements."""

    cipher: Cipher
    routes: Routes
    jobs: Batched[Job]

    async def _run(self, steps: Callable[[], Steps[T]]) -> T:
        """Runs the generator `steps()` makes as one transaction; `steps` is called again if the
        transaction must be retried."""
        raise NotImplementedError

    async def _read(self, query: str, params: Mapping[str, Any]) -> list[Row]:
        raise NotImplementedError

    def notify(self, channel: str) -> None:
        raise NotImplementedError

    # -- helpers --------------------------------------------------------------------------

    async def _read_one(self, query: str, params: Mapping[str, Any]) -> Row | None:
        rows = await self._read(query, params)
        return rows[0] if rows else None

    async def _execute(self, query: str, params: Mapping[str, Any]) -> int:
        def steps() -> Steps[int]:
            return (yield Execute(query, params))

        return await self._run(steps)

    async def _fetch_in_transaction(self, query: str, params: Mapping[str, Any]) -> list[Row]:
        def steps() -> Steps[list[Row]]:
            return (yield Fetch(query, params))

        return await self._run(steps)

    # -- meta and API keys ------------------------------------------------------------------

    async def meta_get_or_set(self, key: str, value: str) -> str:
        def steps() -> Steps[str]:
            yield Execute("meta_insert", {"key": key, "value": value})
            rows = yield Fetch("meta_get", {"key": key})
            return str(rows[0]["value"])

        return await self._run(steps)

    async def meta_get(self, key: str) -> str | None:
        row = await self._read_one("meta_get", {"key": key})
        return None if row is None else str(row["value"])

    async def meta_set(self, key: str, value: str) -> None:
        await self._execute("meta_set", {"key": key, "value": value})

    async def meta_replace(self, key: str, old: str, new: str) -> bool:
        return await self._execute("meta_replace", {"key": key, "old": old, "new": new}) > 0

    async def add_first_api_key(self, key: ApiKey) -> bool:
        params = key.model_dump(exclude={"last_used_at", "revoked_at"})
        return await self._execute("api_key_insert_first", params) > 0

    async def add_api_key(self, key: ApiKey) -> None:
        await self._execute(
            "api_key_insert", key.model_dump(exclude={"last_used_at", "revoked_at"})
        )

    async def api_key_known(self, key_hash: str) -> bool:
        return await self._read_one("api_key_known", {"hash": key_hash}) is not None

    async def list_api_keys(self) -> list[ApiKey]:
        return [ApiKey.model_validate(dict(row)) for row in await self._read("api_key_list", {})]

    async def revoke_api_key(self, key_id: str, now: float) -> bool:
        return await self._execute("api_key_revoke", {"id": key_id, "now": now}) > 0

    async def touch_api_key(self, key_hash: str, now: float, stale_before: float) -> None:
        params = {"hash": key_hash, "now": now, "stale_before": stale_before}
        await self._execute("api_key_touch", params)

    # -- jobs -------------------------------------------------------------------------------

    async def create_job(self, new: Job, note: JobNote | None = None) -> tuple[Job, bool]:
        params = job_row(new)

        def steps() -> Steps[tuple[Job, bool]]:
            if (yield Fetch("job_insert", params)):
                yield from told(new.id, note, new.created_at)
                return new, True
            key = {"idempotency_key": new.idempotency_key}
            return job((yield Fetch("job_by_idempotency_key", key))[0]), False

        created = await self._run(steps)
        if created[1]:
            self.notify("jobs")
        return created

    async def get_job(self, job_id: str) -> Job | None:
        return await self.jobs.get(job_id)

    async def _jobs_by_id(self, ids: list[str]) -> dict[str, Job]:
        rows = await self._read("job_get_many", {"ids": ids})
        return {row["id"]: job(row) for row in rows}

    async def find_job(self, provider: str, provider_job_id: str) -> Job | None:
        params = {"provider": provider, "provider_job_id": provider_job_id}
        row = await self._read_one("job_by_provider_job", params)
        return None if row is None else job(row)

    async def list_jobs(
        self,
        status: str | None,
        limit: int,
        after: str | None,
        provider: str | None = None,
        model: str | None = None,
        metadata: tuple[str, str] | None = None,
    ) -> Page[Job]:
        meta_key, meta_value = metadata or (None, None)
        params = {
            "status": status,
            "provider": provider,
            "model": model,
            "meta_key": meta_key,
            "meta_value": meta_value,
            "after": after,
            "limit": limit + 1,
        }
        rows = await self._read("job_list", params)
        return page([job(row) for row in rows], limit)

    async def next_job_due(self) -> float | None:
        row = await self._read_one("job_next_due", {})
        return None if row is None or row["due"] is None else float(row["due"])

    async def claim_jobs(
        self, worker: str, now: float, limit: int, lease: float, skip_providers: Collection[str]
    ) -> list[Job]:
        params = {
            "worker": worker,
            "until": now + lease,
            "now": now,
            "limit": limit,
            "skip_providers": sorted(skip_providers),
        }
        return [job(row) for row in await self._fetch_in_transaction("job_claim", params)]

    async def begin_submission(self, claimed: Job, worker: str, now: float) -> bool:
        params = {"id": claimed.id, "attempt_no": claimed.attempt_no, "worker": worker, "now": now}
        return await self._execute("job_begin_submission", params) > 0

    async def record_submission(
        self,
        claimed: Job,
        worker: str,
        progress: JobProgress,
        attempts: list[dict[str, Any]],
        now: float,
        next_check_at: float,
        note: JobNote | None = None,
    ) -> bool:
        params = {
            "id": claimed.id,
            "attempt_no": claimed.attempt_no,
            "worker": worker,
            "provider_job_id": progress.provider_job_id,
            "status": progress.status,
            "progress": progress.progress,
            "attempts": dumps(attempts),
            "now": now,
            "next_check_at": next_check_at,
        }
        return await self._changed("job_record_submission", params, claimed.id, note, now)

    async def submission_unanswered(
        self,
        claimed: Job,
        worker: str,
        uncertain: bool,
        next_check_at: float,
        check_count: int,
        note: JobNote | None = None,
    ) -> bool:
        params = {
            "id": claimed.id,
            "attempt_no": claimed.attempt_no,
            "worker": worker,
            "uncertain": uncertain,
            "next_check_at": next_check_at,
            "check_count": check_count,
        }
        return await self._changed(
            "job_submission_unanswered", params, claimed.id, note, time.time()
        )

    async def reschedule_job(
        self,
        job_id: str,
        worker: str,
        next_check_at: float,
        check_count: int,
        note: JobNote | None = None,
    ) -> bool:
        params = {
            "id": job_id,
            "worker": worker,
            "next_check_at": next_check_at,
            "check_count": check_count,
        }
        return await self._changed("job_reschedule", params, job_id, note, time.time())

    async def _changed(
        self,
        query: str,
        params: Mapping[str, Any],
        job_id: str,
        note: JobNote | None,
        at: float,
        note_query: str = "job_log_insert",
    ) -> bool:
        """Runs a write to a job and, in the same transaction when it changed the row, appends
        the note to the job's story."""

        def steps() -> Steps[bool]:
            if (yield Execute(query, params)) == 0:
                return False
            yield from told(job_id, note, at, note_query)
            return True

        return await self._run(steps)

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
        params: dict[str, Any] = {
            "id": job_id,
            "attempt_no": attempt_no,
            "status": progress.status,
            "progress": progress.progress,
            "now": now,
        }
        if worker is None:
            params["provider_job_id"] = progress.provider_job_id
            return await self._changed("job_record_progress", params, job_id, note, now, IF_MOVED)
        params |= {"worker": worker, "next_check_at": next_check_at}
        return await self._changed("job_record_poll", params, job_id, note, now, IF_MOVED)

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
        params = {
            "id": job_id,
            "attempt_no": attempt_no,
            "model": model,
            "provider": provider,
            "attempts": dumps(attempts),
            "now": now,
        }
        switched = await self._changed("job_switch_attempt", params, job_id, note, now)
        if switched:
            self.notify("jobs")
        return switched

    async def poke_job(self, job_id: str, now: float) -> None:
        if await self._execute("job_poke", {"id": job_id, "now": now}):
            self.notify("jobs")

    async def finish_job(
        self,
        job_id: str,
        attempt_no: int,
        final: JobFinal,
        event: Event,
        route: Router,
        note: JobNote | None = None,
    ) -> bool:
        params = {
            "id": job_id,
            "attempt_no": attempt_no,
            "status": final.status,
            "progress": final.progress,
            "outputs": dumps(final.outputs),
            "error": dumps(final.error),
            "attempts": dumps(final.attempts),
            "completed_at": final.completed_at,
            "unsubmitted": final.unsubmitted,
        }

        def steps() -> Steps[bool]:
            if (yield Execute("job_finish", params)) == 0:
                return False
            yield Execute("event_insert", event.model_dump())
            subscriptions = self.routes((yield Fetch("subscription_all", {})))
            deliveries = [
                {
                    "id": new_id("dlv"),
                    "event_id": event.id,
                    "subscription_id": delivery.subscription_id,
                    "url": delivery.url,
                    "status": delivery.status,
                    "next_attempt_at": event.created_at if delivery.status == "pending" else None,
                    "now": event.created_at,
                }
                for delivery in route(subscriptions)
            ]
            yield ExecuteMany("delivery_insert", deliveries)
            yield from told(job_id, note, final.completed_at)
            return True

        finished = await self._run(steps)
        if finished:
            self.notify("deliveries")
        return finished

    # -- received webhooks ------------------------------------------------------------------

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
        # Only a verified report can be known to repeat one already in; an unverified body is a
        # reason to ask the provider, and a later one may be the news that it has changed.
        digest = hashlib.sha256(dumps(report).encode()).hexdigest() if trusted and report else None
        params = {
            "job_id": job_id,
            "provider": provider,
            "attempt_no": attempt_no,
            "trusted": trusted,
            "report": dumps(report),
            "body": body,
            "now": now,
            "digest": digest,
        }

        def steps() -> Steps[bool]:
            if (yield Execute("webhook_insert", params)) == 0:
                return False
            yield from told(job_id, note, now, "job_log_insert_capped", cap=JOB_LOG_CAP)
            return True

        if not await self._run(steps):
            return False
        self.notify("webhooks")
        return True

    async def add_job_note(self, job_id: str, note: JobNote, now: float) -> None:
        await self._run(lambda: told(job_id, note, now, "job_log_insert_capped", cap=JOB_LOG_CAP))

    async def job_log(self, job_id: str) -> list[JobLogEntry]:
        rows = await self._read("job_log_list", {"job_id": job_id, "limit": JOB_LOG_READ})
        return [JobLogEntry.model_validate(decode(row, ("detail",))) for row in rows]

    async def claim_webhooks(
        self, worker: str, now: float, limit: int, lease: float
    ) -> list[InboundWebhook]:
        params = {"worker": worker, "until": now + lease, "now": now, "limit": limit}
        rows = await self._fetch_in_transaction("webhook_claim", params)
        return [InboundWebhook.model_validate(decode(row, ("report",))) for row in rows]

    async def finish_webhooks(self, ids: Sequence[int], now: float) -> None:
        rows = [{"id": webhook_id, "now": now} for webhook_id in ids]

        def steps() -> Steps[None]:
            yield ExecuteMany("webhook_finish", rows)

        await self._run(steps)

    async def defer_webhook(self, webhook_id: int, until: float) -> None:
        await self._execute("webhook_defer", {"id": webhook_id, "until": until})

    # -- subscriptions ----------------------------------------------------------------------

    def _subscription(self, row: Row) -> Subscription:
        data = decode(row, SUBSCRIPTION_JSON)
        for column in SECRET_COLUMNS:
            if data[column] is not None:
                data[column] = self.cipher.open(data[column])
        return Subscription.model_validate(data)

    async def create_subscription(self, new: Subscription) -> None:
        params = new.model_dump()
        for column in SUBSCRIPTION_JSON:
            params[column] = dumps(params[column])
        for column in SECRET_COLUMNS:
            if params[column] is not None:
                params[column] = self.cipher.seal(params[column])
        await self._execute("subscription_insert", params)

    async def reseal_secrets(self) -> int:
        prefix, resealed, after = self.cipher.prefix, 0, 0
        while True:
            params = {"prefix": prefix, "length": len(prefix), "after": after, "limit": 500}
            rows = await self._read("subscription_secrets_to_reseal", params)
            if not rows:
                return resealed
            resealed += await self._reseal(rows)
            after = rows[-1]["seq"]

    async def _reseal(self, rows: list[Row]) -> int:
        changes: dict[str, list[dict[str, Any]]] = {column: [] for column in SECRET_COLUMNS}
        for row in rows:
            for column in SECRET_COLUMNS:
                old = row[column]
                if old is not None and not old.startswith(self.cipher.prefix):
                    new = self.cipher.seal(self.cipher.open(old))
                    changes[column].append({"id": row["id"], "old": old, "new": new})

        def steps() -> Steps[None]:
            # Each only if unchanged meanwhile: a rotation's new value is left as written.
            for column in SECRET_COLUMNS:
                yield ExecuteMany(f"subscription_reseal_{column}", changes[column])

        await self._run(steps)
        return sum(len(values) for values in changes.values())

    async def get_subscription(self, subscription_id: str) -> Subscription | None:
        row = await self._read_one("subscription_get", {"id": subscription_id})
        return None if row is None else self._subscription(row)

    async def list_subscriptions(
        self,
        limit: int,
        after: str | None,
        kind: str = "subscription",
        url: str | None = None,
        status: str | None = None,
    ) -> Page[Subscription]:
        params = {"kind": kind, "url": url, "status": status, "after": after, "limit": limit + 1}
        rows = await self._read("subscription_list", params)
        return page([self._subscription(row) for row in rows], limit)

    async def update_subscription(
        self, subscription_id: str, changes: dict[str, Any], now: float
    ) -> Subscription | None:
        if not set(changes) <= UPDATABLE:
            raise ValueError(f"not updatable: {sorted(set(changes) - UPDATABLE)}")
        params: dict[str, Any] = {"now": now, "id": subscription_id}
        for column in sorted(UPDATABLE):
            value = changes.get(column)
            params[f"set_{column}"] = column in changes
            params[column] = dumps(value) if column in SUBSCRIPTION_JSON else value

        def steps() -> Steps[Subscription | None]:
            yield Execute("subscription_update", params)
            if changes.get("status") == "disabled":
                yield Execute("deliveries_skip_for_subscription", params)
            elif changes.get("status") == "active":
                yield Execute("subscription_enabled", params)
            rows = yield Fetch("subscription_get", params)
            return self._subscription(rows[0]) if rows else None

        return await self._run(steps)

    async def rotate_secret(
        self, subscription_id: str, secret: str, grace_until: float, now: float
    ) -> Subscription | None:
        params = {
            "id": subscription_id,
            "secret": self.cipher.seal(secret),
            "grace_until": grace_until,
            "now": now,
        }

        def steps() -> Steps[Subscription | None]:
            yield Execute("subscription_rotate_secret", params)
            rows = yield Fetch("subscription_get", params)
            return self._subscription(rows[0]) if rows else None

        return await self._run(steps)

    async def take_rate_tokens(
        self, subscription_id: str, rate: float, count: int, now: float
    ) -> list[float]:
        interval = 1 / rate
        params = {
            "id": subscription_id,
            "floor": now - max(1.0, rate) * interval,
            "amount": count * interval,
        }

        def steps() -> Steps[list[float]]:
            rows = yield Fetch("subscription_rate_take", params)
            if not rows:  # deleted meanwhile: its deliveries were cancelled
                return [0.0] * count
            last = rows[0]["last_send_at"]
            return [max(0.0, last - (count - 1 - i) * interval - now) for i in range(count)]

        return await self._run(steps)

    async def give_back_rate_tokens(self, subscription_id: str, rate: float, count: int) -> None:
        await self._execute(
            "subscription_rate_give_back", {"id": subscription_id, "amount": count / rate}
        )

    async def delete_subscription(self, subscription_id: str, now: float) -> bool:
        params = {"id": subscription_id, "now": now}

        def steps() -> Steps[bool]:
            if (yield Execute("subscription_delete", params)) == 0:
                return False
            yield Execute("deliveries_cancel_for_subscription", params)
            return True

        return await self._run(steps)

    # -- events and deliveries --------------------------------------------------------------

    async def get_event(self, event_id: str) -> Event | None:
        row = await self._read_one("event_get", {"id": event_id})
        return None if row is None else Event.model_validate(dict(row))

    async def get_event_for_job(self, job_id: str) -> Event | None:
        row = await self._read_one("event_by_job", {"job_id": job_id})
        return None if row is None else Event.model_validate(dict(row))

    async def list_events(
        self, type: str | None, limit: int, after: str | None, since: float | None = None
    ) -> Page[Event]:
        params = {"type": type, "since": since, "after": after, "limit": limit + 1}
        rows = await self._read("event_list", params)
        return page([Event.model_validate(dict(row)) for row in rows], limit)

    async def list_deliveries(
        self,
        status: str | None = None,
        subscription_id: str | None = None,
        event_id: str | None = None,
        since: float | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> Page[Delivery]:
        params = {
            "status": status,
            "subscription_id": subscription_id,
            "event_id": event_id,
            "since": since,
            "after": after,
            "limit": limit + 1,
        }
        rows = await self._read("delivery_list", params)
        return page([Delivery.model_validate(dict(row)) for row in rows], limit)

    async def get_delivery(self, delivery_id: str) -> Delivery | None:
        row = await self._read_one("delivery_get", {"id": delivery_id})
        return None if row is None else Delivery.model_validate(dict(row))

    async def delivery_attempts(self, seqs: Sequence[int]) -> dict[int, list[Attempt]]:
        found: dict[int, list[Attempt]] = {seq: [] for seq in seqs}
        for row in await self._read("attempt_list", {"seqs": list(seqs)}):
            found[row["delivery_seq"]].append(Attempt.model_validate(dict(row)))
        return found

    async def redeliver(self, event_id: str, subscription_id: str | None, now: float) -> int:
        params = {"event_id": event_id, "subscription_id": subscription_id, "now": now}

        def steps() -> Steps[int]:
            yield Fetch("retention_lock", {})
            queued: int = yield Execute("deliveries_redeliver", params)
            if subscription_id is not None:
                new = params | {"id": new_id("dlv")}
                queued += yield Execute("delivery_insert_for_subscription", new)
            return queued

        queued = await self._run(steps)
        if queued:
            self.notify("deliveries")
        return queued

    async def recover(
        self, subscription_id: str, since: float, until: float, now: float, limit: int
    ) -> int:
        params = {
            "subscription_id": subscription_id,
            "since": since,
            "until": until,
            "now": now,
            "limit": limit,
        }

        def steps() -> Steps[int]:
            yield Fetch("retention_lock", {})
            return (yield Execute("deliveries_recover", params))

        queued = await self._run(steps)
        if queued:
            self.notify("deliveries")
        return queued

    async def claim_deliveries(
        self, worker: str, now: float, limit: int, lease: float, cap: int
    ) -> list[DeliveryTask]:
        params = {
            "worker": worker,
            "until": now + lease,
            "now": now,
            "limit": limit,
            "cap": cap,
            # Enough candidates that targets at their cap rarely crowd out the others.
            "scan": limit * 4,
        }

        def steps() -> Steps[list[DeliveryTask]]:
            yield Fetch("delivery_claim_lock", {})
            claimed = yield Fetch("delivery_claim", params)
            if not claimed:
                return []
            seqs = [row["seq"] for row in claimed]
            rows = yield Fetch("delivery_tasks", {"seqs": seqs, "now": now})
            # An event's deliveries share one encoded body, and a subscription's one secret.
            bodies: dict[str, bytes] = {}
            secrets: dict[str, str] = {}
            return [_task(row, self.cipher, bodies, secrets) for row in rows]

        return await self._run(steps)

    async def record_attempts(
        self, worker: str, results: Sequence[AttemptResult], disable_after: float
    ) -> None:
        now = time.time()
        rows = [
            {
                "seq": result.seq,
                "subscription_id": result.subscription_id,
                "worker": worker,
                "status": result.status,
                "next_attempt_at": result.next_attempt_at,
                "status_code": result.status_code,
                "error": result.error,
                "error_class": result.error_class,
                "attempted_at": result.attempted_at,
                "duration_ms": result.duration_ms,
                "response_body": result.response_body,
            }
            for result in sorted(results, key=lambda result: result.attempted_at)
        ]
        deferred = [row for row in rows if row["status"] == "deferred"]
        attempted = [row for row in rows if row["status"] != "deferred"]
        # One health update per subscription, not per delivery: a success clears failing_since,
        # then the batch's earliest failure sets it if none is set.
        succeeded: set[str] = set()
        first_failure: dict[str, float] = {}
        for row in attempted:
            subscription_id = row["subscription_id"]
            if subscription_id is None:
                continue
            if row["status"] == "succeeded":
                succeeded.add(subscription_id)
            elif subscription_id not in first_failure:
                first_failure[subscription_id] = row["attempted_at"]
        gone = [
            {"id": result.subscription_id, "reason": result.disable_reason, "now": now}
            for result in results
            if result.disable_reason and result.subscription_id
        ]

        def steps() -> Steps[None]:
            yield ExecuteMany("delivery_defer", deferred)
            yield ExecuteMany("delivery_record", attempted)
            yield ExecuteMany("attempt_insert", attempted)
            yield ExecuteMany(
                "subscription_succeeded", [{"subscription_id": id_} for id_ in sorted(succeeded)]
            )
            yield ExecuteMany(
                "subscription_failed",
                [
                    {"subscription_id": id_, "attempted_at": at}
                    for id_, at in sorted(first_failure.items())
                ],
            )
            failing = yield Fetch("subscriptions_failing_too_long", {"cutoff": now - disable_after})
            disable = gone + [
                {"id": row["id"], "reason": failing_reason(row["failing_since"], now), "now": now}
                for row in failing
            ]
            for target in gone:
                # A hook answering 410 is removed, with what it still had waiting.
                if (yield Execute("hook_remove", target)):
                    yield Execute("deliveries_cancel_for_subscription", target)
            for subscription_to_disable in disable:
                if (yield Execute("subscription_disable", subscription_to_disable)):
                    yield Execute("deliveries_skip_for_subscription", subscription_to_disable)

        await self._run(steps)
        # Recorded outcomes free their targets' capacity (and retries may be due): look again.
        self.notify("deliveries")

    async def delivery_stats(self) -> DeliveryStats:
        found = {row["status"]: row for row in await self._read("delivery_stats", {})}
        pending, failed = found.get("pending"), found.get("failed")
        return DeliveryStats(
            pending=pending["n"] if pending else 0,
            failed=failed["n"] if failed else 0,
            oldest_pending_at=pending["oldest"] if pending else None,
        )

    async def job_counts(self, since: float) -> list[tuple[str, str, int]]:
        rows = await self._read("job_counts", {"since": since})
        return [(row["status"], row["provider"], int(row["n"])) for row in rows]

    async def delivery_counts(self, since: float) -> dict[str, int]:
        rows = await self._read("delivery_counts", {"since": since})
        return {row["status"]: int(row["n"]) for row in rows}

    async def oldest_pending_delivery(self) -> Delivery | None:
        row = await self._read_one("delivery_oldest_pending", {})
        return None if row is None else Delivery.model_validate(dict(row))

    # -- dashboard sessions -----------------------------------------------------------------

    async def create_session(self, session: DashboardSession) -> None:
        await self._execute("session_insert", session.model_dump())

    async def get_session(self, session_id: str) -> DashboardSession | None:
        row = await self._read_one("session_get", {"id": session_id})
        return None if row is None else DashboardSession.model_validate(dict(row))

    async def delete_session(self, session_id: str) -> None:
        await self._execute("session_delete", {"id": session_id})

    async def expire(self, cutoff: float, batch: int) -> int:
        params = {"cutoff": cutoff, "batch": batch}

        def steps() -> Steps[int]:
            yield Fetch("retention_lock", {})
            removed = 0
            for query in (
                "events_expire",
                "attempts_expire",
                "webhooks_expire",
                "job_log_expire",
                "sessions_expire",
            ):
                removed += yield Execute(query, params)
            return removed

        return await self._run(steps)

    async def release_claims(self, worker: str) -> None:
        def steps() -> Steps[None]:
            for query in (*RELEASES, "worker_forget"):
                yield Execute(query, {"worker": worker})

        await self._run(steps)

    # -- workers ----------------------------------------------------------------------------

    async def heartbeat(self, worker: str, host: str, pid: int, now: float) -> None:
        await self._execute(
            "worker_heartbeat", {"id": worker, "host": host, "pid": pid, "now": now}
        )

    async def workers_on_host(self, host: str) -> list[tuple[str, int]]:
        rows = await self._read("workers_on_host", {"host": host})
        return [(row["id"], row["pid"]) for row in rows]

    async def reap_workers(self, silent_since: float, dead: Collection[str]) -> list[str]:
        def steps() -> Steps[list[str]]:
            silent = yield Fetch("workers_silent", {"before": silent_since})
            gone = sorted({row["id"] for row in silent} | set(dead))
            for worker in gone:
                for query in (*RELEASES, "worker_forget"):
                    yield Execute(query, {"worker": worker})
            return gone

        return await self._run(steps)


def _new_key(key: ApiKey) -> dict[str, Any]:
    return key.model_dump(exclude={"last_used_at", "revoked_at"})


def _task(
    row: Any, cipher: Cipher, bodies: dict[str, bytes], secrets: dict[str, str]
) -> DeliveryTask:
    # By position: the hot path's rows (sqlite3.Row, asyncpg.Record) are read the cheapest way.
    event_id = row[2]
    body = bodies.get(event_id)
    if body is None:
        body = bodies[event_id] = row[6].encode()
    opened = []
    for sealed in (row[7], row[8]):
        if sealed:
            secret = secrets.get(sealed)
            if secret is None:
                secret = secrets[sealed] = cipher.open(sealed)
            opened.append(secret)
    return DeliveryTask(
        seq=row[0],
        id=row[1],
        event_id=event_id,
        subscription_id=row[3],
        url=row[4],
        attempt_count=row[5],
        body=body,
        secrets=opened,
        rate_limit=row[9],
    )
