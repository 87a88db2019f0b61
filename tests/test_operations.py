"""Delivery operations: backpressure, disabling, finding and replaying, the attempt log, secret
rotation, test pings, isolation, filters, retention, metrics."""

from __future__ import annotations

import json
import time

import httpx2 as httpx
import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from tests.support.databases import BACKENDS
from tests.support.events import finish_jobs
from tests.support.processes import Process
from tests.support.quiet import deliveries_settled
from tests.support.servers import eventually
from tests.support.service import running_service
from tests.support.subscriber import recording_subscriber

pytestmark = [
    pytest.mark.parametrize("backend", BACKENDS, indirect=True),
    pytest.mark.usefixtures("processes_reaped"),
]


async def listed(svc, path, **params):
    response = await svc.api.get(path, params=params)
    assert response.status_code == 200, response.text
    return json.loads(response.text)["data"]


async def subscription(svc, subscription_id):
    return (await svc.api.get(f"/v1/subscriptions/{subscription_id}")).json()


# -- backpressure ---------------------------------------------------------------------------


async def test_retry_after_on_429_pushes_the_next_attempt_later(env):
    env["VIDEOHOOKS_RETRY_SCHEDULE"] = "100ms,100ms"
    async with recording_subscriber(script=[429], headers={"retry-after": "2"}) as subscriber:
        async with running_service(env) as svc:
            await svc.subscribe(subscriber.url)
            await finish_jobs(svc.context, 1)
            await eventually(lambda: len(subscriber.received) == 2, timeout=10)
            first, second = subscriber.received
            # Retry-After (2 s), not the schedule's 100 ms; a receipt's time also holds the
            # request's way there, which a busy machine can stretch by a good fraction of a second.
            assert second.at - first.at >= 1.5


async def test_410_gone_disables_the_subscription_at_once(env):
    async with recording_subscriber(default_status=410) as subscriber, running_service(env) as svc:
        sub = await svc.subscribe(subscriber.url)
        await finish_jobs(svc.context, 1)
        gone = await eventually(lambda: _disabled(svc, sub["id"]))
        assert "410" in gone["disabled_reason"]
        await finish_jobs(svc.context, 1)
        await eventually(lambda: deliveries_settled(svc))
        assert len(subscriber.received) == 1  # no retry, and nothing sent while disabled
        statuses = sorted(
            d["status"] for d in await listed(svc, "/v1/deliveries", subscription_id=sub["id"])
        )
        assert statuses == ["failed", "skipped"]


async def _disabled(svc, subscription_id):
    found = await subscription(svc, subscription_id)
    return found if found["status"] == "disabled" else None


async def test_continuous_failure_disables_and_recover_brings_back_what_was_missed(env):
    env |= {
        "VIDEOHOOKS_DISABLE_AFTER": "1s",
        "VIDEOHOOKS_RETRY_SCHEDULE": "300ms,300ms,300ms,300ms,300ms,300ms",
    }
    async with recording_subscriber(default_status=500) as subscriber, running_service(env) as svc:
        sub = await svc.subscribe(subscriber.url)
        started = time.time()
        await finish_jobs(svc.context, 1)
        disabled = await eventually(lambda: _disabled(svc, sub["id"]), timeout=10)
        assert "no success" in disabled["disabled_reason"]
        await finish_jobs(svc.context, 2)  # while disabled: recorded, not sent
        assert {d["status"] for d in await listed(svc, "/v1/deliveries", status="skipped")} == {
            "skipped"
        }
        # The one still being retried when it was disabled is kept as skipped too.
        assert len(await listed(svc, "/v1/deliveries", status="skipped")) == 3

        subscriber.default_status = 200  # the subscriber is fixed
        recover = f"/v1/subscriptions/{sub['id']}/recover"
        refused = await svc.api.post(recover, json={"since": int(started) - 1})
        assert refused.status_code == 409  # enable it first
        assert refused.json()["error"]["code"] == "subscription_disabled"
        enabled = await svc.api.patch(f"/v1/subscriptions/{sub['id']}", json={"status": "active"})
        assert enabled.json()["disabled_reason"] is None
        answer = await svc.api.post(recover, json={"since": int(started) - 1})
        assert answer.status_code == 202 and answer.json()["queued"] == 3
        again = await svc.api.post(recover, json={"since": int(started) - 1})
        assert again.json()["queued"] == 0  # idempotent: already queued
        await eventually(
            lambda: len({r.event["id"] for r in subscriber.received if r.at > time.time() - 5}) == 3
        )
        await eventually(lambda: _all_succeeded(svc, sub["id"]))


