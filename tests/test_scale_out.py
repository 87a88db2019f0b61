"""Scale-out on PostgreSQL: several `web` and `worker` processes on one database, every
(event, subscriber) pair delivered — none twice without faults, and with a worker killed -9 only
its in-flight attempts twice."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import asyncpg
import httpx2 as httpx
import pytest

from service.context import running
from service.server import bind
from service.settings import Settings
from service.signing import new_secret
from storage.ids import new_id
from storage.records import Subscription
from tests.support.databases import ENCRYPTION_KEY, NOT_RUN, POSTGRES, database
from tests.support.events import finish_jobs
from tests.support.processes import Process
from tests.support.proxy import round_robin
from tests.support.servers import eventually
from tests.support.service import API_KEY
from tests.support.subscriber import Subscriber, recording_subscriber

pytestmark = pytest.mark.skipif(not POSTGRES, reason=NOT_RUN)

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


def free_port() -> int:
    sock = bind("127.0.0.1", 0)
    port = int(sock.getsockname()[1])
    sock.close()
    return port


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


async def processes(
    command: list[str], url: str, folder: Path, count: int, **extra: str
) -> list[Process]:
    started = [
        await Process.start(command, process_env(url, **extra), folder) for _ in range(count)
    ]
    for process in started:
        await process.expect("videohooks")
    return started


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
        port = free_port()
        [web] = await processes(["web", "--port", str(port)], url, tmp_path, 1)
        workers = await processes(["worker"], url, tmp_path, 3)
        async with running(Settings.from_env(process_env(url))) as context:
            await finish_jobs(context, EVENTS)
        await eventually(lambda: len(pairs(subscribers)) == EVENTS * 3, timeout=120)
        await eventually(lambda: _settled(url), timeout=30)
        assert received(subscribers) == EVENTS * 3, f"retried deliveries: {await retried(url)}"
        for process in [*workers, web]:
            assert await process.stop() == 0


async def _settled(url: str) -> bool:
    return await statuses(url) == {"succeeded": EVENTS * 3}


async def retried(url: str) -> int:
    connection = await asyncpg.connect(url)
    try:
        return int(
            await connection.fetchval("SELECT count(*) FROM deliveries WHERE attempt_count > 1")
        )
    finally:
        await connection.close()


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
        workers = await processes(["worker"], url, tmp_path, 3, VIDEOHOOKS_DELIVERY_TIMEOUT="1s")
        async with running(Settings.from_env(process_env(url))) as context:
            await finish_jobs(context, EVENTS)
        await eventually(lambda: received(subscribers) >= EVENTS, timeout=120)
        victim, *survivors = workers
        victim.signal(signal.SIGKILL)
        assert await victim.exit_code() == -signal.SIGKILL
        await eventually(lambda: len(pairs(subscribers)) == EVENTS * 3, timeout=120)
        await eventually(lambda: _settled(url), timeout=30)
        duplicates = received(subscribers) - EVENTS * 3
        # Only what the killed worker had in flight can arrive twice.
        assert 0 <= duplicates <= CONCURRENCY, duplicates
        print(f"duplicates after kill -9: {duplicates}")
        for process in survivors:
            assert await process.stop() == 0


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
            webs = [
                await Process.start(
                    ["web", "--port", str(port)], process_env(url, **extra), tmp_path
                )
                for port in ports
            ]
            for web in webs:
                await web.expect("videohooks")
            workers = await processes(["worker"], url, tmp_path, 3, **extra)
            body = {"model": "simulator/x", "input": {"simulate": {"after_s": 0.5}}}
            async with httpx.AsyncClient(headers={"authorization": f"Bearer {API_KEY}"}) as api:
                for batch in range(0, EVENTS, 100):
                    answers = await asyncio.gather(
                        *(
                            api.post(f"{upstreams[n % 2]}/v1/videos", json=body)
                            for n in range(batch, batch + 100)
                        )
                    )
                    assert all(answer.status_code == 202 for answer in answers)
            await eventually(lambda: len(pairs(subscribers)) == EVENTS * 3, timeout=180)
            await eventually(lambda: _settled(url), timeout=30)
            assert received(subscribers) == EVENTS * 3, f"retried deliveries: {await retried(url)}"
            hooks = {upstream: proxy.sent[upstream] for upstream in upstreams}
            assert all(count >= EVENTS / 2 - 1 for count in hooks.values()), hooks
            for process in [*workers, *webs]:
                assert await process.stop() == 0
