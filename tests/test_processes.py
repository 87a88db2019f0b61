"""The commands as an operator runs them: real processes, signals, two processes on one file."""

from __future__ import annotations

import asyncio
import hashlib
import signal
import sqlite3
import time
from pathlib import Path

import httpx2 as httpx
import pytest

from service.context import running
from service.server import bind
from service.settings import Settings
from service.signing import new_secret
from storage.ids import new_id
from storage.records import Subscription
from tests.support.events import finish_jobs
from tests.support.processes import Process
from tests.support.servers import eventually
from tests.support.service import API_KEY
from tests.support.subscriber import recording_subscriber

pytestmark = pytest.mark.usefixtures("processes_reaped")


def claimed_rows(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return sum(
            conn.execute(f"SELECT count(*) FROM {table} WHERE claimed_by IS NOT NULL").fetchone()[0]
            for table in ("jobs", "inbound_webhooks", "deliveries")
        )


def unrecorded_sends(db: Path, received: list[str]) -> int:
    """How many times an event (one subscription) reached the subscriber beyond the attempts
    recorded for it: sends by a process that died before recording them. Fails if one event
    arrived twice more than recorded (a live process sending twice)."""
    with sqlite3.connect(db) as conn:
        recorded = dict(
            conn.execute(
                "SELECT d.event_id, count(a.id) FROM deliveries d"
                " LEFT JOIN delivery_attempts a ON a.delivery_seq = d.seq GROUP BY d.seq"
            ).fetchall()
        )
    extra = {event: received.count(event) - count for event, count in recorded.items()}
    assert all(count <= 1 for count in extra.values()), extra
    return sum(count for count in extra.values() if count > 0)


def delivery_statuses(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        return dict(
            conn.execute("SELECT status, count(*) FROM deliveries GROUP BY status").fetchall()
        )


async def test_serve_on_a_fresh_folder_creates_the_database_and_prints_a_key_once(tmp_path):
    serve = await Process.start(["serve", "--port", "0"], {}, tmp_path)
    key = (await serve.expect(r"API key \(shown once; only its hash is stored\): (vhk_\S+)")).group(
        1
    )
    url = await serve.url()
    db = tmp_path / "videohooks.db"
    assert db.exists()
    async with httpx.AsyncClient(base_url=url) as client:
        answer = await client.get("/v1/videos", headers={"authorization": f"Bearer {key}"})
        assert answer.status_code == 200
    assert await serve.stop() == 0
    stored = b"".join(path.read_bytes() for path in tmp_path.glob("videohooks.db*"))
    assert key.encode() not in stored
    assert hashlib.sha256(key.encode()).hexdigest().encode() in stored

    again = await Process.start(["serve", "--port", "0"], {}, tmp_path)
    url = await again.url()
    assert not any("vhk_" in line for line in again.lines)
    async with httpx.AsyncClient(base_url=url) as client:
        answer = await client.get("/v1/videos", headers={"authorization": f"Bearer {key}"})
        assert answer.status_code == 200
    assert await again.stop() == 0


async def test_bad_configuration_exits_2_with_one_line_naming_the_variable(tmp_path):
    process = await Process.start(["serve"], {"VIDEOHOOKS_RETRY_SCHEDULE": "5s,soon"}, tmp_path)
    assert await process.exit_code() == 2
    lines = (await process.stderr()).strip().splitlines()
    assert len(lines) == 1 and "VIDEOHOOKS_RETRY_SCHEDULE" in lines[0]


def process_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "VIDEOHOOKS_DATABASE_URL": f"sqlite:///{tmp_path}/videohooks.db",
        "VIDEOHOOKS_API_KEYS": API_KEY,
        "VIDEOHOOKS_ALLOW_PRIVATE_URLS": "true",
        "VIDEOHOOKS_POLL_MIN": "100ms",
        "VIDEOHOOKS_IDLE_POLL": "50ms",
        "VIDEOHOOKS_RETRY_SCHEDULE": "200ms,400ms",
    } | extra


def api(url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, headers={"authorization": f"Bearer {API_KEY}"})


async def test_sigterm_lets_in_flight_deliveries_finish_and_records_them(tmp_path):
    env = process_env(tmp_path, VIDEOHOOKS_DELIVERY_TIMEOUT="5s", VIDEOHOOKS_DRAIN_TIMEOUT="10s")
    async with recording_subscriber(delay=1.5) as subscriber:
        serve = await Process.start(["serve", "--port", "0"], env, tmp_path)
        async with api(await serve.url()) as client:
            await client.post("/v1/subscriptions", json={"url": subscriber.url})
            for _ in range(3):
                await client.post(
                    "/v1/videos",
                    json={"model": "simulator/x", "input": {"simulate": {"after_s": 0.1}}},
                )
        await eventually(lambda: len(subscriber.received) == 3)
        serve.signal(signal.SIGTERM)
        assert await serve.exit_code() == 0
    db = tmp_path / "videohooks.db"
    assert claimed_rows(db) == 0
    assert delivery_statuses(db) == {"succeeded": 3}


async def test_sigterm_releases_deliveries_that_outlast_the_drain(tmp_path):
    env = process_env(tmp_path, VIDEOHOOKS_DELIVERY_TIMEOUT="20s", VIDEOHOOKS_DRAIN_TIMEOUT="500ms")
    async with recording_subscriber(delay=3) as subscriber:
        serve = await Process.start(["serve", "--port", "0"], env, tmp_path)
        async with api(await serve.url()) as client:
            await client.post("/v1/subscriptions", json={"url": subscriber.url})
            await client.post(
                "/v1/videos", json={"model": "simulator/x", "input": {"simulate": {"after_s": 0.1}}}
            )
        await eventually(lambda: subscriber.received)
        serve.signal(signal.SIGTERM)
        assert await serve.exit_code() == 0
        db = tmp_path / "videohooks.db"
        # It did not wait for the 3 s answer (that would have recorded a success): the delivery
        # was released for retry, not lost and not left claimed.
        assert claimed_rows(db) == 0
        assert delivery_statuses(db) == {"pending": 1}


async def test_web_and_worker_processes_share_one_sqlite_file(tmp_path):
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    sock.close()
    env = process_env(tmp_path, VIDEOHOOKS_PUBLIC_URL=f"http://127.0.0.1:{port}")
    async with recording_subscriber() as subscriber:
        web = await Process.start(["web", "--port", str(port)], env, tmp_path)
        url = await web.url()
        worker = await Process.start(["worker"], env, tmp_path)
        await worker.expect("worker")
        async with api(url) as client:
            await client.post("/v1/subscriptions", json={"url": subscriber.url})
            body = {"model": "simulator/x", "input": {"simulate": {"after_s": 0.2}}}
            answers = await asyncio.gather(
                *(client.post("/v1/videos", json=body) for _ in range(40))
            )
            assert all(answer.status_code == 202 for answer in answers)
            await eventually(lambda: len(subscriber.event_ids()) == 40, timeout=30)
            listed = await asyncio.gather(*(client.get("/v1/events") for _ in range(20)))
            assert all(answer.status_code == 200 for answer in listed)
        assert await worker.stop() == 0
        assert await web.stop() == 0
    logs = await web.stderr() + await worker.stderr()
    assert "locked" not in logs.replace("database busy, retrying", "")
    assert claimed_rows(tmp_path / "videohooks.db") == 0


async def test_demo_runs_the_tour_and_exits_0(tmp_path):
    demo = await Process.start(["demo"], {}, tmp_path)
    await demo.expect("demo complete", timeout=60)
    assert await demo.exit_code() == 0
    verified = [
        line for line in demo.lines if "signature verified" in line and "standardwebhooks" in line
    ]
    assert len(verified) == 3
    for label in ("(webhook)", "(polled)", "(failed)"):
        assert any(label in line for line in verified), label


async def seed_events(env: dict[str, str], count: int, subscriber_url: str) -> None:
    """Creates `count` terminal events with their deliveries, as finished jobs would."""
    async with running(Settings.from_env(env)) as context:
        now = time.time()
        await context.store.create_subscription(
            Subscription(
                id=new_id("sub"),
                url=subscriber_url,
                events=["video.completed", "video.failed"],
                secret=new_secret(),
                created_at=now,
                updated_at=now,
            )
        )
        await finish_jobs(context, count)


async def test_kill_9_mid_fan_out_loses_nothing(tmp_path):
    env = process_env(
        tmp_path, VIDEOHOOKS_DELIVERY_TIMEOUT="1s", VIDEOHOOKS_DELIVERY_CONCURRENCY="10"
    )
    async with recording_subscriber(delay=0.05) as subscriber:
        await seed_events(env, 500, subscriber.url)
        worker = await Process.start(["worker"], env, tmp_path)
        await eventually(lambda: len(subscriber.received) >= 100, timeout=30)
        worker.signal(signal.SIGKILL)
        assert await worker.exit_code() == -signal.SIGKILL
        db = tmp_path / "videohooks.db"
        held = claimed_rows(db)
        assert held > 0  # the dead worker's claims are still there
        assert len(subscriber.event_ids()) < 500

        restarted = await Process.start(["worker"], env, tmp_path)
        await eventually(lambda: len(subscriber.event_ids()) == 500, timeout=60)
        await eventually(lambda: delivery_statuses(db) == {"succeeded": 500}, timeout=10)
        assert await restarted.stop() == 0
        assert claimed_rows(db) == 0
        # Every send was recorded but for what the killed worker held (sent, or answered but
        # not yet recorded) when it died.
        received = [item.event["id"] for item in subscriber.received]
        assert unrecorded_sends(db, received) <= held


async def test_listen_prints_each_delivery_and_whether_it_verified(tmp_path):
    secret = "whsec_" + "bGlzdGVuLXNlY3JldC1mb3ItdGVzdHM="
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    sock.close()
    listen = await Process.start(["listen", "--port", str(port), "--secret", secret], {}, tmp_path)
    url = (await listen.expect(r"listening on (http://\S+)")).group(1)
    from tests.support.signing import signed

    event = {
        "id": "evt_1",
        "type": "video.completed",
        "data": {"id": "vid_1", "outputs": [{"url": "https://cdn/v.mp4"}]},
    }
    body, headers = signed(secret, event, msg_id="evt_1")
    async with httpx.AsyncClient() as client:
        assert (await client.post(url, content=body, headers=headers)).status_code == 204
        bad = dict(headers, **{"webhook-signature": "v1,AAAA"})
        await client.post(url + "/x", content=body, headers=bad)
    await listen.expect(
        r"video.completed evt_1 for vid_1: signature verified; output https://cdn/v.mp4"
    )
    await listen.expect(r"SIGNATURE DID NOT VERIFY")
    assert await listen.stop() == 0