async def _all_succeeded(svc, subscription_id):
    found = await listed(svc, "/v1/deliveries", subscription_id=subscription_id)
    return found and all(d["status"] == "succeeded" for d in found)


async def test_recover_is_bounded_to_its_window(env):
    env |= {"VIDEOHOOKS_RETRY_SCHEDULE": "100ms"}
    async with recording_subscriber(default_status=500) as subscriber, running_service(env) as svc:
        sub = await svc.subscribe(subscriber.url)
        await finish_jobs(svc.context, 2)
        await eventually(lambda: _count(svc, "failed", 2))
        cut = int(time.time()) + 1
        await eventually(lambda: time.time() >= cut)  # the third is created after the cut
        await finish_jobs(svc.context, 1)
        await eventually(lambda: _count(svc, "failed", 3))
        subscriber.default_status = 200
        answer = await svc.api.post(f"/v1/subscriptions/{sub['id']}/recover", json={"since": cut})
        assert answer.json()["queued"] == 1
        empty = await svc.api.post(
            f"/v1/subscriptions/{sub['id']}/recover", json={"since": cut, "until": cut}
        )
        assert (empty.status_code, empty.json()["queued"]) == (202, 0)  # an empty period


async def _count(svc, status, expected):
    return len(await listed(svc, "/v1/deliveries", status=status)) == expected


# -- replay and the attempt log ----------------------------------------------------------


async def test_redeliver_to_all_targets_or_one_subscription(env):
    async with recording_subscriber() as first, recording_subscriber() as second:
        async with running_service(env) as svc:
            one = await svc.subscribe(first.url)
            two = await svc.subscribe(second.url)
            await finish_jobs(svc.context, 1)
            [event] = await svc.events()
            # Recorded, not only received: a redelivery leaves a delivery in flight alone.
            await eventually(lambda: _attempts(svc, event["id"], {one["id"]: 1, two["id"]: 1}))
            everyone = await svc.api.post(f"/v1/events/{event['id']}/redeliver")
            assert everyone.status_code == 202 and everyone.json()["queued"] == 2
            await eventually(lambda: _attempts(svc, event["id"], {one["id"]: 2, two["id"]: 2}))
            only = await svc.api.post(
                f"/v1/events/{event['id']}/redeliver", json={"subscription_id": one["id"]}
            )
            assert only.json()["queued"] == 1
            # The first one's redelivery is recorded, and the second was not queued again.
            await eventually(lambda: _attempts(svc, event["id"], {one["id"]: 3, two["id"]: 2}))
            assert len(first.received) == 3 and len(second.received) == 2
            assert {r.headers["webhook-id"] for r in first.received} == {event["id"]}
            # A subscription created after the event gets it on request.
            async with recording_subscriber() as late:
                newcomer = await svc.subscribe(late.url)
                answer = await svc.api.post(
                    f"/v1/events/{event['id']}/redeliver", json={"subscription_id": newcomer["id"]}
                )
                assert answer.json()["queued"] == 1
                await eventually(lambda: late.received)
            missing = await svc.api.post(
                f"/v1/events/{event['id']}/redeliver", json={"subscription_id": "sub_nope"}
            )
            assert missing.status_code == 404


