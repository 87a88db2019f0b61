"""The PostgreSQL store, for running many `videohooks web` and `videohooks worker` processes on
several machines against one database. PostgreSQL is the queue too, with no broker (the approach
of River, Oban and procrastinate):

- work is claimed in batches with `FOR UPDATE SKIP LOCKED` under leases (`claimed_until`), so
  workers never wait on each other's rows and a dead worker's claims lapse;
- writes that create work send `NOTIFY` on commit and idle workers `LISTEN`, so they wake within
  milliseconds; their idle poll stays as a backstop (a lost connection, a missed notice);
- migrations run under an advisory lock, so processes starting together agree on one schema.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import asyncpg

from storage import sql
from storage.base import CHANNELS, Cipher, Router, StorageError
from storage.ids import new_id
from storage.records import Event, Job, JobFinal, JobNote, Subscription
from storage.sqlstore import (
    Batched,
    Execute,
    ExecuteMany,
    Fetch,
    Routes,
    Row,
    SqlStore,
    Statement,
    Steps,
    dumps,
    job,
    job_row,
)

log = logging.getLogger("videohooks.storage")
ALL = "all"

T = TypeVar("T")
Q = sql.queries("postgres")
# pg_advisory_xact_lock key for migrations: "videohooks" read as a number, any constant would do.
MIGRATION_LOCK = 0x766964656F686F6F
# Deadlocks and serialization failures are resolved by running the transaction again.
RETRIED = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)
ATTEMPTS = 5
RECONNECT_DELAY = 1.0


def _channel(name: str) -> str:
    return f"videohooks_{name}"


def _encode_json(value: Any) -> str:
    # The shared store passes JSON columns already encoded.
    return value if isinstance(value, str) else json.dumps(value)


async def _keep(connection: asyncpg.Connection) -> None:
    """The pool's reset, skipped: asyncpg's default costs a round trip on every release, and the
    store leaves no session state behind (transactions are closed by their context manager;
    LISTEN has a connection of its own)."""


async def _setup(connection: asyncpg.Connection) -> None:
    await connection.set_type_codec(
        "jsonb", encoder=_encode_json, decoder=json.loads, schema="pg_catalog"
    )


class PostgresStore(SqlStore):
    def __init__(self, url: str, cipher: Cipher) -> None:
        self.url = url
        self.cipher = cipher
        self.routes = Routes()
        self.jobs = Batched(self._jobs_by_id)
        # Transitions that ask at once share one read of the subscriptions (each read begins
        # after its askers asked, so none misses a subscription created before it asked).
        self.subscriptions: Batched[list[Subscription]] = Batched(self._all_subscriptions)
        self._pool: asyncpg.Pool | None = None
        self._wakeups = {channel: asyncio.Event() for channel in CHANNELS}
        self._listening: asyncio.Task[None] | None = None
        self._notices: set[asyncio.Task[Any]] = set()
        # Channels to notify again once the notice in flight is sent: a burst of writes costs one
        # or two NOTIFYs per channel, not one each.
        self._sending: set[str] = set()
        self._again: set[str] = set()

    @classmethod
    async def open(cls, url: str, cipher: Cipher) -> PostgresStore:
        store = cls(url, cipher)
        try:
            store._pool = await asyncpg.create_pool(
                url, min_size=1, max_size=10, init=_setup, reset=_keep
            )
        except (OSError, asyncpg.PostgresError) as exc:
            raise StorageError(f"cannot connect to PostgreSQL: {exc}") from exc
        store._listening = asyncio.create_task(store._listen())
        return store

    async def close(self) -> None:
        await self.jobs.close()
        await self.subscriptions.close()
        if self._listening is not None:
            self._listening.cancel()
            await asyncio.gather(self._listening, return_exceptions=True)
        await asyncio.gather(*self._notices, return_exceptions=True)
        if self._pool is not None:
            await self._pool.close()

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StorageError("store is closed")
        return self._pool

    # -- the primitives of SqlStore ---------------------------------------------------------

    async def _run(self, steps: Callable[[], Steps[T]]) -> T:
        for attempt in range(ATTEMPTS):
            try:
                async with self.pool.acquire() as connection, connection.transaction():
                    return await _drive(connection, steps())
            except RETRIED:
                if attempt == ATTEMPTS - 1:
                    raise
                await asyncio.sleep(0.01 * 2**attempt)
            except (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError) as exc:
                raise StorageError(f"PostgreSQL is unreachable: {exc}") from exc
        raise AssertionError("unreachable")

    async def _read(self, query: str, params: Mapping[str, Any]) -> list[Row]:
        return await self._single(query, params)

    async def _single(self, query: str, params: Mapping[str, Any]) -> list[Row]:
        """One statement outside any explicit transaction: atomic on its own, and without the
        round trips of BEGIN and COMMIT."""
        try:
            async with self.pool.acquire() as connection:
                return list(await _perform(connection, Fetch(query, params)))
        except (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError) as exc:
            raise StorageError(f"PostgreSQL is unreachable: {exc}") from exc

    def notify(self, channel: str) -> None:
        """Wakes this process's waiters now and every other process's through NOTIFY."""
        self._wakeups[channel].set()
        if channel in self._sending:
            self._again.add(channel)
            return
        self._sending.add(channel)
        notice = asyncio.create_task(self._notify_others(channel))
        self._notices.add(notice)
        notice.add_done_callback(self._notices.discard)

    async def _notify_others(self, channel: str) -> None:
        try:
            while True:
                self._again.discard(channel)
                await self._single("notify", {"channel": _channel(channel)})
                if channel not in self._again:
                    return
        except Exception:
            # Other processes fall back to their idle poll; nothing is lost.
            log.warning("could not send a notification", extra={"channel": channel})
        finally:
            self._sending.discard(channel)

    async def wait(self, channel: str, timeout: float) -> None:
        wakeup = self._wakeups[channel]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wakeup.wait(), timeout)
        wakeup.clear()

    async def _listen(self) -> None:
        """Keeps one connection LISTENing on every channel, reconnecting when it is lost."""
        while True:
            with contextlib.suppress(OSError, asyncpg.PostgresError):
                await self._listen_once()
            await asyncio.sleep(RECONNECT_DELAY)

    async def _listen_once(self) -> None:
        connection = await asyncpg.connect(self.url)
        lost = asyncio.Event()
        connection.add_termination_listener(lambda _: lost.set())
        try:
            for channel in CHANNELS:
                await connection.add_listener(_channel(channel), self._heard)
            await lost.wait()
        finally:
            with contextlib.suppress(Exception):
                await connection.close()

    def _heard(self, connection: Any, pid: int, channel: str, payload: str) -> None:
        self._wakeups[channel.removeprefix("videohooks_")].set()

    async def _all_subscriptions(self, keys: list[str]) -> dict[str, list[Subscription]]:
        return {ALL: self.routes(await self._read("subscription_all", {}))}

    async def finish_job(
        self,
        job_id: str,
        attempt_no: int,
        final: JobFinal,
        event: Event,
        route: Router,
        note: JobNote | None = None,
    ) -> bool:
        """The terminal transition in one statement (job_finish_at_once) instead of six round
        trips: the subscriptions are read first (one read for the transitions that ask at once)
        and routed, and the statement checks each again.
        A subscription created in between misses this event, as if created just after it."""
        deliveries = route(await self.subscriptions.get(ALL) or [])
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
            "event_id": event.id,
            "event_type": event.type,
            "payload": event.payload,
            "created_at": event.created_at,
            "delivery_ids": [new_id("dlv") for _ in deliveries],
            "subscription_ids": [delivery.subscription_id for delivery in deliveries],
            "urls": [delivery.url for delivery in deliveries],
            "statuses": [delivery.status for delivery in deliveries],
            "note_kind": None if note is None else note.kind,
            "note_detail": None if note is None else dumps(note.detail),
        }
        [row] = await self._single("job_finish_at_once", params)
        finished = bool(row["finished"])
        if finished:
            self.notify("deliveries")
        return finished

    async def create_job(self, new: Job, note: JobNote | None = None) -> tuple[Job, bool]:
        """The job and its first line in one statement (job_insert_at_once) instead of four
        round trips; the job that holds the Idempotency-Key is read only when the key was
        taken."""
        params = job_row(new) | {
            "note_kind": None if note is None else note.kind,
            "note_detail": None if note is None else dumps(note.detail),
        }
        [row] = await self._single("job_insert_at_once", params)
        if row["created"]:
            self.notify("jobs")
            return new, True
        key = {"idempotency_key": new.idempotency_key}
        held = await self._read_one("job_by_idempotency_key", key)
        if held is None:
            raise StorageError("the job holding this Idempotency-Key was deleted meanwhile")
        return job(held), False

    # -- schema -----------------------------------------------------------------------------

    async def migrate(self) -> None:
        def steps() -> Steps[None]:
            # Processes starting together queue here; each then sees what the others applied.
            yield Fetch("migration_lock", {"key": MIGRATION_LOCK})
            yield Execute("migrations_table", {})
            applied = {row[0] for row in (yield Fetch("migrations_applied", {}))}
            for migration in sql.migrations("postgres"):
                if migration.version not in applied:
                    yield Execute(migration.sql, {})
                    yield Execute("migration_record", migration.record())
                    log.info("migrated", extra={"version": migration.version})

        await self._run(steps)

    async def schema_version(self) -> int:
        rows = await self._read("schema_version", {})
        return int(rows[0]["version"] or 0)

    async def ping(self) -> None:
        await self._read("SELECT 1", {})


async def _drive(connection: asyncpg.Connection, steps: Steps[T]) -> T:
    """Runs a transaction's statements in order, sending each one its result."""
    try:
        statement = next(steps)
        while True:
            statement = steps.send(await _perform(connection, statement))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


async def _perform(connection: asyncpg.Connection, statement: Statement) -> Any:
    text, names = sql.positional(Q.get(statement.query, statement.query))
    if isinstance(statement, ExecuteMany):
        if statement.rows:
            rows = [[row[name] for name in names] for row in statement.rows]
            await connection.executemany(text, rows)
        return None
    args = [statement.params[name] for name in names]
    if isinstance(statement, Fetch):
        return await connection.fetch(text, *args)
    if names or statement.query in Q:
        status = await connection.execute(text, *args)
    else:
        # A migration: several statements, which only the simple query protocol runs at once.
        status = await connection.execute(text)
    # The command tag ends with the number of rows changed ("UPDATE 3", "INSERT 0 1").
    count = status.rsplit(" ", 1)[-1]
    return int(count) if count.isdigit() else 0
