"""SQLite reads that arrive together share one hand-off to the reader's thread
(storage/sqlite.py): each still gets its own rows, and a read that fails fails alone."""

from __future__ import annotations

import asyncio
import time

import pytest

from storage import Store
from storage.base import StorageError
from storage.ids import new_id
from storage.records import Job

pytestmark = pytest.mark.anyio


def a_job() -> Job:
    now = time.time()
    return Job(
        id=new_id("vid"),
        status="queued",
        model="simulator/default",
        provider="simulator",
        created_at=now,
        updated_at=now,
        deadline_at=now + 600,
    )


async def test_reads_made_together_each_get_their_own_rows(store: Store) -> None:
    jobs = [a_job() for _ in range(50)]
    for job in jobs:
        await store.create_job(job)
    found = await asyncio.gather(*(store.get_job(job.id) for job in jobs))
    assert [job.id for job in found if job is not None] == [job.id for job in jobs]


async def test_a_read_that_fails_among_others_fails_alone(store: Store) -> None:
    jobs = [a_job() for _ in range(10)]
    for job in jobs:
        await store.create_job(job)
    reads = [store.get_job(job.id) for job in jobs[:5]]
    reads.append(store._read("SELECT no_such_column FROM jobs", {}))  # type: ignore[attr-defined]
    reads += [store.get_job(job.id) for job in jobs[5:]]
    outcomes = await asyncio.gather(*reads, return_exceptions=True)
    assert isinstance(outcomes[5], StorageError)
    rest = outcomes[:5] + outcomes[6:]
    assert [getattr(job, "id", job) for job in rest] == [job.id for job in jobs]