async def test_the_attempt_log_shows_every_attempt(env):
    env["VIDEOHOOKS_RETRY_SCHEDULE"] = "100ms,100ms"
    big = "x" * 10_000
    async with recording_subscriber(script=[503, 302]) as subscriber, running_service(env) as svc:
        sub = await svc.subscribe(subscriber.url)
        subscriber.delay = 0.0
        await finish_jobs(svc.context, 1)
        await eventually(lambda: len(subscriber.received) == 3)
        [event] = await svc.events()
        [delivery] = await eventually(lambda: _settled(svc, event["id"]))
        attempts = delivery["attempts"]
        assert [a["status_code"] for a in attempts] == [503, 302, 200]
        assert [a["error_class"] for a in attempts] == ["http_status", "redirect", None]
        assert all(
            a["duration_ms"] >= 0 and a["attempted_at"] >= event["created_at"] for a in attempts
        )
        assert attempts[2]["response_body"] == "recorded"
        by_subscription = await listed(svc, f"/v1/subscriptions/{sub['id']}/deliveries")
        assert by_subscription[0]["attempts"] == attempts
        # The first 4 KiB of an answer are kept, no more.
        subscriber.body = big
        await finish_jobs(svc.context, 1)
        await eventually(lambda: len(subscriber.received) == 4)
        newest = await eventually(lambda: _latest_attempt(svc, sub["id"]))
        assert newest["response_body"] == big[:4096]


async def _attempts(svc, event_id, expected):
    """The event's deliveries once none is pending and each subscription's has `expected`
    recorded attempts."""
    found = await _settled(svc, event_id)
    counts = {d["subscription_id"]: len(d["attempts"]) for d in found or []}
    return found if counts == expected else None


async def _settled(svc, event_id):
    found = await listed(svc, f"/v1/events/{event_id}/deliveries")
    return found if found and all(d["status"] != "pending" for d in found) else None


async def _latest_attempt(svc, subscription_id):
    [newest, *_] = await listed(svc, f"/v1/subscriptions/{subscription_id}/deliveries")
    return newest["attempts"][-1] if newest["attempts"] else None


# -- secrets and test pings -----------------------------------------------------------------


def verifies(secret, received):
    try:
        Webhook(secret).verify(received.body, received.headers)
    except WebhookVerificationError:
        return False
    return True


async def test_rotating_a_secret_signs_with_both_during_the_grace_period(env):
    env["VIDEOHOOKS_SECRET_GRACE"] = "1500ms"
    async with recording_subscriber() as subscriber, running_service(env) as svc:
        sub = await svc.subscribe(subscriber.url)
        rotated = (await svc.api.post(f"/v1/subscriptions/{sub['id']}/rotate-secret")).json()
        assert rotated["secret"].startswith("whsec_") and rotated["secret"] != sub["secret"]
        assert rotated["previous_secret_expires_at"] >= int(time.time())
        await finish_jobs(svc.context, 1)
        await eventually(lambda: subscriber.received)
        during = subscriber.received[0]
        assert len(during.headers["webhook-signature"].split(" ")) == 2
        assert verifies(sub["secret"], during) and verifies(rotated["secret"], during)
        # Past the grace period (its end is given in whole seconds, rounded down).
        await eventually(lambda: time.time() >= rotated["previous_secret_expires_at"] + 1)
        await finish_jobs(svc.context, 1)
        await eventually(lambda: len(subscriber.received) == 2)
        after = subscriber.received[1]
        assert len(after.headers["webhook-signature"].split(" ")) == 1
        assert verifies(rotated["secret"], after) and not verifies(sub["secret"], after)


async def test_the_callback_secret_rotates_by_api(env):
    env["VIDEOHOOKS_SECRET_GRACE"] = "1h"
    async with recording_subscriber() as subscriber, running_service(env) as svc:
        [old] = (await svc.api.get("/v1/callback-secret")).json()["secrets"]
        rotated = await svc.api.post("/v1/callback-secret/rotate")
        new, previous = rotated.json()["secrets"]
        assert previous == old and new != old
        await svc.submit({"after_s": 0.1}, callback_url=subscriber.url + "/cb")
        await eventually(lambda: subscriber.received, timeout=10)
        assert verifies(new, subscriber.received[0]) and verifies(old, subscriber.received[0])


