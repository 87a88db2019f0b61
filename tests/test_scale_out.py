"""Scale-out on PostgreSQL: several `web` and `worker` processes on one database, every
(event, subscriber) pair delivered — none twice but for attempts that failed (a busy machine
times some out), and with a worker killed -9 only its in-flight attempts twice. Every process is
killed when its test ends, passed or not."""

from __future__ import annotations

import asyncio
import re
import signal
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import asyncpg
import httpx2 as httpx
import pytest

from service.context import running
from service.settings import Settings
from service.signing import new_secret
from storage.ids import new_id
from storage.records import Subscription
from tests.support.databases import ENCRYPTION_KEY, NOT_RUN, POSTGRES, database
from tests.support.events import finish_jobs
from tests.support.processes import Process, started
from tests.support.proxy import round_robin
from tests.support.servers import eventually, free_port
from tests.support.service import API_KEY
from tests.support.subscriber import Subscriber, recording_subscriber

pytestmark = [
    pytest.mark.skipif(not POSTGRES, reason=NOT_RUN),
    pytest.mark.usefixtures("processes_reaped"),
]

EVENTS = 2000
CONCURRENCY = 64


def process_env(url: str, **extra: str) -> dict[str, str]:
    return {
        "VIDEOHOOKS_DATABASE_URL": url,
        "VIDEOHOOKS_ENCRYPTION_KEY": ENCRYPTION_KEY,
        "VIDEOHOOKS_API_KEYS": API_KEY,
        "VIDEOHOOKS_ALLOW_PRIVATE_URLS": "true",
        "VIDEOHOOKS_POLL_MIN": "200ms",
        "VIDEOHOOKS_WEBHOOK_GRACE": "30s",
        # Long enough that a slow answer from an overloaded test machine is not a timeout (and a
        # retry); the kill test shortens it so that the dead worker's leases lapse quickly.
        "VIDEOHOOKS_DELIVERY_TIMEOUT": "5s",
        "VIDEOHOOKS_DELIVERY_CONCURRENCY": str(CONCURRENCY),
        "VIDEOHOOKS_LOG_LEVEL": "WARNING",
    } | extra


async def subscribe(url: str, subscribers: list[Subscriber]) -> None:
    async with running(Settings.from_env(process_env(url))) as context:
        now = time.time()
        for subscriber in subscribers:
            await context.store.create_subscription(
                Subscription(
                    id=new_id("sub"),
                    url=subscriber.url,
                    events=["video.completed", "video.failed"],
                    secret=new_secret(),
                    created_at=now,
                    updated_at=now,
                )
            )


@asynccontextmanager
async def processes(
    commands: list[list[str]], url: str, folder: Path, **extra: str
) -> AsyncIterator[list[Process]]:
    """The processes, started and ready; killed when the block ends, however it ends."""
    async with AsyncExitStack() as stack:
        running = [
            await stack.enter_async_context(started(command, process_env(url, **extra), folder))
            for command in commands
        ]
        for process in running:
            await process.expect("videohooks", timeout=120)
        yield running


async def stopped_cleanly(running: list[Process]) -> None:
    for process in running:
        assert await process.stop() == 0


def pairs(subscribers: list[Subscriber]) -> set[tuple[str, str]]:
    return {(item.event["id"], s.url) for s in subscribers for item in s.received}


def received(subscribers: list[Subscriber]) -> int:
    return sum(len(subscriber.received) for subscriber in subscribers)


async def statuses(url: str) -> dict[str, int]:
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch(
            "SELECT status, count(*) FROM deliveries GROUP BY status UNION ALL "
            "SELECT 'claimed', count(*) FROM deliveries WHERE claimed_by IS NOT NULL"
        )
        return {row[0]: row[1] for row in rows if row[1]}
    finally:
        await connection.close()


async def test_one_web_three_workers_deliver_every_pair_once(tmp_path):
    async with (
        database("postgres", tmp_path) as url,
        recording_subscriber() as a,
        recording_subscriber() as b,
        recording_subscriber() as c,
    ):
        subscribers = [a, b, c]
        await subscribe(url, subscribers)
        commands = [["web", "--port", str(free_port())], ["worker"], ["worker"], ["worker"]]
        async with processes(commands, url, tmp_path) as everyone:
            async with running(Settings.from_env(process_env(url))) as context:
                await finish_jobs(context, EVENTS)
            await delivered_once_but_for_retries(url, subscribers)
            await stopped_cleanly(everyone)


