"""Backlog benchmark: a worker process facing 100,000 pending deliveries.

Builds the backlog first (events × subscriptions, every delivery pending), measures the bare
aiohttp POST loop to the same receiver (the ceiling, same concurrency), then starts
`videohooks worker` (--processes P) as its own process tree and reports how fast it drains the
backlog, as a ratio to the ceiling, its CPU per delivery, and the largest peak resident memory
(VmHWM) of its processes: the backlog is claimed in batches, never loaded whole, so memory stays
flat however long the queue.

    .venv/bin/python bench/backlog.py                      # 10,000 events x 10 subscribers
    .venv/bin/python bench/backlog.py --processes 2
    .venv/bin/python bench/backlog.py --database-url postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx2 as httpx

sys.path.insert(0, str(Path(__file__).parents[1]))

from fanout import (
    add_subscribers,
    bare_aiohttp,
    bench_env,
    children_cpu,
    fresh_schema,
    process_tree,
    receipts,
    start_receiver,
    start_worker,
    stop_worker,
    tree_cpu,
    wait_workers,
)

from service.cli import run
from service.context import running
from service.settings import Settings
from tests.support.events import finish_jobs


def peak_rss_mb(pid: int) -> float:
    """The largest peak resident memory (VmHWM) of a process and its descendants."""
    peaks = [0.0]
    for member in process_tree(pid):
        try:
            status = Path(f"/proc/{member}/status").read_text()
        except OSError:
            continue
        peaks += [int(line.split()[1]) / 1024 for line in status.splitlines() if "VmHWM" in line]
    return max(peaks)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--subscribers", type=int, default=10)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--processes", type=int, default=1, help="videohooks worker --processes")
    parser.add_argument(
        "--ceiling", type=int, default=20_000, help="requests of the bare aiohttp loop"
    )
    args = parser.parse_args()
    total = args.events * args.subscribers
    folder = tempfile.mkdtemp(prefix="videohooks-backlog-")
    database_url = args.database_url or f"sqlite:///{folder}/backlog.db"
    if database_url.startswith("postgres"):
        database_url = await fresh_schema(database_url)
    env = bench_env(database_url)
    receiver, url = start_receiver()
    try:
        started = time.time()
        async with running(Settings.from_env(env)) as context:
            await add_subscribers(context.store, url, args.subscribers)
            # Jobs finish 50 at a time, ten each: as a worker completing a burst would.
            for _ in range(args.events // 500):
                await asyncio.gather(*(finish_jobs(context, 10) for _ in range(50)))
            pending = (await context.store.delivery_stats()).pending
            print(f"backlog of {pending} pending deliveries built in {time.time() - started:.1f} s")
            body = (await context.store.list_events(None, 1, None)).items[0].payload.encode()
        ceiling = await bare_aiohttp(url, args.ceiling, body)
        await receipts(url)
        cpu_before = children_cpu()
        worker = start_worker(env, args.processes)
        async with running(Settings.from_env(env)) as context:
            await wait_workers(context.store, args.processes)
        cpu_ready = tree_cpu(worker.pid)
        started, peak, samples = time.time(), 0.0, []
        try:
            async with httpx.AsyncClient() as client:
                while (count := int((await client.get(url + "/count")).text)) < total:
                    peak = max(peak, peak_rss_mb(worker.pid))
                    samples.append((time.time() - started, count))
                    if time.time() - started > 600:
                        break
                    await asyncio.sleep(0.5)
            elapsed = time.time() - started
            peak = max(peak, peak_rss_mb(worker.pid))
        finally:
            stop_worker(worker)
        cpu = children_cpu() - cpu_before - cpu_ready
    finally:
        receiver.terminate()
        receiver.wait()
    print(
        f"\n{total} deliveries waiting; database {database_url.split(':', 1)[0]}; "
        f"{os.cpu_count()} CPUs; worker processes {args.processes}"
    )
    print(ceiling.line())
    rate = count / elapsed
    print(
        f"drained {count} in {elapsed:.1f} s = {rate:.0f} deliveries/s "
        f"= {rate / ceiling.rate:.2f} of the aiohttp ceiling; "
        f"peak RSS of a worker process {peak:.0f} MB"
    )
    print(
        f"worker CPU {cpu:.2f} s = {cpu / count * 1e6:.0f} µs/delivery "
        f"(start-up, {cpu_ready:.2f} s, not counted)"
    )
    quarter = [f"{at:.0f}s:{count}" for at, count in samples[:: max(1, len(samples) // 8)]]
    print("progress (time:received): " + " ".join(quarter))


if __name__ == "__main__":
    run(main())