async def test_the_callback_secret_rotates_by_cli_and_refuses_when_configured(env, tmp_path):
    async with running_service(env, worker=False) as svc:
        [old] = (await svc.api.get("/v1/callback-secret")).json()["secrets"]
    cli = await Process.start(["rotate-callback-secret"], env, tmp_path)
    new = (await cli.expect(r"callback secret: (whsec_\S+)")).group(1)
    assert await cli.exit_code() == 0
    async with running_service(env, worker=False) as svc:
        assert (await svc.api.get("/v1/callback-secret")).json()["secrets"] == [new, old]
    env["VIDEOHOOKS_CALLBACK_SECRET"] = "whsec_" + "Y29uZmlndXJlZC1jYWxsYmFjay1zZWNyZXQ="
    async with running_service(env, worker=False) as svc:
        refused = await svc.api.post("/v1/callback-secret/rotate")
        assert refused.status_code == 409
        assert refused.json()["error"]["code"] == "configured_by_environment"


async def test_a_test_ping_is_signed_synchronous_and_listed_nowhere(env):
    async with recording_subscriber() as subscriber, running_service(env) as svc:
        sub = await svc.subscribe(subscriber.url)
        subscriber.secrets = [sub["secret"]]
        answer = (await svc.api.post(f"/v1/subscriptions/{sub['id']}/test")).json()
        assert answer["succeeded"] is True and answer["attempt"]["status_code"] == 200
        [received] = subscriber.received
        assert received.verified and received.event["type"] == "webhook.test"
        assert received.event["id"] == answer["event"]["id"]
        assert await svc.events() == [] and await listed(svc, "/v1/deliveries") == []
        subscriber.default_status = 500
        failed = (await svc.api.post(f"/v1/subscriptions/{sub['id']}/test")).json()
        assert failed["succeeded"] is False and failed["attempt"]["status_code"] == 500


# -- isolation and filters ------------------------------------------------------------------


async def test_a_hanging_subscriber_does_not_delay_the_others(env):
    # 64 slots in all, 10 per subscription: without the cap the hanging one would soon hold all,
    # and the others would wait for its attempts to time out. The timeout is far longer than any
    # machine takes for the others' 400 deliveries, so the hanging attempts are still in flight
    # when they are done (the drain gives them up at the end).
    env |= {
        "VIDEOHOOKS_DELIVERY_TIMEOUT": "1h",
        "VIDEOHOOKS_DELIVERY_CONCURRENCY": "64",
        "VIDEOHOOKS_SUBSCRIPTION_CONCURRENCY": "10",
    }
    async with (
        recording_subscriber(delay=3600) as hanging,
        recording_subscriber() as first,
        recording_subscriber() as second,
    ):
        async with running_service(env) as svc:
            stuck = await svc.subscribe(hanging.url)
            for subscriber in (first, second):
                await svc.subscribe(subscriber.url)
            await finish_jobs(svc.context, 200)
            await eventually(
                lambda: len(first.received) == 200 and len(second.received) == 200, timeout=60
            )
            # Not delayed: every delivery to the others arrived while the hanging one's first
            # attempts were still waiting for an answer.
            hung = await svc.store.list_deliveries(subscription_id=stuck["id"], limit=100)
            assert hung.items and all(delivery.attempt_count == 0 for delivery in hung.items)
            assert len(hanging.received) <= 10  # its own slots, no more


async def test_filters_route_only_matching_events(env):
    async with recording_subscriber() as picky, recording_subscriber() as everything:
        async with running_service(env) as svc:
            await svc.subscribe(
                picky.url, filter={"data.metadata.user_id": "42", "data.provider": "simulator"}
            )
            await svc.subscribe(everything.url)
            await finish_jobs(svc.context, 1, metadata={"user_id": "42"})
            await finish_jobs(svc.context, 1, metadata={"user_id": "7"})
            await eventually(lambda: len(everything.received) == 2 and picky.received)
            await eventually(lambda: deliveries_settled(svc))
            assert [r.event["data"]["metadata"] for r in picky.received] == [{"user_id": "42"}]
            other = next(e for e in await svc.events() if e["data"]["metadata"] == {"user_id": "7"})
            assert len(await listed(svc, f"/v1/events/{other['id']}/deliveries")) == 1
            bad = await svc.api.post(
                "/v1/subscriptions", json={"url": picky.url, "filter": {"no spaces allowed": "x"}}
            )
            assert bad.status_code == 422


# -- retention, metrics, limits ---------------------------------------------------------------


