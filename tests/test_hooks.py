"""Where automations live: REST hooks (the Zapier convention), subscriptions found by URL, events
since a time, and sample events, over real HTTP on both backends."""

from __future__ import annotations

import json
import time

import pytest

from service.models import EventOut
from storage.ids import new_id
from storage.records import Event, Job, JobFinal
from tests.support.databases import BACKENDS
from tests.support.events import finish_jobs
from tests.support.servers import eventually
from tests.support.service import running_service
from tests.support.subscriber import recording_subscriber

pytestmark = pytest.mark.parametrize("backend", BACKENDS, indirect=True)


async def subscribe_hook(svc, target_url, event="video.completed"):
    answer = await svc.api.post("/v1/hooks", json={"target_url": target_url, "event": event})
    assert answer.status_code == 201, answer.text
    return answer.json()


async def listed(svc, path, **params):
    answer = await svc.api.get(path, params=params)
    assert answer.status_code == 200, answer.text
    return json.loads(answer.text)


async def test_a_hook_receives_a_signed_delivery_of_a_simulator_job(env):
    async with recording_subscriber() as target, running_service(env) as svc:
        hook = await subscribe_hook(svc, target.url + "/zap", "video.completed")
        assert hook["id"].startswith("hook_") and hook["object"] == "hook"
        assert hook["target_url"] == target.url + "/zap" and hook["event"] == "video.completed"
        assert hook["secret"].startswith("whsec_") and hook["created_at"] >= int(time.time()) - 5
        target.secrets = [hook["secret"]]

        video = await svc.submit({"after_s": 0.2})
        await eventually(lambda: target.received)
        [delivery] = target.received
        assert delivery.verified and delivery.path == "/zap"
        assert delivery.event["type"] == "video.completed"
        assert delivery.event["data"]["id"] == video["id"]
        assert delivery.headers["webhook-id"] == delivery.event["id"]

        shown = (await svc.api.get(f"/v1/hooks/{hook['id']}")).json()
        assert "secret" not in shown and shown["event"] == "video.completed"
        page = await listed(svc, "/v1/hooks")
        assert [h["id"] for h in page["data"]] == [hook["id"]] and "secret" not in page["data"][0]
        # Its deliveries are deliveries like any other: listed, with their attempts.
        [record] = (await listed(svc, "/v1/deliveries", subscription_id=hook["id"]))["data"]
        assert record["status"] == "succeeded" and record["attempts"][0]["status_code"] == 200


async def test_a_hook_gets_only_its_event_type_and_star_gets_every_type(env):
    async with (
        recording_subscriber() as failed_only,
        recording_subscriber() as everything,
        running_service(env) as svc,
    ):
        await subscribe_hook(svc, failed_only.url, "video.failed")
        await subscribe_hook(svc, everything.url, "*")
        await svc.submit({"after_s": 0.1})
        await svc.submit({"after_s": 0.1, "outcome": "failed"})
        await eventually(lambda: len(everything.received) == 2)
        assert {e["type"] for e in everything.events()} == {"video.completed", "video.failed"}
        await eventually(lambda: failed_only.received)
        assert [e["type"] for e in failed_only.events()] == ["video.failed"]


async def test_a_hook_whose_target_answers_410_is_removed(env):
    async with (
        recording_subscriber(default_status=410) as gone,
        recording_subscriber() as witness,
        running_service(env) as svc,
    ):
        hook = await subscribe_hook(svc, gone.url, "*")
        await finish_jobs(svc.context, 1)
        await eventually(
            lambda: _status(svc, f"/v1/hooks/{hook['id']}", 404), timeout=20, interval=0.05
        )
        assert (await listed(svc, "/v1/hooks"))["data"] == []
        [delivery] = (await listed(svc, "/v1/deliveries", subscription_id=hook["id"]))["data"]
        assert delivery["status"] == "failed" and delivery["attempt_count"] == 1

        # A later event goes to nobody there: once a receiver subscribed after the removal
        # has it, the removed hook has had its chance and got nothing.
        await subscribe_hook(svc, witness.url, "*")
        await finish_jobs(svc.context, 1)
        await eventually(lambda: witness.received)
        assert len(gone.received) == 1
        assert len((await listed(svc, "/v1/deliveries", subscription_id=hook["id"]))["data"]) == 1


async def test_a_subscription_answering_410_is_kept_disabled_not_removed(env):
    async with recording_subscriber(default_status=410) as gone, running_service(env) as svc:
        subscription = await svc.subscribe(gone.url)
        await finish_jobs(svc.context, 1)
        found = await eventually(lambda: _disabled(svc, subscription["id"]), timeout=20)
        assert "410" in found["disabled_reason"]


