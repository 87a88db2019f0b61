"""The SQLite store, the embedded default.

Several processes may share one file (`videohooks web` + `videohooks worker`): the database runs in
WAL mode with a busy timeout, every write transaction takes the write lock up front
(BEGIN IMMEDIATE, so two writers never deadlock upgrading a read lock), and a transaction that still
finds the database locked is retried with backoff; "database is locked" never reaches a caller
before `BUSY_BUDGET` seconds of retrying, and then as `StorageError`.

Each connection lives on its own thread and runs a whole transaction per call (`_Connection`).
This is written by hand rather than with aiosqlite because aiosqlite hands every statement to its
thread separately: measured here, a hand-off costs about 100 µs against about 10 µs of SQL, and
a terminal transition is six statements. One hand-off per transaction made event creation several
times faster (bench/fanout.py, docs/benchmarks.md). A transaction is one function that runs to its
end on the connection's thread, so a cancelled caller can never leave one half done.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import sqlite3
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from storage import sql
from storage.base import CHANNELS, Cipher, StorageError
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
)

log = logging.getLogger("videohooks.storage")

T = TypeVar("T")
Q = sql.queries("sqlite")
BUSY_TIMEOUT_MS = 5000
BUSY_BUDGET = 120.0


def _busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


class _Connection:
    """One sqlite3 connection and the one thread that uses it."""

    def __init__(self, path: str) -> None:
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="videohooks-sqlite")
        self._path = path
        self._db: sqlite3.Connection | None = None

    async def open(self) -> None:
        self._db = await self.run(lambda _: self._connect())

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        try:
            db.row_factory = sqlite3.Row
            db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            db.execute("PRAGMA journal_mode = WAL")
            # NORMAL keeps every commit across a process crash (kill -9); only an OS crash or
            # power loss can drop the last transactions, a trade SQLite recommends for WAL.
            db.execute("PRAGMA synchronous = NORMAL")
            db.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error:
            db.close()
            raise
        return db

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, work, self._db)

    async def close(self) -> None:
        if self._db is not None:
            await self.run(lambda db: db.close())
            self._db = None
        self._thread.shutdown(wait=True)


class SQLiteStore(SqlStore):
    def __init__(self, path: str, cipher: Cipher) -> None:
        self.path = path
        self.cipher = cipher
        self.routes = Routes()
        self.jobs = Batched(self._jobs_by_id)
        self._writer = _Connection(path)
        self._reader = _Connection(path)
        self._wakeups = {channel: asyncio.Event() for channel in CHANNELS}
        self._queue: list[tuple[Callable[[], Steps[Any]], asyncio.Future[Any]]] = []
        self._flushing: asyncio.Task[None] | None = None
        self._reads: list[tuple[Fetch, asyncio.Future[list[Row]]]] = []
        self._reading: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, url: str, cipher: Cipher) -> SQLiteStore:
        store = cls(url.removeprefix("sqlite:///"), cipher)
        Path(store.path).parent.mkdir(parents=True, exist_ok=True)
        _private(Path(store.path))
        # The writer first: it is the one that may switch the file to WAL mode.
        await store._retry_busy(store._writer.open)
        await store._retry_busy(store._reader.open)
        return store

    async def close(self) -> None:
        await self.jobs.close()
        if self._flushing is not None:
            await self._flushing
        if self._reading is not None:
            await self._reading
        await self._writer.close()
        await self._reader.close()

    async def _retry_busy(self, operation: Callable[[], Awaitable[T]]) -> T:
        deadline = time.monotonic() + BUSY_BUDGET
        delay = 0.01
        while True:
            try:
                return await operation()
            except sqlite3.OperationalError as exc:
                if not _busy(exc):
                    raise StorageError(str(exc)) from exc
                if time.monotonic() > deadline:
                    raise StorageError("the database stayed locked; try again") from exc
                log.warning("database busy, retrying", extra={"retry_in_s": delay})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    async def _run(self, steps: Callable[[], Steps[T]]) -> T:
        """Group commit: transactions that arrive while the writer is busy share its next commit
        (a savepoint each, so one that fails rolls back alone). Under load a commit and a thread
        hand-off serve many transactions; alone, a transaction goes at once."""
        done: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append((steps, done))
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush())
        # Shielded: a caller cancelled while waiting leaves its transaction to run to its end.
        return await asyncio.shield(done)

    async def _flush(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            group = functools.partial(_group, factories=[steps for steps, _ in batch])
            try:
                outcomes = await self._retry_busy(functools.partial(self._writer.run, group))
            except Exception as exc:
                outcomes = [exc] * len(batch)
            for (_, done), outcome in zip(batch, outcomes, strict=True):
                if done.done():
                    continue
                if isinstance(outcome, Exception):
                    done.set_exception(outcome)
                else:
                    done.set_result(outcome.value)

    async def _read(self, query: str, params: Mapping[str, Any]) -> list[Row]:
        """Reads that arrive while the reader is busy go together in its next hand-off, as
        writes share a commit: a hand-off to the thread costs more than a read by key, and a
        worker reads a job for each of the webhooks it applies at once."""
        done: asyncio.Future[list[Row]] = asyncio.get_running_loop().create_future()
        self._reads.append((Fetch(query, params), done))
        if self._reading is None or self._reading.done():
            self._reading = asyncio.create_task(self._read_batches())
        return await done

    async def _read_batches(self) -> None:
        while self._reads:
            batch, self._reads = self._reads, []
            reads = functools.partial(_read_all, statements=[statement for statement, _ in batch])
            try:
                outcomes = await self._retry_busy(functools.partial(self._reader.run, reads))
            except Exception as exc:
                outcomes = [exc] * len(batch)
            for (_, done), outcome in zip(batch, outcomes, strict=True):
                if done.done():
                    continue  # its caller was cancelled
                if isinstance(outcome, Exception):
                    done.set_exception(outcome)
                else:
                    done.set_result(outcome)

    def notify(self, channel: str) -> None:
        self._wakeups[channel].set()

    async def wait(self, channel: str, timeout: float) -> None:
        wakeup = self._wakeups[channel]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wakeup.wait(), timeout)
        wakeup.clear()

    async def migrate(self) -> None:
        def steps() -> Steps[None]:
            yield Execute("migrations_table", {})
            applied = {row[0] for row in (yield Fetch("migrations_applied", {}))}
            for migration in sql.migrations("sqlite"):
                if migration.version not in applied:
                    for statement in _statements(migration.sql):
                        yield Execute(statement, {})
                    yield Execute("migration_record", migration.record())
                    log.info("migrated", extra={"version": migration.version})

        await self._run(steps)

    async def schema_version(self) -> int:
        rows = await self._read("schema_version", {})
        return int(rows[0]["version"] or 0)

    async def ping(self) -> None:
        await self._read("SELECT 1", {})


def _private(database: Path) -> None:
    """Creates the database file readable by its owner only before SQLite opens it (SQLite gives
    its WAL and shared-memory files the database file's mode); files an older version left
    readable by everyone lose that."""
    with contextlib.suppress(OSError):  # sqlite3 reports what is wrong with the path
        os.close(os.open(database, os.O_RDWR | os.O_CREAT, 0o600))
    for path in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
        try:
            mode = path.stat().st_mode
            if mode & 0o007:
                os.chmod(path, mode & 0o770)
                log.warning("made the database file private", extra={"file": str(path)})
        except OSError:
            continue


@dataclass(slots=True)
class _Done:
    value: Any


def _group(db: sqlite3.Connection, factories: list[Callable[[], Steps[Any]]]) -> list[Any]:
    """Runs transactions one after another under one BEGIN IMMEDIATE ... COMMIT, each in a
    savepoint; each outcome is _Done(value) or the exception that rolled it back."""
    outcomes: list[Any] = []
    db.execute("BEGIN IMMEDIATE")
    try:
        for steps in factories:
            db.execute("SAVEPOINT one")
            try:
                outcomes.append(_Done(_drive(db, steps())))
            except Exception as exc:
                db.execute("ROLLBACK TO one")
                outcomes.append(StorageError(str(exc)) if isinstance(exc, sqlite3.Error) else exc)
            db.execute("RELEASE one")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return outcomes


def _read_all(db: sqlite3.Connection, statements: list[Fetch]) -> list[Any]:
    """Each read's rows, or the error it alone met; a busy database fails them all, to be
    retried together (reads change nothing)."""
    outcomes: list[Any] = []
    for statement in statements:
        try:
            outcomes.append(_perform(db, statement))
        except sqlite3.OperationalError as exc:
            if _busy(exc):
                raise
            outcomes.append(StorageError(str(exc)))
        except Exception as exc:
            outcomes.append(exc)
    return outcomes


def _drive(db: sqlite3.Connection, steps: Steps[T]) -> T:
    """Runs a transaction's statements in order, sending each one its result."""
    try:
        statement = next(steps)
        while True:
            statement = steps.send(_perform(db, statement))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


def _perform(db: sqlite3.Connection, statement: Statement) -> Any:
    text = Q.get(statement.query, statement.query)
    if isinstance(statement, ExecuteMany):
        if statement.rows:
            db.executemany(text, [_adapt(row) for row in statement.rows])
        return None
    cursor = db.execute(text, _adapt(statement.params))
    return cursor.fetchall() if isinstance(statement, Fetch) else cursor.rowcount


def _adapt(params: Mapping[str, Any]) -> dict[str, Any]:
    # Lists are read by json_each() in SQLite's queries.
    return {
        key: json.dumps(value) if isinstance(value, list) else value
        for key, value in params.items()
    }


def _statements(script: str) -> list[str]:
    """Splits a migration into statements with SQLite's own completeness test."""
    statements, pending = [], ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    if pending.strip() and not all(
        part.strip().startswith("--") or not part.strip() for part in pending.splitlines()
    ):
        raise StorageError(f"incomplete statement in migration: {pending.strip()[:80]}")
    return statements
