"""The design a Python team would otherwise write, for comparison with bench/fanout.py: one
procrastinate job per delivery on the same PostgreSQL, each signing with `standardwebhooks` and
POSTing with httpx, the HTTP client such a team reaches for.

N events × M subscribers are deferred as fast as procrastinate takes them (each event's jobs
together, as a job completing would), while a procrastinate worker runs them; the numbers are
deliveries/s and p50/p99 from an event's creation to its receipt, and CPU µs per delivery, as in
bench/fanout.py.

    .venv/bin/pip install -e '.[bench]'   # procrastinate is a benchmark-only dependency
    .venv/bin/python bench/procrastinate_fanout.py --database-url postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import asyncpg
import httpx2 as httpx
import procrastinate
from standardwebhooks import Webhook

sys.path.insert(0, str(Path(__file__).parents[1]))

from fanout import CONCURRENCY, percentile, receipts, start_receiver

from service.cli import run
from service.signing import new_secret

SECRET = new_secret()
app: procrastinate.App
client: httpx.AsyncClient


async def deliver(url: str, event_id: str, payload: str) -> None:
    now = datetime.now(UTC)
    headers = {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(SECRET).sign(event_id, now, payload),
        "content-type": "application/json",
    }
    response = await client.post(url, content=payload, headers=headers)
    response.raise_for_status()  # a failure is retried by procrastinate


async def main() -> None:
    global app, client
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--subscribers", type=int, default=3)
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    schema = f"procrastinate_{int(time.time())}"
    admin = await asyncpg.connect(args.database_url)
    await admin.execute(f"CREATE SCHEMA {schema}")
    await admin.close()
    app = procrastinate.App(
        connector=procrastinate.PsycopgConnector(
            conninfo=args.database_url, kwargs={"options": f"-c search_path={schema}"}
        )
    )
    task = app.task(name="deliver", queue="deliveries", retry=7)(deliver)
    receiver, url = start_receiver()
    total = args.events * args.subscribers
    created: dict[str, float] = {}
    try:
        async with (
            app.open_async(),
            httpx.AsyncClient(
                limits=httpx.Limits(max_connections=CONCURRENCY), timeout=15
            ) as client,
        ):
            await app.schema_manager.apply_schema_async()
            worker = asyncio.create_task(
                app.run_worker_async(queues=["deliveries"], concurrency=CONCURRENCY, wait=True)
            )
            started, cpu = time.time(), time.process_time()
            for index in range(args.events):
                event_id = f"evt_{index}"
                payload = json.dumps(
                    {"id": event_id, "type": "video.completed", "data": {"pad": "x" * 700}}
                )
                created[event_id] = time.time()
                await asyncio.gather(
                    *(
                        task.defer_async(url=f"{url}/s{n}", event_id=event_id, payload=payload)
                        for n in range(args.subscribers)
                    )
                )
            deferred = time.time() - started
            async with httpx.AsyncClient() as probe:
                while int((await probe.get(url + "/count")).text) < total:
                    await asyncio.sleep(0.05)
            cpu = time.process_time() - cpu
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)
        found = await receipts(url)
    finally:
        receiver.terminate()
        receiver.wait()
    latencies = [at - created[event_id] for event_id, _, at in found]
    elapsed = max(at for _, _, at in found) - started
    print(
        f"\n{args.events} events x {args.subscribers} subscribers = {total} deliveries; "
        f"procrastinate {version('procrastinate')} on PostgreSQL; {os.cpu_count()} CPUs; "
        f"worker concurrency {CONCURRENCY}"
    )
    print(
        f"procrastinate, one job per delivery {len(found):>7} in {elapsed:6.2f} s = "
        f"{len(found) / elapsed:8.0f}/s   p50 {percentile(latencies, 50) * 1000:8.1f} ms   "
        f"p99 {percentile(latencies, 99) * 1000:8.1f} ms   (deferring took {deferred:.2f} s)"
    )
    # Creating the events and sending them, in this one process (as bench/fanout.py counts
    # videohooks' worker): comparable per delivery however busy the machine is.
    print(f"CPU {cpu:.2f} s = {cpu / len(found) * 1e6:.0f} µs/delivery")


if __name__ == "__main__":
    run(main())
