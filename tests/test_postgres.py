"""What only PostgreSQL does: wake-ups across processes and migrations under an advisory lock."""

from __future__ import annotations

import asyncio
import os
import sys
import time

import asyncpg
import pytest

from service.encryption import cipher_for
from service.settings import Settings
from storage import open_store, sql
from tests.support.databases import NOT_RUN, POSTGRES, database, database_env

pytestmark = pytest.mark.skipif(not POSTGRES, reason=NOT_RUN)


async def test_a_notification_wakes_another_processes_waiter(tmp_path):
    async with database("postgres", tmp_path) as url:
        cipher = cipher_for(Settings.from_env(database_env(url)))
        waiter, notifier = await open_store(url, cipher), await open_store(url, cipher)
        try:
            await waiter.migrate()
            await asyncio.sleep(0.2)  # its LISTEN connection is up
            started = time.monotonic()
            waiting = asyncio.create_task(waiter.wait("deliveries", timeout=10))
            await asyncio.sleep(0.05)
            notifier.notify("deliveries")
            await waiting
            assert time.monotonic() - started < 5  # woken, not timed out
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
