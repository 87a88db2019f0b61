"""Fan-out benchmark: N events × M subscribers delivered to a local receiver.

Prints, from one run on one machine: videohooks' deliveries/s and p50/p99 latency from event
creation to receipt (every delivery durably recorded), beside bare POST loops to the same receiver
with httpx and with aiohttp (the ceiling), and the ratios. videohooks runs as `serve` does: jobs
finish in the worker's process, which creates each event with its deliveries in one transaction.

    .venv/bin/python bench/fanout.py --events 2000 --subscribers 3
    .venv/bin/python bench/fanout.py --database-url postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import httpx2 as httpx

sys.path.insert(0, str(Path(__file__).parents[1]))

from service.cli import run
from service.context import running
from service.jobs import JobEngine
from service.server import bind
from service.settings import Settings
from service.signing import new_secret
from service.worker import Worker
from storage.ids import new_id
from storage.records import Job, Subscription

CONCURRENCY = 256
# Encrypts stored secrets (PostgreSQL requires a key; a fixed one keeps runs comparable).
ENCRYPTION_KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
FINISH_BATCH = 64


@dataclass
class Result:
    name: str
    count: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.count / self.seconds

    def line(self) -> str:
        p50, p99 = percentile(self.latencies, 50), percentile(self.latencies, 99)
        return (
            f"{self.name:<28} {self.count:>7} in {self.seconds:6.2f} s = {self.rate:8.0f}/s"
            f"   p50 {p50 * 1000:8.1f} ms   p99 {p99 * 1000:8.1f} ms"
        )


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


def start_receiver() -> tuple[subprocess.Popen[bytes], str]:
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    sock.close()
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("receiver.py")), str(port)]
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            httpx.get(url + "/count")
            return process, url
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError("receiver did not start")


async def receipts(url: str) -> list[tuple[str, str, float]]:
    async with httpx.AsyncClient(timeout=60) as client:
        return [tuple(item) for item in (await client.get(url + "/receipts")).json()]


async def bare_aiohttp(url: str, count: int, body: bytes) -> Result:
    latencies: list[float] = []
    limit = asyncio.Semaphore(CONCURRENCY)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY)) as session:

        async def one(index: int) -> None:
            async with limit:
                started = time.perf_counter()
                headers = {"webhook-id": f"a{index}", "content-type": "application/json"}
                async with session.post(url + "/bare", data=body, headers=headers) as response:
                    await response.read()
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(one(index) for index in range(count)))
        return Result("bare aiohttp POST loop", count, time.perf_counter() - started, latencies)


async def bare_httpx(url: str, count: int, body: bytes) -> Result:
    latencies: list[float] = []
    limit = asyncio.Semaphore(CONCURRENCY)
    limits = httpx.Limits(max_connections=CONCURRENCY)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:

        async def one(index: int) -> None:
            async with limit:
                started = time.perf_counter()
                headers = {"webhook-id": f"h{index}", "content-type": "application/json"}
                await client.post(url + "/bare", content=body, headers=headers)
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(one(index) for index in range(count)))
        return Result("bare httpx2 POST loop", count, time.perf_counter() - started, latencies)


async def videohooks(
    url: str, events: int, subscribers: int, database_url: str
) -> tuple[Result, dict[str, int]]:
    env = {
        "VIDEOHOOKS_DATABASE_URL": database_url,
        "VIDEOHOOKS_ENCRYPTION_KEY": ENCRYPTION_KEY,
        "VIDEOHOOKS_ALLOW_PRIVATE_URLS": "true",
        "VIDEOHOOKS_API_KEYS": "bench",
        "VIDEOHOOKS_LOG_LEVEL": "WARNING",
        "VIDEOHOOKS_DELIVERY_CONCURRENCY": str(CONCURRENCY),
        "VIDEOHOOKS_SUBSCRIPTION_CONCURRENCY": str(CONCURRENCY),
    }
    async with running(Settings.from_env(env)) as context:
        store, now = context.store, time.time()
        for index in range(subscribers):
            await store.create_subscription(
                Subscription(
                    id=new_id("sub"),
                    url=f"{url}/s{index}",
                    events=["video.completed", "video.failed"],
                    secret=new_secret(),
                    created_at=now,
                    updated_at=now,
                )
            )
        jobs = [
            Job(
                id=new_id("vid"),
                status="in_progress",
                model="simulator/bench",
                provider="simulator",
                provider_job_id=f"p{index}",
                request={"model": "simulator/bench"},
                attempts=[{"provider": "simulator", "model": "simulator/bench"}],
                created_at=now,
                updated_at=now,
                deadline_at=now + 3600,
            )
            for index in range(events)
        ]
        for job in jobs:
            await store.create_job(job)
        worker = Worker(context)
        running_worker = asyncio.create_task(worker.run())
        engine = JobEngine(context, "bench")
        outputs = [{"url": "https://cdn.example/video.mp4", "content_type": "video/mp4"}]
        first_event = time.time()
        # Jobs finish in concurrent batches, as a worker applies received webhooks.
        for start in range(0, len(jobs), FINISH_BATCH):
            batch = jobs[start : start + FINISH_BATCH]
            await asyncio.gather(
                *(engine.finish(job, "completed", outputs=outputs) for job in batch)
            )
        created = time.time() - first_event
        async with httpx.AsyncClient() as client:
            while int((await client.get(url + "/count")).text) < events * subscribers:
                await asyncio.sleep(0.02)
        worker.stop()
        await running_worker
        created_at = await event_times(store)
        pending = (await store.delivery_stats()).pending
    found = await receipts(url)
    latencies = [at - created_at[event_id] for event_id, _, at in found]
    last = max(at for _, _, at in found)
    pairs = {(event_id, path) for event_id, path, _ in found}
    facts = {
        "events created (s)": round(created, 2),
        "distinct pairs": len(pairs),
        "duplicates": len(found) - len(pairs),
        "pending after run": pending,
    }
    return Result("videohooks fan-out", len(found), last - first_event, latencies), facts


async def fresh_schema(url: str) -> str:
    """A schema of its own in the given PostgreSQL database, so runs never mix."""
    import asyncpg

    schema = f"bench_{int(time.time())}"
    connection = await asyncpg.connect(url)
    await connection.execute(f"CREATE SCHEMA {schema}")
    await connection.close()
    return f"{url}{'&' if '?' in url else '?'}search_path={schema}"


async def event_times(store) -> dict[str, float]:  # type: ignore[no-untyped-def]
    times, after = {}, None
    while True:
        page = await store.list_events(None, 100, after)
        times |= {event.id: event.created_at for event in page.items}
        if not page.has_more:
            return times
        after = page.items[-1].id


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--subscribers", type=int, default=3)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    parser.add_argument("--no-loops", action="store_true", help="skip the bare loops (profiling)")
    args = parser.parse_args()
    receiver, url = start_receiver()
    folder = tempfile.mkdtemp(prefix="videohooks-bench-")
    database_url = args.database_url or f"sqlite:///{folder}/bench.db"
    if database_url.startswith("postgres"):
        database_url = await fresh_schema(database_url)
    total = args.events * args.subscribers
    try:
        body = json.dumps(
            {"id": "evt_x", "type": "video.completed", "data": {"pad": "x" * 700}}
        ).encode()
        loops = []
        if not args.no_loops:
            loops.append(await bare_aiohttp(url, total, body))
            await receipts(url)
            loops.append(await bare_httpx(url, total, body))
            await receipts(url)
        result, facts = await videohooks(url, args.events, args.subscribers, database_url)
    finally:
        receiver.terminate()
        receiver.wait()
    print(
        f"\n{args.events} events x {args.subscribers} subscribers = {total} deliveries; "
        f"database {database_url.split(':', 1)[0]}; {os.cpu_count()} CPUs; "
        f"concurrency {CONCURRENCY}"
    )
    for line in [loop.line() for loop in loops] + [result.line()]:
        print(line)
    if loops:
        ceiling, plain = loops
        print(
            f"videohooks / aiohttp ceiling: {result.rate / ceiling.rate:.2f}   "
            f"videohooks / httpx loop: {result.rate / plain.rate:.2f}   "
            f"aiohttp / httpx: {ceiling.rate / plain.rate:.1f}"
        )
    print("videohooks latency is event creation -> receipt; loop latency is request -> response")
    print("; ".join(f"{key}: {value}" for key, value in facts.items()))


if __name__ == "__main__":
    run(main())
