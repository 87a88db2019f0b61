"""`--processes N`: serve, web and worker run their work in N processes behind one supervisor
(service/supervisor.py). Every process drains on SIGTERM, a killed one is replaced and its work
recovered, none outlives the supervisor, and metrics count the work of all."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.support.processes import Process
from tests.support.servers import eventually, free_port
from tests.support.subscriber import recording_subscriber
from tests.test_processes import (
    api,
    claimed_rows,
    delivery_statuses,
    process_env,
    seed_events,
    unrecorded_sends,
)

pytestmark = pytest.mark.usefixtures("processes_reaped")

SUCCEEDED = re.compile(r'^videohooks_deliveries_total\{outcome="succeeded".*\} (\S+)$', re.M)


def children(pid: int) -> set[int]:
    """The running (not zombie) processes whose parent is `pid`."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The command name in parentheses may hold spaces; the fields after it do not.
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # it ended while we looked
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def worker_pids(db: Path) -> set[int]:
    """The processes with a live heartbeat row (service/heartbeat.py)."""
    with sqlite3.connect(db) as conn:
        return {int(row[0]) for row in conn.execute("SELECT pid FROM workers").fetchall()}


def claimers(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT DISTINCT claimed_by FROM deliveries WHERE claimed_by IS NOT NULL"
        ).fetchall()
    return {row[0] for row in rows}


def succeeded(metrics: str) -> float:
    return sum(float(value) for value in SUCCEEDED.findall(metrics))


async def two_busy_workers(env: dict[str, str], folder: Path) -> tuple[Process, set[int]]:
    """`worker --processes 2` once each of its processes has claimed deliveries; its children."""
    worker = await Process.start(["worker", "--processes", "2"], env, folder)
    await worker.expect(r"videohooks workers \(.*2 processes\)", timeout=120)
    pids = children(worker.proc.pid)
    assert len(pids) == 2
    await eventually(lambda: len(claimers(folder / "videohooks.db")) == 2, timeout=30)
    return worker, pids


async def test_serve_runs_in_n_processes_on_one_port_and_reports_the_work_of_all(tmp_path):
    env = process_env(tmp_path, VIDEOHOOKS_DELIVERY_CONCURRENCY="8")
    db = tmp_path / "videohooks.db"
    async with recording_subscriber(delay=0.01) as subscriber:
        await seed_events(env, 300, subscriber.url)
        serve = await Process.start(["serve", "--port", "0", "--processes", "2"], env, tmp_path)
        url = await serve.url()
        assert "2 processes" in serve.lines[-1]
        pids = children(serve.proc.pid)
        assert len(pids) == 2
        await eventually(lambda: worker_pids(db) == pids)
        async with api(url) as client:
            await client.post("/v1/subscriptions", json={"url": subscriber.url})
            for _ in range(10):
                answer = await client.post(
                    "/v1/videos",
                    json={"model": "simulator/x", "input": {"simulate": {"after_s": 0.1}}},
                )
                assert answer.status_code == 202
        # 300 seeded events to one subscription, 10 jobs' events to two.
        await eventually(lambda: len(subscriber.received) >= 320, timeout=60)
        await eventually(lambda: delivery_statuses(db) == {"succeeded": 320}, timeout=30)

        async def every_process_counts_all() -> bool:
            # A new connection each time, so that any of the processes may answer.
            for _ in range(6):
                async with api(url) as client:
                    if succeeded((await client.get("/metrics")).text) != 320:
                        return False
            return True

        await eventually(every_process_counts_all, timeout=30)
        serve.signal(signal.SIGTERM)
        assert await serve.exit_code() == 0
    assert not any(alive(pid) for pid in pids)
    assert claimed_rows(db) == 0


