"""Fan-out benchmark: N events × M subscribers delivered to a local receiver.

Prints, from one run on one machine: videohooks' deliveries/s and p50/p99 latency from event
creation to receipt (every delivery durably recorded), and its CPU time per delivery and per job,
beside bare POST loops to the same receiver with httpx and with aiohttp (the ceiling), and the
ratios. By default videohooks runs as `serve` does, in this process: jobs finish in the worker's
process, which creates each event with its deliveries in one transaction. With --processes P it
runs as `videohooks worker --processes P`, its own process tree, which applies stored provider
webhooks (creating the events) and sends, on every core it is given.

    .venv/bin/python bench/fanout.py --events 2000 --subscribers 3
    .venv/bin/python bench/fanout.py --database-url postgresql://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/fanout.py --processes 2 --no-httpx
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
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
from service.heartbeat import host_key
from service.jobs import JobEngine
from service.server import bind
from service.settings import Settings
from service.signing import new_secret
from service.worker import Worker
from storage.base import Store
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
    cpu: float | None = None  # CPU seconds of the sending process(es)

    @property
    def rate(self) -> float:
        return self.count / self.seconds

    def line(self) -> str:
        p50, p99 = percentile(self.latencies, 50), percentile(self.latencies, 99)
        return (
            f"{self.name:<28} {self.count:>7} in {self.seconds:6.2f} s = {self.rate:8.0f}/s"
            f"   p50 {p50 * 1000:8.1f} ms   p99 {p99 * 1000:8.1f} ms"
            + ("" if self.cpu is None else f"   CPU {self.cpu / self.count * 1e6:4.0f} µs each")
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

        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(one(index) for index in range(count)))
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        return Result("bare aiohttp POST loop", count, seconds, latencies, cpu)


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


def bench_env(database_url: str) -> dict[str, str]:
    return {
        "VIDEOHOOKS_DATABASE_URL": database_url,
        "VIDEOHOOKS_ENCRYPTION_KEY": ENCRYPTION_KEY,
        "VIDEOHOOKS_ALLOW_PRIVATE_URLS": "true",
        "VIDEOHOOKS_API_KEYS": "bench",
        "VIDEOHOOKS_LOG_LEVEL": "WARNING",
        "VIDEOHOOKS_DELIVERY_CONCURRENCY": str(CONCURRENCY),
        "VIDEOHOOKS_SUBSCRIPTION_CONCURRENCY": str(CONCURRENCY),
        # Separate processes on SQLite learn of new work by polling: keep that delay small.
        "VIDEOHOOKS_IDLE_POLL": "0.05",
    }


async def add_subscribers(store: Store, url: str, count: int) -> None:
    now = time.time()
    for index in range(count):
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


async def running_jobs(store: Store, count: int) -> list[Job]:
    now = time.time()
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
        for index in range(count)
    ]
    for job in jobs:
        await store.create_job(job)
    return jobs


async def wait_received(url: str, total: int, limit: float = 600.0) -> None:
    started = time.time()
    async with httpx.AsyncClient() as client:
        while int((await client.get(url + "/count")).text) < total:
            if time.time() - started > limit:
                raise RuntimeError(f"not all {total} deliveries arrived within {limit:.0f} s")
            await asyncio.sleep(0.02)


def start_worker(env: dict[str, str], processes: int) -> subprocess.Popen[bytes]:
    """`videohooks worker --processes P` as its own process tree (a supervisor and its P
    children), so that the work can use every core."""
    command = [sys.executable, "-m", "service", "worker", "--processes", str(processes)]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("VIDEOHOOKS_")}
    return subprocess.Popen(command, env=environment | env, stdout=subprocess.DEVNULL)


def process_tree(pid: int) -> list[int]:
    tree, parents = [pid], {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents.setdefault(int(fields[1]), []).append(int(entry.name))
    for member in tree:
        tree += parents.get(member, [])
    return tree


def tree_cpu(pid: int) -> float:
    """CPU seconds used so far by a process, its live descendants and the children it waited."""
    total = 0.0
    for member in process_tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # utime, stime, cutime, cstime (fields 14-17 of proc(5), counted from 3 here).
        total += sum(int(value) for value in fields[11:15])
    return total / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def wait_workers(store: Store, count: int, limit: float = 60.0) -> None:
    """Until `count` worker loops have announced themselves (their first heartbeat)."""
    started = time.time()
    while len(await store.workers_on_host(host_key())) < count:
        if time.time() - started > limit:
            raise RuntimeError("the worker did not start")
        await asyncio.sleep(0.05)


def stop_worker(worker: subprocess.Popen[bytes]) -> None:
    worker.send_signal(signal.SIGTERM)
    if worker.wait(timeout=120) != 0:
        raise RuntimeError(f"the worker exited with {worker.returncode}")


def cpu_facts(cpu: float, deliveries: int, jobs: int) -> dict[str, object]:
    return {
        "CPU s": round(cpu, 2),
        "CPU µs/delivery": round(cpu / deliveries * 1e6),
        "CPU µs/job (its event and deliveries)": round(cpu / jobs * 1e6),
    }


async def videohooks(
    url: str, events: int, subscribers: int, database_url: str
) -> tuple[Result, dict[str, object]]:
    """In one process, as `serve` runs: the benchmark finishes the jobs in the worker's
    process (FINISH_BATCH at a time, as the worker applies received webhooks)."""
    async with running(Settings.from_env(bench_env(database_url))) as context:
        store = context.store
        await add_subscribers(store, url, subscribers)
        jobs = await running_jobs(store, events)
        worker = Worker(context)
        running_worker = asyncio.create_task(worker.run())
        engine = JobEngine(context, "bench")
        outputs = [{"url": "https://cdn.example/video.mp4", "content_type": "video/mp4"}]
        first_event, cpu_started = time.time(), time.process_time()
        for start in range(0, len(jobs), FINISH_BATCH):
            batch = jobs[start : start + FINISH_BATCH]
            await asyncio.gather(
                *(engine.finish(job, "completed", outputs=outputs) for job in batch)
            )
        created = time.time() - first_event
        await wait_received(url, events * subscribers)
        cpu = time.process_time() - cpu_started
        worker.stop()
        await running_worker
        return await outcome(
            store, url, first_event, {"events created (s)": round(created, 2)}, cpu
        )


async def videohooks_processes(
    url: str, events: int, subscribers: int, database_url: str, processes: int
) -> tuple[Result, dict[str, object]]:
    """`videohooks worker` in its own processes: the benchmark stores one verified provider
    webhook (completed) per running job, as the receiver does; the worker applies them,
    creating the events, and delivers them. CPU is the worker tree's, from the moment its
    loops were all running to its exit (getrusage of the waited children, less what /proc
    counted at the start)."""
    env = bench_env(database_url)
    async with running(Settings.from_env(env)) as context:
        store = context.store
        await add_subscribers(store, url, subscribers)
        jobs = await running_jobs(store, events)
        outputs = [{"url": "https://cdn.example/video.mp4", "content_type": "video/mp4"}]
        cpu_before = children_cpu()
        worker = start_worker(env, processes)
        try:
            await wait_workers(store, processes)
            cpu_ready = tree_cpu(worker.pid)
            first_hook = time.time()
            await asyncio.gather(
                *(
                    store.add_webhook(
                        job.id,
                        "simulator",
                        0,
                        True,
                        {
                            "provider_job_id": job.provider_job_id,
                            "status": "completed",
                            "outputs": outputs,
                        },
                        b"{}",
                        time.time(),
                    )
                    for job in jobs
                )
            )
            stored = time.time() - first_hook
            await wait_received(url, events * subscribers)
        finally:
            stop_worker(worker)
        cpu = children_cpu() - cpu_before - cpu_ready
        times = sorted((await event_times(store)).values())
        facts = {
            "processes": processes,
            "webhooks stored (s)": round(stored, 2),
            "events created (s)": round(times[-1] - times[0], 2),
            "worker start-up CPU s (not counted)": round(cpu_ready, 2),
        }
        return await outcome(store, url, times[0], facts, cpu)


async def outcome(
    store: Store, url: str, first_event: float, facts: dict[str, object], cpu: float
) -> tuple[Result, dict[str, object]]:
    created_at = await event_times(store)
    pending = (await store.delivery_stats()).pending
    found = await receipts(url)
    latencies = [at - created_at[event_id] for event_id, _, at in found]
    last = max(at for _, _, at in found)
    pairs = {(event_id, path) for event_id, path, _ in found}
    facts |= {
        "distinct pairs": len(pairs),
        "duplicates": len(found) - len(pairs),
        "pending after run": pending,
    }
    facts |= cpu_facts(cpu, len(found), len(created_at))
    return Result("videohooks fan-out", len(found), last - first_event, latencies, cpu), facts


async def fresh_schema(url: str) -> str:
    """A schema of its own in the given PostgreSQL database, so runs never mix."""
    import asyncpg

    schema = f"bench_{int(time.time())}"
    connection = await asyncpg.connect(url)
    await connection.execute(f"CREATE SCHEMA {schema}")
    await connection.close()
    return f"{url}{'&' if '?' in url else '?'}search_path={schema}"


async def event_times(store: Store) -> dict[str, float]:
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
    parser.add_argument("--no-httpx", action="store_true", help="skip the bare httpx loop")
    parser.add_argument(
        "--processes",
        type=int,
        default=0,
        help="run `videohooks worker --processes P` as its own process tree (default: in process)",
    )
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
        if not args.no_loops and not args.no_httpx:
            loops.append(await bare_httpx(url, total, body))
            await receipts(url)
        if args.processes:
            result, facts = await videohooks_processes(
                url, args.events, args.subscribers, database_url, args.processes
            )
        else:
            result, facts = await videohooks(url, args.events, args.subscribers, database_url)
        if not args.no_loops:
            # The ceiling again after the run: on a shared machine one short loop can land in a
            # quiet or a busy moment; the ratio is to the mean of both.
            after = await bare_aiohttp(url, total, body)
            after.name = "bare aiohttp, after"
            loops.append(after)
            await receipts(url)
    finally:
        receiver.terminate()
        receiver.wait()
    print(
        f"\n{args.events} events x {args.subscribers} subscribers = {total} deliveries; "
        f"database {database_url.split(':', 1)[0]}; {os.cpu_count()} CPUs; "
        f"concurrency {CONCURRENCY}"
    )
    # In the order they ran: the loops, videohooks, the ceiling again.
    lines = [result.line()]
    if loops:
        lines = [loop.line() for loop in loops[:-1]] + lines + [loops[-1].line()]
    print("\n".join(lines))
    if loops:
        ceiling = (loops[0].rate + loops[-1].rate) / 2
        ratios = [
            f"videohooks / aiohttp ceiling (mean of before and after): {result.rate / ceiling:.2f}"
        ]
        if len(loops) > 2:
            plain = loops[1]
            ratios += [
                f"videohooks / httpx loop: {result.rate / plain.rate:.2f}",
                f"aiohttp / httpx: {ceiling / plain.rate:.1f}",
            ]
        print("   ".join(ratios))
    print("videohooks latency is event creation -> receipt; loop latency is request -> response")
    print("; ".join(f"{key}: {value}" for key, value in facts.items()))


if __name__ == "__main__":
    run(main())