async def test_a_hook_removed_while_a_delivery_to_it_is_in_flight_gets_no_retry(env):
    async with recording_subscriber(default_status=500, delay=1.0) as target:
        async with running_service(env) as svc:
            hook = await subscribe_hook(svc, target.url, "*")
            await finish_jobs(svc.context, 1)
            await eventually(lambda: target.received)  # the attempt is in flight
            deleted = await svc.api.delete(f"/v1/hooks/{hook['id']}")
            assert deleted.json() == {"id": hook["id"], "object": "hook", "deleted": True}
            [delivery] = await eventually(lambda: _attempted(svc, hook["id"]), timeout=20)
            # Recorded as cancelled, not queued for a retry signed by some other secret.
            assert delivery["status"] == "cancelled"
            assert len(target.received) == 1


async def test_hooks_and_subscriptions_are_separate_resources(env):
    async with running_service(env, worker=False) as svc:
        hook = await subscribe_hook(svc, "http://127.0.0.1:9/zap")
        subscription = await svc.subscribe("http://127.0.0.1:9/sub")
        assert [s["id"] for s in (await listed(svc, "/v1/subscriptions"))["data"]] == [
            subscription["id"]
        ]
        assert await _status(svc, f"/v1/subscriptions/{hook['id']}", 404)
        assert (await svc.api.delete(f"/v1/subscriptions/{hook['id']}")).status_code == 404
        assert await _status(svc, f"/v1/hooks/{subscription['id']}", 404)
        assert (await svc.api.delete(f"/v1/hooks/{subscription['id']}")).status_code == 404
        assert (await svc.api.delete(f"/v1/hooks/{hook['id']}")).status_code == 200
        assert (await svc.api.delete(f"/v1/hooks/{hook['id']}")).status_code == 404
        assert await _status(svc, f"/v1/subscriptions/{subscription['id']}", 200)


async def test_hook_requests_are_validated(env):
    async with running_service(env, worker=False) as svc:
        for body, field in (
            ({"target_url": "http://127.0.0.1:9/x", "event": "video.started"}, "event"),
            ({"event": "*"}, "target_url"),
            ({"target_url": "ftp://example.com/x", "event": "*"}, "target_url"),
            ({"target_url": "http://127.0.0.1:9/x", "event": "*", "extra": 1}, "extra"),
        ):
            answer = await svc.api.post("/v1/hooks", json=body)
            assert answer.status_code == 422, body
            error = answer.json()["error"]
            assert error["code"] == "invalid_request" and field in json.dumps(error["details"])
        unknown = await svc.api.get("/v1/hooks", params={"url": "x"})
        assert unknown.status_code == 422
        bad_cursor = await svc.api.get("/v1/hooks", params={"after": "hook_nope"})
        assert bad_cursor.status_code == 404


async def test_many_hooks_page_with_a_cursor_and_are_found_by_target_url(env):
    async with running_service(env, worker=False) as svc:
        made = [await subscribe_hook(svc, f"http://127.0.0.1:9/zap/{n}") for n in range(5)]
        first = await listed(svc, "/v1/hooks", limit=3)
        assert first["has_more"] and len(first["data"]) == 3
        rest = await listed(svc, "/v1/hooks", limit=3, after=first["next_cursor"])
        assert not rest["has_more"]
        seen = [h["id"] for h in first["data"] + rest["data"]]
        assert seen == [h["id"] for h in reversed(made)]
        found = await listed(svc, "/v1/hooks", target_url="http://127.0.0.1:9/zap/2")
        assert [h["id"] for h in found["data"]] == [made[2]["id"]]


async def test_subscriptions_are_found_by_exact_url(env):
    async with running_service(env, worker=False) as svc:
        one = await svc.subscribe("http://127.0.0.1:9/a")
        await svc.subscribe("http://127.0.0.1:9/ab")
        twin = await svc.subscribe("http://127.0.0.1:9/a", description="a second one")
        await subscribe_hook(svc, "http://127.0.0.1:9/a")  # a hook, not a subscription
        found = await listed(svc, "/v1/subscriptions", url="http://127.0.0.1:9/a")
        assert found["object"] == "list"
        assert [s["id"] for s in found["data"]] == [twin["id"], one["id"]]
        nothing = await listed(svc, "/v1/subscriptions", url="http://127.0.0.1:9/")
        assert nothing["data"] == [] and nothing["has_more"] is False
        paged = await listed(svc, "/v1/subscriptions", url="http://127.0.0.1:9/a", limit=1)
        assert paged["has_more"] and paged["next_cursor"] == twin["id"]


async def test_events_since_a_time_page_with_the_cursor(env):
    async with running_service(env, worker=False) as svc:
        made = [
            await _event_at(svc, 1_000_000),
            await _event_at(svc, 2_000_000),
            await _event_at(svc, 2_000_500, "video.failed"),
            await _event_at(svc, 3_000_000),
        ]
        everything = await listed(svc, "/v1/events")
        assert [e["id"] for e in everything["data"]] == list(reversed(made))
        since = await listed(svc, "/v1/events", since=2_000_000)
        assert [e["id"] for e in since["data"]] == [made[3], made[2], made[1]]
        first = await listed(svc, "/v1/events", since=2_000_000, limit=2)
        assert first["has_more"] and [e["id"] for e in first["data"]] == [made[3], made[2]]
        rest = await listed(svc, "/v1/events", since=2_000_000, after=first["next_cursor"])
        assert not rest["has_more"] and [e["id"] for e in rest["data"]] == [made[1]]
        typed = await listed(svc, "/v1/events", since=2_000_000, type="video.completed")
        assert [e["id"] for e in typed["data"]] == [made[3], made[1]]
        later = await listed(svc, "/v1/events", since=2_000_001)
        assert [e["id"] for e in later["data"]] == [made[3], made[2]]
        for bad in ("yesterday", "-5", "1.5"):
            answer = await svc.api.get("/v1/events", params={"since": bad})
            assert answer.status_code == 422 and "since" in answer.text


