"""What only PostgreSQL does: wake-ups across processes, migrations under an advisory lock, and
retention taking turns with redeliveries."""

from __future__ import annotations

import asyncio
import os
import sys
import time

import asyncpg
import pytest

from service.encryption import Cipher, cipher_for
from service.settings import Settings
from storage import open_store, sql
from storage.records import NewDelivery
from tests.support.databases import NOT_RUN, POSTGRES, database, database_env
from tests.support.servers import eventually
from tests.test_storage import a_job, an_event, final

pytestmark = pytest.mark.skipif(not POSTGRES, reason=NOT_RUN)


async def test_a_notification_wakes_another_processes_waiter(tmp_path):
    async with database("postgres", tmp_path) as url:
        cipher = cipher_for(Settings.from_env(database_env(url)))
        waiter, notifier = await open_store(url, cipher), await open_store(url, cipher)
        try:
            await waiter.migrate()
            # An hour's timeout: if the wait ends, a notification ended it. Notified until then,
            # since the waiter's LISTEN connection comes up in its own time.
            waiting = asyncio.create_task(waiter.wait("deliveries", timeout=3600))

            def woken() -> bool:
                notifier.notify("deliveries")
                return waiting.done()

            await eventually(woken, timeout=60, interval=0.05)
        finally:
            await waiter.close()
            await notifier.close()


async def test_ten_processes_migrating_at_once_end_with_one_schema(tmp_path):
    async with database("postgres", tmp_path) as url:
        env = {key: value for key, value in os.environ.items() if not key.startswith("VIDEOHOOKS_")}
        env |= database_env(url)
        processes = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "service",
                "migrate",
                env=env,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            for _ in range(10)
        ]
        results = await asyncio.gather(*(process.communicate() for process in processes))
        assert [process.returncode for process in processes] == [0] * 10, results
        schema = url.split("search_path=")[1]
        connection = await asyncpg.connect(url)
        try:
            versions = [
                row[0]
                for row in await connection.fetch(
                    "SELECT version FROM schema_migrations ORDER BY version"
                )
            ]
            tables = {
                row[0]
                for row in await connection.fetch(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = $1",
                    schema,
                )
            }
        finally:
            await connection.close()
        assert versions == [migration.version for migration in sql.migrations("postgres")]
        assert {"jobs", "events", "deliveries", "delivery_attempts", "subscriptions"} <= tables


async def test_retention_waits_for_a_redelivery_under_way(tmp_path):
    """An old event queued again (redeliver) while retention runs is not removed with it."""
    async with database("postgres", tmp_path) as url:
        store = await open_store(url, Cipher([os.urandom(32)]))
        connection = await asyncpg.connect(url)
        try:
            await store.migrate()
            now = time.time()
            job, _ = await store.create_job(a_job())
            event = an_event(job).model_copy(update={"created_at": now - 1000})
            route = lambda subscriptions: [NewDelivery(None, "http://a", "skipped")]  # noqa: E731
            assert await store.finish_job(job.id, 0, final(), event, route)
            queries = sql.queries("postgres")
            params = {"event_id": event.id, "subscription_id": None, "now": now}
            # A redelivery in its transaction, as the store runs it, not yet committed...
            async with connection.transaction():
                for name in ("retention_lock", "deliveries_redeliver"):
                    text, names = sql.positional(queries[name])
                    await connection.execute(text, *[params[name] for name in names])
                expiring = asyncio.create_task(store.expire(now - 500, 100))
                # ...holds retention up until it commits.
                blocked = (
                    "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))"
                )
                pid = connection.get_server_pid()
                await eventually(lambda: _fetchval(connection, blocked, pid), timeout=60)
            await expiring
            assert await store.get_event(event.id) is not None
            [delivery] = (await store.list_deliveries(event_id=event.id)).items
            assert delivery.status == "pending"
        finally:
            await connection.close()
            await store.close()


async def _fetchval(connection: asyncpg.Connection, query: str, *args: object) -> object:
    return await connection.fetchval(query, *args)