async def _settled(url: str) -> bool:
    return await statuses(url) == {"succeeded": EVENTS * 3}


async def retries(url: str) -> int:
    """Attempts beyond each delivery's first: the only ones that can have arrived twice."""
    connection = await asyncpg.connect(url)
    try:
        return int(
            await connection.fetchval("SELECT coalesce(sum(attempt_count - 1), 0) FROM deliveries")
        )
    finally:
        await connection.close()


async def delivered_once_but_for_retries(url: str, subscribers: list[Subscriber]) -> None:
    await eventually(lambda: len(pairs(subscribers)) == EVENTS * 3, timeout=600)
    await eventually(lambda: _settled(url), timeout=120)
    duplicates = received(subscribers) - EVENTS * 3
    assert 0 <= duplicates <= await retries(url), duplicates


async def test_a_worker_killed_mid_run_loses_nothing(tmp_path):
    async with (
        database("postgres", tmp_path) as url,
        recording_subscriber() as a,
        recording_subscriber() as b,
        recording_subscriber() as c,
    ):
        subscribers = [a, b, c]
        for subscriber in subscribers:
            subscriber.delay = 0.01  # slow enough to be killed in the middle
        await subscribe(url, subscribers)
        commands = [["worker"]] * 3
        async with processes(commands, url, tmp_path, VIDEOHOOKS_DELIVERY_TIMEOUT="1s") as workers:
            async with running(Settings.from_env(process_env(url))) as context:
                await finish_jobs(context, EVENTS)
            await eventually(lambda: received(subscribers) >= EVENTS, timeout=300)
            victim, *survivors = workers
            victim.signal(signal.SIGKILL)
            assert await victim.exit_code() == -signal.SIGKILL
            await eventually(lambda: len(pairs(subscribers)) == EVENTS * 3, timeout=600)
            await eventually(lambda: _settled(url), timeout=120)
            duplicates = received(subscribers) - EVENTS * 3
            # Only what the killed worker had in flight, or retried, can arrive twice.
            assert 0 <= duplicates <= CONCURRENCY + await retries(url), duplicates
            print(f"duplicates after kill -9: {duplicates}")
            await stopped_cleanly(survivors)


async def test_the_receiver_spread_over_two_web_processes(tmp_path):
    async with (
        database("postgres", tmp_path) as url,
        recording_subscriber() as a,
        recording_subscriber() as b,
        recording_subscriber() as c,
    ):
        subscribers = [a, b, c]
        await subscribe(url, subscribers)
        ports = [free_port(), free_port()]
        upstreams = [f"http://127.0.0.1:{port}" for port in ports]
        async with round_robin(upstreams) as proxy:
            # Providers reach us through the balancer; the simulator lives in the first web.
            extra = {
                "VIDEOHOOKS_PUBLIC_URL": proxy.url,
                "VIDEOHOOKS_SIMULATOR_BASE_URL": f"{upstreams[0]}/simulator",
            }
            commands = [["web", "--port", str(port)] for port in ports] + [["worker"]] * 3
            async with processes(commands, url, tmp_path, **extra) as everyone:
                body = {"model": "simulator/x", "input": {"simulate": {"after_s": 0.5}}}
                headers = {"authorization": f"Bearer {API_KEY}"}
                async with httpx.AsyncClient(headers=headers, timeout=60) as api:
                    for batch in range(0, EVENTS, 100):
                        answers = await asyncio.gather(
                            *(
                                api.post(f"{upstreams[n % 2]}/v1/videos", json=body)
                                for n in range(batch, batch + 100)
                            )
                        )
                        assert all(answer.status_code == 202 for answer in answers)
                    await delivered_once_but_for_retries(url, subscribers)
                    # Each web process took its share of the providers' webhooks, and applied
                    # them (a webhook lost on a busy machine is made up for by a poll).
                    for upstream in upstreams:
                        assert await accepted_webhooks(api, upstream) > 0, upstream
                await stopped_cleanly(everyone)


async def accepted_webhooks(api: httpx.AsyncClient, upstream: str) -> float:
    text = (await api.get(f"{upstream}/metrics")).text
    found = re.search(
        r'^videohooks_webhooks_total\{provider="simulator",result="accepted"\} (\S+)$', text, re.M
    )
    return float(found.group(1)) if found else 0.0