async def test_sigterm_drains_every_process_and_records_what_each_had_in_flight(tmp_path):
    env = process_env(
        tmp_path,
        VIDEOHOOKS_DELIVERY_CONCURRENCY="4",
        VIDEOHOOKS_DELIVERY_TIMEOUT="10s",
        VIDEOHOOKS_DRAIN_TIMEOUT="20s",
    )
    db = tmp_path / "videohooks.db"
    async with recording_subscriber(delay=1.0) as subscriber:
        await seed_events(env, 40, subscriber.url)
        # Both processes hold deliveries that are on their way to the slow subscriber.
        worker, pids = await two_busy_workers(env, tmp_path)
        worker.signal(signal.SIGTERM)
        assert await worker.exit_code() == 0
        assert not any(alive(pid) for pid in pids)
        received = len(subscriber.event_ids())
    assert claimed_rows(db) == 0
    statuses = delivery_statuses(db)
    # Every delivery that reached the subscriber was recorded by the process that sent it; the
    # rest wait for the next start.
    assert statuses == {"succeeded": received, "pending": 40 - received}
    assert received >= 2


async def test_a_killed_process_is_replaced_and_its_work_recovered(tmp_path):
    env = process_env(
        tmp_path,
        VIDEOHOOKS_DELIVERY_CONCURRENCY="8",
        VIDEOHOOKS_DELIVERY_TIMEOUT="1s",
    )
    db = tmp_path / "videohooks.db"
    async with recording_subscriber(delay=0.05) as subscriber:
        await seed_events(env, 300, subscriber.url)
        worker, pids = await two_busy_workers(env, tmp_path)
        os.kill(min(pids), signal.SIGKILL)
        await eventually(lambda: len(children(worker.proc.pid) - pids) == 1, timeout=30)
        await eventually(lambda: len(subscriber.event_ids()) == 300, timeout=90)
        await eventually(lambda: delivery_statuses(db) == {"succeeded": 300}, timeout=30)
        assert await worker.stop() == 0
    assert claimed_rows(db) == 0
    assert "a process died; starting another" in await worker.stderr()
    # No event arrived twice beyond its recorded attempts: only the killed process's sends in
    # flight when it died went unrecorded (unrecorded_sends fails otherwise).
    unrecorded_sends(db, [item.event["id"] for item in subscriber.received])


async def test_no_process_outlives_a_killed_supervisor_and_a_restart_finishes_the_work(tmp_path):
    port = free_port()
    env = process_env(
        tmp_path,
        VIDEOHOOKS_DELIVERY_CONCURRENCY="8",
        VIDEOHOOKS_DELIVERY_TIMEOUT="1s",
        VIDEOHOOKS_METRICS_LISTEN=f"127.0.0.1:{port}",
    )
    db = tmp_path / "videohooks.db"
    async with recording_subscriber(delay=0.05) as subscriber:
        await seed_events(env, 300, subscriber.url)
        worker, pids = await two_busy_workers(env, tmp_path)
        worker.signal(signal.SIGKILL)
        assert await worker.exit_code() == -signal.SIGKILL
        await eventually(lambda: not any(alive(pid) for pid in pids), timeout=30)
        assert len(subscriber.event_ids()) < 300
        recorded_before = delivery_statuses(db).get("succeeded", 0)

        again = await Process.start(["worker", "--processes", "2"], env, tmp_path)
        await again.expect(r"videohooks workers")
        await eventually(lambda: len(subscriber.event_ids()) == 300, timeout=90)
        await eventually(lambda: delivery_statuses(db) == {"succeeded": 300}, timeout=30)

        # The supervisor's metrics count what every one of its processes sent in this run.
        async def counted() -> bool:
            async with httpx.AsyncClient() as client:
                metrics = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
            return succeeded(metrics) == 300 - recorded_before

        await eventually(counted, timeout=30)
        assert await again.stop() == 0
    assert claimed_rows(db) == 0


async def test_a_number_of_processes_that_is_not_positive_is_refused_with_status_2(tmp_path):
    flag = await Process.start(["worker", "--processes", "0"], {}, tmp_path)
    assert await flag.exit_code() == 2
    assert "--processes: '0' is not a positive whole number" in await flag.stderr()
    variable = await Process.start(["worker"], {"VIDEOHOOKS_PROCESSES": "two"}, tmp_path)
    assert await variable.exit_code() == 2
    assert "VIDEOHOOKS_PROCESSES" in await variable.stderr()
