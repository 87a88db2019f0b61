"""End-to-end benchmark: provider webhooks at a steady rate → subscriber receipts.

`videohooks serve` runs as its own process, the subscriber (bench/receiver.py) as another. This
process plays the provider: it sends signed simulator webhooks ("completed") at a steady rate,
one per running job, and reports p50/p99 latency from sending a webhook to the subscriber
receiving the job's event.

    .venv/bin/python bench/e2e.py --rate 200 --seconds 30
    .venv/bin/python bench/e2e.py --database-url postgresql://postgres@127.0.0.1:5432/test
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
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import httpx2 as httpx
from standardwebhooks import Webhook

sys.path.insert(0, str(Path(__file__).parents[1]))

from fanout import ENCRYPTION_KEY, fresh_schema, percentile, receipts, start_receiver

from service.cli import run
from service.context import running
from service.server import bind
from service.settings import Settings
from service.signing import new_secret
from service.tokens import ReceiverTokens
from storage.ids import new_id
from storage.records import Job, Subscription

SECRET_KEY = "bench-secret-key"
API_KEY = "bench-key"


async def prepare(env: dict[str, str], subscriber: str, count: int) -> list[Job]:
    """Running simulator jobs, as if submitted, and one subscription. Their next poll is far off:
    only the webhooks finish them."""
    async with running(Settings.from_env(env)) as context:
        now = time.time()
        await context.store.create_subscription(
            Subscription(
                id=new_id("sub"),
                url=subscriber,
                events=["video.completed", "video.failed"],
                secret=new_secret(),
                created_at=now,
                updated_at=now,
            )
        )
        jobs = []
        for index in range(count):
            job = Job(
                id=new_id("vid"),
                status="in_progress",
                model="simulator/bench",
                provider="simulator",
                provider_job_id=f"sim_bench_{index}",
                request={"model": "simulator/bench", "fallback_models": []},
                attempts=[
                    {
                        "provider": "simulator",
                        "model": "simulator/bench",
                        "provider_job_id": f"sim_bench_{index}",
                        "error": None,
                    }
                ],
                created_at=now,
                updated_at=now,
                deadline_at=now + 86400,
                next_check_at=now + 86400,
            )
            await context.store.create_job(job)
            jobs.append(job)
        return jobs


def webhook_body(job: Job) -> str:
    return json.dumps(
        {
            "id": job.provider_job_id,
            "object": "video",
            "status": "completed",
            "progress": 100,
            "model": "bench",
            "created_at": job.created_at,
            "outputs": [{"url": "https://cdn.example/video.mp4", "content_type": "video/mp4"}],
        }
    )


async def send_webhooks(
    service: str, jobs: list[Job], rate: float, secret: str
) -> dict[str, float]:
    tokens, signer = ReceiverTokens([SECRET_KEY]), Webhook(secret)
    sent: dict[str, float] = {}
    start = time.perf_counter() + 0.5
    async with aiohttp.ClientSession() as session:

        async def one(index: int, job: Job) -> None:
            await asyncio.sleep(max(0.0, start + index / rate - time.perf_counter()))
            body = webhook_body(job)
            now = time.time()
            headers = {
                "webhook-id": f"msg_{index}",
                "webhook-timestamp": str(int(now)),
                "webhook-signature": signer.sign(
                    f"msg_{index}", datetime.fromtimestamp(now, UTC), body
                ),
                "content-type": "application/json",
            }
            url = f"{service}/hooks/simulator/{tokens.issue(job.id, 'simulator', 0)}"
            sent[job.id] = time.time()
            async with session.post(url, data=body, headers=headers) as response:
                assert response.status in (200, 202), await response.text()

        await asyncio.gather(*(one(index, job) for index, job in enumerate(jobs)))
    return sent


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    args = parser.parse_args()
    count = int(args.rate * args.seconds)
    folder = tempfile.mkdtemp(prefix="videohooks-e2e-")
    database_url = args.database_url or f"sqlite:///{folder}/e2e.db"
    if database_url.startswith("postgres"):
        database_url = await fresh_schema(database_url)
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    sock.close()
    service = f"http://127.0.0.1:{port}"
    simulator_secret = new_secret()
    env = {
        "VIDEOHOOKS_DATABASE_URL": database_url,
        "VIDEOHOOKS_ENCRYPTION_KEY": ENCRYPTION_KEY,
        "VIDEOHOOKS_PUBLIC_URL": service,
        "VIDEOHOOKS_SECRET_KEY": SECRET_KEY,
        "VIDEOHOOKS_SIMULATOR_WEBHOOK_SECRET": simulator_secret,
        "VIDEOHOOKS_API_KEYS": API_KEY,
        "VIDEOHOOKS_ALLOW_PRIVATE_URLS": "true",
        "VIDEOHOOKS_LOG_LEVEL": "WARNING",
    }
    receiver, subscriber = start_receiver()
    jobs = await prepare(env, subscriber + "/e2e", count)
    serve = subprocess.Popen(
        [sys.executable, "-m", "service", "serve", "--port", str(port)],
        env={key: value for key, value in os.environ.items() if not key.startswith("VIDEOHOOKS_")}
        | env,
        stdout=subprocess.DEVNULL,
    )
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(200):
                try:
                    if (await client.get(service + "/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
            sent = await send_webhooks(service, jobs, args.rate, simulator_secret)
            deadline = time.time() + 60
            while (
                int((await client.get(subscriber + "/count")).text) < count
                and time.time() < deadline
            ):
                await asyncio.sleep(0.05)
        found = await receipts(subscriber)
    finally:
        serve.terminate()
        serve.wait()
        receiver.terminate()
        receiver.wait()
    async with running(Settings.from_env(env)) as context:
        job_of = {}
        after = None
        while True:
            page = await context.store.list_events(None, 100, after)
            job_of |= {event.id: event.job_id for event in page.items}
            if not page.has_more:
                break
            after = page.items[-1].id
    latencies = [at - sent[job_of[event_id]] for event_id, _, at in found]
    print(
        f"\n{count} webhooks at {args.rate:g}/s for {args.seconds:g} s; "
        f"database {database_url.split(':', 1)[0]}; {os.cpu_count()} CPUs"
    )
    p50, p99 = percentile(latencies, 50) * 1000, percentile(latencies, 99) * 1000
    print(
        f"received {len(found)} of {count}; webhook -> subscriber receipt: "
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {max(latencies) * 1000:.1f} ms"
    )


if __name__ == "__main__":
    run(main())
