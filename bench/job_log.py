"""What a job's story (job_log, the dashboard's timeline) costs the hot path: the store's writes
that carry a note (a received webhook, a status that moved the job, the terminal transition) timed
with and without it, one caller after another, in alternating rounds so that a busy machine
weighs on both alike.

    .venv/bin/python bench/job_log.py
    .venv/bin/python bench/job_log.py --database-url postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))

from fanout import fresh_schema

from service.encryption import Cipher
from storage import Store, open_store
from storage.ids import new_id
from storage.records import Event, Job, JobFinal, JobNote, JobProgress

ROUNDS = 10
PER_ROUND = 100


def a_job() -> Job:
    now = time.time()
    return Job(
        id=new_id("vid"),
        status="queued",
        model="simulator/default",
        provider="simulator",
        request={"model": "simulator/default", "fallback_models": []},
        attempts=[{"provider": "simulator", "model": "simulator/default"}],
        created_at=now,
        updated_at=now,
        deadline_at=now + 3600,
        next_check_at=now + 3600,
    )


async def jobs(store: Store, count: int) -> list[Job]:
    made = [a_job() for _ in range(count)]
    for job in made:
        await store.create_job(job)
    return made


async def timed(operation: Callable[[Job], Awaitable[object]], batch: list[Job]) -> float:
    """Microseconds per call, one call after another."""
    started = time.perf_counter()
    for job in batch:
        await operation(job)
    return (time.perf_counter() - started) / len(batch) * 1e6


def webhook(noted: bool) -> Callable[[Store], Callable[[Job], Awaitable[object]]]:
    note = JobNote("webhook", {"outcome": "accepted", "signed": True}) if noted else None
    return lambda store: (
        lambda job: store.add_webhook(
            job.id, "simulator", 0, True, {"status": "in_progress"}, b"{}", time.time(), note
        )
    )


def progress(noted: bool) -> Callable[[Store], Callable[[Job], Awaitable[object]]]:
    note = JobNote("status", {"status": "in_progress", "source": "webhook"}) if noted else None
    return lambda store: (
        lambda job: store.record_progress(
            job.id, 0, JobProgress("in_progress", 50), time.time(), note=note
        )
    )


def finish(noted: bool) -> Callable[[Store], Callable[[Job], Awaitable[object]]]:
    def operation(store: Store) -> Callable[[Job], Awaitable[object]]:
        async def finish_one(job: Job) -> object:
            now = time.time()
            event = Event(
                id=new_id("evt"),
                type="video.completed",
                job_id=job.id,
                payload="{}",
                created_at=now,
            )
            final = JobFinal("completed", 100, [], None, job.attempts, now)
            note = JobNote("finished", {"status": "completed", "event_id": event.id})
            return await store.finish_job(
                job.id, 0, final, event, lambda subscriptions: [], note if noted else None
            )

        return finish_one

    return operation


async def main(database_url: str | None) -> None:
    with tempfile.TemporaryDirectory() as folder:
        url = database_url or f"sqlite:///{folder}/bench.db"
        if database_url:
            url = await fresh_schema(database_url)
        store = await open_store(url, Cipher([os.urandom(32)]))
        await store.migrate()
        try:
            print(f"database {url.split(':')[0]}; {ROUNDS} alternating rounds of {PER_ROUND}")
            print("| write | without a note | with a note | extra |")
            print("|---|---|---|---|")
            for name, make in (
                ("received webhook", webhook),
                ("status that moved the job", progress),
                ("terminal transition", finish),
            ):
                without, with_note = [], []
                for _ in range(ROUNDS):
                    for noted, times in ((False, without), (True, with_note)):
                        batch = await jobs(store, PER_ROUND)
                        times.append(await timed(make(noted)(store), batch))
                plain, noted = statistics.median(without), statistics.median(with_note)
                print(
                    f"| {name} | {plain:.0f} µs | {noted:.0f} µs | "
                    f"{noted - plain:+.0f} µs ({(noted / plain - 1) * 100:+.0f}%) |"
                )
        finally:
            await store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url")
    asyncio.run(main(parser.parse_args().database_url))
