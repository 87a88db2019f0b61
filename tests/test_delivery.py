"""Deliveries: Standard Webhooks signatures, the retry schedule, what counts as success."""

from __future__ import annotations

import json

import pytest

from tests.support.databases import BACKENDS
from tests.support.quiet import deliveries_settled
from tests.support.servers import eventually
from tests.support.service import running_service
from tests.support.subscriber import recording_subscriber

pytestmark = pytest.mark.parametrize("backend", BACKENDS, indirect=True)


async def deliveries_of(svc, event_id):
    response = await svc.api.get(f"/v1/events/{event_id}/deliveries")
    return json.loads(response.text)["data"]


async def test_failed_attempts_are_retried_on_the_schedule_with_the_same_id(env):
    env["VIDEOHOOKS_RETRY_SCHEDULE"] = "300ms,600ms"
    async with recording_subscriber(script=[500, 503]) as subscriber, running_service(env) as svc:
        subscription = await svc.subscribe(subscriber.url)
        subscriber.secrets = [subscription["secret"]]
        await svc.submit({"after_s": 0.1})
        await eventually(lambda: len(subscriber.received) == 3, timeout=10)
        first, second, third = subscriber.received
        assert all(item.verified for item in subscriber.received)
        assert (
            first.headers["webhook-id"]
            == second.headers["webhook-id"]
            == third.headers["webhook-id"]
        )
        event_id = first.event["id"]
        [delivery] = await eventually(lambda: _settled(svc, event_id))
        assert delivery["status"] == "succeeded" and delivery["attempt_count"] == 3
        assert delivery["last_status_code"] == 200
        # 300 ms and 600 ms after the attempts that failed began, each with at most 10 %
        # jitter (the times recorded by the sender: a receipt's time also holds how long the
        # request took to arrive, which on a busy machine varies by more than the jitter).
        [record] = (await svc.store.list_deliveries(event_id=event_id)).items
        times = [
            attempt.attempted_at
            for attempt in (await svc.store.delivery_attempts([record.seq]))[record.seq]
        ]
        times.sort()
        assert times[1] - times[0] >= 0.27
        assert times[2] - times[1] >= 0.54


async def _settled(svc, event_id):
    found = await deliveries_of(svc, event_id)
    return found if found and all(d["status"] != "pending" for d in found) else None


async def test_redirects_are_failures_and_are_not_followed(env):
    async with recording_subscriber(script=[302]) as subscriber, running_service(env) as svc:
        await svc.subscribe(subscriber.url + "/in")
        await svc.submit({"after_s": 0.1})
        await eventually(lambda: len(subscriber.received) == 2, timeout=10)
        assert [item.path for item in subscriber.received] == ["/in", "/in"]
        [delivery] = await eventually(lambda: _settled(svc, subscriber.received[0].event["id"]))
        assert delivery["attempt_count"] == 2 and delivery["status"] == "succeeded"


async def test_a_timeout_is_retried(env):
    env["VIDEOHOOKS_DELIVERY_TIMEOUT"] = "300ms"
    async with recording_subscriber(delays=[1.0]) as subscriber, running_service(env) as svc:
        await svc.subscribe(subscriber.url)
        await svc.submit({"after_s": 0.1})
        await eventually(lambda: len(subscriber.received) == 2, timeout=10)
        [delivery] = await eventually(lambda: _settled(svc, subscriber.received[0].event["id"]))
        assert delivery["status"] == "succeeded" and delivery["attempt_count"] == 2


async def test_after_the_last_attempt_the_delivery_is_failed_and_kept(env):
    env["VIDEOHOOKS_RETRY_SCHEDULE"] = "100ms,100ms"
    async with recording_subscriber(default_status=500) as subscriber, running_service(env) as svc:
        await svc.subscribe(subscriber.url)
        await svc.submit({"after_s": 0.1})
        await eventually(lambda: len(subscriber.received) == 3, timeout=10)
        event_id = subscriber.received[0].event["id"]
        [delivery] = await eventually(lambda: _settled(svc, event_id))
        assert delivery["status"] == "failed"
        assert delivery["attempt_count"] == 3 and delivery["last_status_code"] == 500
        assert await deliveries_settled(svc)  # failed is final: nothing is due any more
        assert len(subscriber.received) == 3
        assert (await svc.api.get(f"/v1/events/{event_id}")).status_code == 200


async def test_subscriptions_receive_only_their_event_types(env):
    async with recording_subscriber() as failures, recording_subscriber() as everything:
        async with running_service(env) as svc:
            await svc.subscribe(failures.url, events=["video.failed"])
            await svc.subscribe(everything.url)
            await svc.submit({"after_s": 0.1})
            await svc.submit({"after_s": 0.1, "outcome": "failed"})
            await eventually(lambda: len(everything.received) == 2)
            await eventually(lambda: deliveries_settled(svc))
            assert [item.event["type"] for item in failures.received] == ["video.failed"]


async def test_a_disabled_subscription_gets_no_attempts(env):
    async with recording_subscriber() as subscriber, running_service(env) as svc:
        subscription = await svc.subscribe(subscriber.url)
        patched = await svc.api.patch(
            f"/v1/subscriptions/{subscription['id']}", json={"status": "disabled"}
        )
        assert patched.json()["status"] == "disabled"
        await svc.submit({"after_s": 0.1})
        [event] = await eventually(svc.events)
        # Kept as skipped when the event was made: never due, so never sent.
        [delivery] = await deliveries_of(svc, event["id"])
        assert delivery["status"] == "skipped" and await deliveries_settled(svc)
        assert subscriber.received == []
