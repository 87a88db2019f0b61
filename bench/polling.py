"""Polling benchmark: many poll-only jobs in flight, finishing at random times over a window.

Runs the service in this process (API with the simulator, and the worker; no public URL, so every
job is polled) and reports polls per job (counted by the simulator), detection lag (from the
moment a job finished at the simulator to its event), and peak RSS — beside what a naive poller
asking every 5 seconds would do for the very same jobs (computed: ceil(duration / 5) polls and
5·ceil(duration / 5) − duration of lag each).

    .venv/bin/python bench/polling.py                 # 10,000 jobs over 5 minutes
    .venv/bin/python bench/polling.py --scale 0.1     # 1,000 jobs over 30 s
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))

from fanout import ENCRYPTION_KEY, percentile

from handlers.simulator import _decode_id
from service.cli import run
from service.server import Service, bind
from service.settings import Settings
from storage.ids import new_id
from storage.records import Job

NAIVE_INTERVAL = 5.0


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--window", type=float, default=300.0, help="seconds")
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies jobs and window")
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    count, window = int(args.jobs * args.scale), args.window * args.scale
    folder = tempfile.mkdtemp(prefix="videohooks-polling-")
    env = {
        "VIDEOHOOKS_DATABASE_URL": args.database_url or f"sqlite:///{folder}/polling.db",
        "VIDEOHOOKS_ENCRYPTION_KEY": ENCRYPTION_KEY,
        "VIDEOHOOKS_API_KEYS": "bench",
        "VIDEOHOOKS_LOG_LEVEL": "WARNING",
        "VIDEOHOOKS_PROVIDER_CONCURRENCY": "32",
    }
    random.seed(7)
    durations = [random.uniform(window * 0.02, window) for _ in range(count)]
    async with Service(Settings.from_env(env), bind("127.0.0.1", 0)) as service:
        store, now = service.context.store, time.time()
        for duration in durations:
            simulate = {"after_s": round(duration, 3), "webhook": False}
            await store.create_job(
                Job(
                    id=new_id("vid"),
                    status="queued",
                    model="simulator/bench",
                    provider="simulator",
                    request={
                        "model": "simulator/bench",
                        "fallback_models": [],
                        "input": {"simulate": simulate},
                    },
                    attempts=[{"provider": "simulator", "model": "simulator/bench"}],
                    created_at=now,
                    updated_at=now,
                    deadline_at=now + 86400,
                    next_check_at=now,
                )
            )
        deadline = time.time() + window * 1.5 + 60
        while (await store.list_jobs("in_progress", 1, None)).items or (
            await store.list_jobs("queued", 1, None)
        ).items:
            if time.time() > deadline:
                raise SystemExit("jobs did not finish in time")
            await asyncio.sleep(1)
        polls = dict(service.context.simulator.poll_counts)
        jobs, after = [], None
        while True:
            page = await store.list_jobs("completed", 100, after)
            jobs += page.items
            if not page.has_more:
                break
            after = page.items[-1].id
    lags, relative, ours = [], [], []
    for job in jobs:
        _, started, script = _decode_id(job.provider_job_id or "")
        finished = started + script.after_s
        lags.append((job.completed_at or 0) - finished)
        relative.append(lags[-1] / script.after_s)
        ours.append(polls.get(job.provider_job_id or "", 0))
    naive_polls = [math.ceil(duration / NAIVE_INTERVAL) for duration in durations]
    naive_lags = [NAIVE_INTERVAL * math.ceil(d / NAIVE_INTERVAL) - d for d in durations]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"\n{len(jobs)} of {count} poll-only jobs, durations uniform over "
        f"{window * 0.02:.0f}-{window:.0f} s; {os.cpu_count()} CPUs"
    )
    print(
        f"videohooks: {sum(ours) / len(ours):.2f} polls per job; detection lag p50 "
        f"{percentile(lags, 50):.2f} s, p95 {percentile(lags, 95):.2f} s; p95 lag / duration "
        f"{percentile(relative, 95) * 100:.1f} %; peak RSS {peak_mb:.0f} MB (service and bench)"
    )
    print(
        f"naive 5 s poller: {sum(naive_polls) / len(naive_polls):.2f} polls per job; lag p50 "
        f"{percentile(naive_lags, 50):.2f} s, p95 {percentile(naive_lags, 95):.2f} s"
    )
    print(f"polls, videohooks / naive: {sum(ours) / sum(naive_polls):.3f}")


if __name__ == "__main__":
    run(main())