async def test_a_sample_event_is_built_like_a_real_one_and_stored_nowhere(env):
    async with running_service(env, worker=False) as svc:
        completed = await svc.api.get("/v1/events/sample", params={"type": "video.completed"})
        assert completed.status_code == 200
        sample = EventOut.model_validate(completed.json())
        assert sample.type == "video.completed" and sample.data.status == "completed"
        assert sample.data.outputs and sample.data.outputs[0].content_type == "video/mp4"
        assert sample.data.error is None
        failed = EventOut.model_validate(
            (await svc.api.get("/v1/events/sample", params={"type": "video.failed"})).json()
        )
        assert failed.data.status == "failed" and failed.data.error is not None
        assert not failed.data.outputs
        default = (await svc.api.get("/v1/events/sample")).json()
        assert default["type"] == "video.completed"
        # The same keys, in the same order, as a real event of the same type.
        [real_id] = await finish_jobs(svc.context, 1)
        [real] = (await listed(svc, "/v1/events"))["data"]
        assert real["data"]["id"] == real_id
        assert list(completed.json()) == list(real) and list(sample.data.model_dump()) == list(
            real["data"]
        )
        assert len((await listed(svc, "/v1/events"))["data"]) == 1
        bad = await svc.api.get("/v1/events/sample", params={"type": "video.started"})
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_request"


async def test_a_nul_character_anywhere_is_refused_not_a_database_error(env):
    # PostgreSQL's text cannot hold U+0000; it is refused before it reaches the database: a 422
    # naming the field in a query or a body, a 404 in a path (no id holds one).
    async with running_service(env, worker=False) as svc:
        for method, path, params, body, field in (
            ("get", "/v1/subscriptions", {"url": "http://a\x00"}, None, "url"),
            ("get", "/v1/hooks", {"target_url": "x\x00"}, None, "target_url"),
            ("get", "/v1/events", {"after": "evt_\x00"}, None, "after"),
            ("get", "/v1/hooks/hook_%00", {}, None, None),
            (
                "post",
                "/v1/hooks",
                {},
                {"target_url": "http://127.0.0.1:9/\x00", "event": "*"},
                "target_url",
            ),
            (
                "post",
                "/v1/subscriptions",
                {},
                {"url": "http://127.0.0.1:9/", "description": "\x00"},
                "description",
            ),
            (
                "post",
                "/v1/videos",
                {},
                {"model": "simulator/x", "metadata": {"k\x00": "v"}},
                "metadata",
            ),
        ):
            answer = await svc.api.request(method, path, params=params, json=body)
            if field is None:
                assert answer.status_code == 404, (path, answer.text)
                continue
            assert answer.status_code == 422, (path, answer.text)
            [detail] = answer.json()["error"]["details"]
            assert detail["field"].startswith(field) and "U+0000" in detail["message"], detail


async def _event_at(svc, at: float, event_type: str = "video.completed") -> str:
    """A finished job whose event was created at `at` (Unix seconds), through the store's own
    terminal transition."""
    job = Job(
        id=new_id("vid"),
        status="in_progress",
        model="simulator/x",
        provider="simulator",
        request={"model": "simulator/x", "fallback_models": []},
        attempts=[{"provider": "simulator", "model": "simulator/x"}],
        created_at=at,
        updated_at=at,
        deadline_at=at + 600,
    )
    await svc.store.create_job(job)
    status = event_type.removeprefix("video.")
    final = JobFinal(status, 100, [], None, job.attempts, at)
    event_id = new_id("evt")
    body = {"id": event_id, "object": "event", "type": event_type, "created_at": int(at)}
    payload = json.dumps(body | {"data": {"id": job.id}})
    event = Event(id=event_id, type=event_type, job_id=job.id, payload=payload, created_at=at)
    assert await svc.store.finish_job(job.id, 0, final, event, lambda subscriptions: [])
    return event_id


async def _status(svc, path, expected):
    return (await svc.api.get(path)).status_code == expected


async def _disabled(svc, subscription_id):
    found = (await svc.api.get(f"/v1/subscriptions/{subscription_id}")).json()
    return found if found["status"] == "disabled" else None


async def _attempted(svc, hook_id):
    """The deliveries, once each has its attempts recorded."""
    found = (await listed(svc, "/v1/deliveries", subscription_id=hook_id))["data"]
    return found if found and all(d["attempt_count"] for d in found) else None
