"""Backlog benchmark: a worker process facing 100,000 pending deliveries.

Builds the backlog first (events × subscriptions, every delivery pending), then starts
`videohooks worker` as its own process and reports how fast it drains the backlog to a local
receiver and its peak resident memory (VmHWM): the backlog is claimed in batches, never loaded
whole, so memory stays flat however long the queue.

    .venv/bin/python bench/backlog.py                      # 10,000 events x 10 subscribers
    .venv/bin/python bench/backlog.py --database-url postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx2 as httpx

sys.path.insert(0, str(Path(__file__).parents[1]))

from fanout import ENCRYPTION_KEY, fresh_schema, start_receiver

from service.cli import run
from service.context import running
from service.settings import Settings
from service.signing import new_secret
from storage.ids import new_id
from storage.records import Subscription
from tests.support.events import finish_jobs


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--subscribers", type=int, default=10)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    total = args.events * args.subscribers
    folder = tempfile.mkdtemp(prefix="videohooks-backlog-")
    database_url = args.database_url or f"sqlite:///{folder}/backlog.db"
    if database_url.startswith("postgres"):
        database_url = await fresh_schema(database_url)
    env = {
        "VIDEOHOOKS_DATABASE_URL": database_url,
        "VIDEOHOOKS_ENCRYPTION_KEY": ENCRYPTION_KEY,
        "VIDEOHOOKS_ALLOW_PRIVATE_URLS": "true",
        "VIDEOHOOKS_API_KEYS": "bench",
        "VIDEOHOOKS_LOG_LEVEL": "WARNING",
        "VIDEOHOOKS_SUBSCRIPTION_CONCURRENCY": "256",
    }
    receiver, url = start_receiver()
    try:
        started = time.time()
        async with running(Settings.from_env(env)) as context:
            now = time.time()
            for index in range(args.subscribers):
                await context.store.create_subscription(
                    Subscription(
                        id=new_id("sub"),
                        url=f"{url}/s{index}",
                        events=["video.completed", "video.failed"],
                        secret=new_secret(),
                        created_at=now,
                        updated_at=now,
                    )
                )
            # Jobs finish 50 at a time, ten each: as a worker completing a burst would.
            for _ in range(args.events // 500):
                await asyncio.gather(*(finish_jobs(context, 10) for _ in range(50)))
            pending = (await context.store.delivery_stats()).pending
        print(f"backlog of {pending} pending deliveries built in {time.time() - started:.1f} s")
        environment = {k: v for k, v in os.environ.items() if not k.startswith("VIDEOHOOKS_")}
        worker = subprocess.Popen(
            [sys.executable, "-m", "service", "worker"],
            env=environment | env,
            stdout=subprocess.DEVNULL,
        )
        started, peak, samples = time.time(), 0.0, []
        async with httpx.AsyncClient() as client:
            while (count := int((await client.get(url + "/count")).text)) < total:
                peak = max(peak, peak_rss_mb(worker.pid))
                samples.append((time.time() - started, count))
                if time.time() - started > 600:
                    break
                await asyncio.sleep(0.5)
        elapsed = time.time() - started
        peak = max(peak, peak_rss_mb(worker.pid))
        worker.terminate()
        worker.wait()
    finally:
        receiver.terminate()
        receiver.wait()
    print(
        f"\n{total} deliveries waiting; database {database_url.split(':', 1)[0]}; "
        f"{os.cpu_count()} CPUs"
    )
    print(
        f"drained in {elapsed:.1f} s = {total / elapsed:.0f} deliveries/s; "
        f"worker peak RSS {peak:.0f} MB"
    )
    quarter = [f"{at:.0f}s:{count}" for at, count in samples[:: max(1, len(samples) // 8)]]
    print("progress (time:received): " + " ".join(quarter))


if __name__ == "__main__":
    run(main())