async def test_retention_removes_old_events_deliveries_and_attempts_but_keeps_jobs(env):
    env |= {"VIDEOHOOKS_RETENTION_DAYS": "0.00002", "VIDEOHOOKS_CLEANUP_INTERVAL": "200ms"}
    async with recording_subscriber() as subscriber, running_service(env) as svc:
        await svc.subscribe(subscriber.url)
        [job_id] = await finish_jobs(svc.context, 1)
        await eventually(lambda: subscriber.received)
        await eventually(lambda: _no_events(svc), timeout=10)
        assert await listed(svc, "/v1/deliveries") == []
        assert (await svc.video(job_id))["status"] == "completed"


async def _no_events(svc):
    return await svc.events() == []


async def test_metrics_count_deliveries_webhooks_polls_and_queue_depth(env):
    async with recording_subscriber() as subscriber, running_service(env) as svc:
        sub = await svc.subscribe(subscriber.url)
        await svc.submit({"after_s": 0.2})
        await svc.submit({"after_s": 0.2, "webhook": False}, metadata={"k": "v"})
        await eventually(lambda: len(subscriber.received) == 2, timeout=15)
        text = (await svc.api.get("/metrics")).text
        assert (
            f'videohooks_deliveries_total{{outcome="succeeded",subscription="{sub["id"]}"}}' in text
        )
        assert "videohooks_delivery_attempt_seconds_bucket" in text
        assert 'videohooks_webhooks_total{provider="simulator",result="accepted"}' in text
        assert 'videohooks_polls_total{provider="simulator",result="completed"}' in text
        assert 'videohooks_submissions_total{provider="simulator",result="accepted"}' in text
        for gauge in (
            "videohooks_deliveries_pending",
            "videohooks_deliveries_failed",
            "videohooks_oldest_pending_delivery_seconds",
        ):
            assert f"\n{gauge} " in text


async def test_receiver_bodies_over_one_mebibyte_get_413(env):
    async with running_service(env) as svc, httpx.AsyncClient() as client:
        answer = await client.post(
            f"{svc.url}/hooks/simulator/whatever", content=b"x" * (1024 * 1024 + 1)
        )
        assert answer.status_code == 413
        assert answer.json()["error"]["code"] == "payload_too_large"


async def test_subscription_limits_are_kept_and_can_be_cleared(env):
    async with running_service(env, worker=False) as svc:
        created = await svc.subscribe("http://127.0.0.1:9/x", max_in_flight=3, rate_limit=2.5)
        assert (created["max_in_flight"], created["rate_limit"]) == (3, 2.5)
        assert (await subscription(svc, created["id"]))["max_in_flight"] == 3
        cleared = await svc.api.patch(
            f"/v1/subscriptions/{created['id']}", json={"max_in_flight": None, "rate_limit": None}
        )
        assert (cleared.json()["max_in_flight"], cleared.json()["rate_limit"]) == (None, None)


async def test_a_rate_limit_spaces_deliveries_out(env):
    async with recording_subscriber() as subscriber, running_service(env) as svc:
        await svc.subscribe(subscriber.url, rate_limit=2)
        await finish_jobs(svc.context, 6)
        await eventually(lambda: len(subscriber.received) == 6, timeout=20)
        arrivals = sorted(item.at for item in subscriber.received)
        # Two at once (the bucket holds two), then one every half second: at least 2 s in all.
        assert arrivals[-1] - arrivals[0] >= 1.8


async def test_a_rate_limit_holds_across_workers(env):
    # Each worker holds at most four deliveries at once (those waiting for a token included), so
    # neither can take the whole backlog: both send.
    env |= {"VIDEOHOOKS_DELIVERY_CONCURRENCY": "4"}
    async with (
        recording_subscriber() as subscriber,
        running_service(env) as svc,
        running_service(env, public=False),
    ):
        await svc.subscribe(subscriber.url, rate_limit=5)
        await finish_jobs(svc.context, 20)
        await eventually(lambda: len(subscriber.received) == 20, timeout=30)
        arrivals = sorted(item.at for item in subscriber.received)
        # One bucket for both: five at once, then one every 0.2 s, 3 s in all. A bucket per
        # worker would let twice the rate through, the 20 in about 1.5 s.
        assert arrivals[-1] - arrivals[0] >= 2.8
