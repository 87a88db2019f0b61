"""Submit → webhook or poll → exactly one event → signed deliveries, over real HTTP."""

from __future__ import annotations

import asyncio
import time

import httpx2 as httpx
import pytest
from prometheus_client import REGISTRY

from service.tokens import ReceiverTokens
from tests.support.databases import BACKENDS
from tests.support.provider import Answer, fake_provider
from tests.support.quiet import deliveries_settled, stored_webhooks
from tests.support.servers import eventually
from tests.support.service import running_service
from tests.support.signing import signed
from tests.support.subscriber import recording_subscriber

pytestmark = pytest.mark.parametrize("backend", BACKENDS, indirect=True)


def simulator_secret(svc) -> str:
    return svc.context.providers["simulator"].secret


async def test_webhook_job_delivers_one_signed_completed_event(env):
    async with recording_subscriber() as subscriber, running_service(env) as svc:
        subscription = await svc.subscribe(subscriber.url + "/hooks")
        subscriber.secrets = [subscription["secret"]]
        video = await svc.submit({"after_s": 0.3}, metadata={"order": "7"})
        await eventually(lambda: subscriber.received)
        delivery = subscriber.received[0]
        assert delivery.verified
        event = delivery.event
        assert delivery.headers["webhook-id"] == event["id"]
        assert abs(int(delivery.headers["webhook-timestamp"]) - time.time()) < 5
        assert delivery.headers["content-type"] == "application/json"
        assert event["type"] == "video.completed" and event["object"] == "event"
        data = event["data"]
        assert data["id"] == video["id"] and data["status"] == "completed"
        assert data["progress"] == 100 and data["metadata"] == {"order": "7"}
        assert data["outputs"][0]["content_type"] == "video/mp4"
        stored = (await svc.api.get(f"/v1/events/{event['id']}")).json()
        assert stored == event
        assert (await svc.video(video["id"]))["status"] == "completed"
        assert svc.context.simulator.poll_counts == {}  # it came by webhook, not by a poll


async def test_callback_url_receives_the_event_signed_with_the_callback_secret(env):
    async with recording_subscriber() as subscriber, running_service(env) as svc:
        subscriber.secrets = await svc.context.callback_secrets.load()
        video = await svc.submit(
            {"after_s": 0.2, "outcome": "failed", "error_message": "nope"},
            callback_url=subscriber.url + "/job",
        )
        await eventually(lambda: subscriber.received)
        delivery = subscriber.received[0]
        assert delivery.path == "/job" and delivery.verified
        assert delivery.event["type"] == "video.failed"
        assert delivery.event["data"]["id"] == video["id"]
        assert delivery.event["data"]["error"] == {"code": "generation_failed", "message": "nope"}


async def test_provider_gets_a_signed_receiver_url_only_with_a_public_url(env):
    async with fake_provider() as provider:
        env["VIDEOHOOKS_SIMULATOR_BASE_URL"] = provider.url
        async with running_service(env) as svc:
            video = await svc.submit()
            await eventually(lambda: provider.bodies)
            callback = provider.bodies[0]["callback_url"]
            prefix = f"{svc.url}/hooks/simulator/"
            assert callback.startswith(prefix)
            claim = svc.context.tokens.verify(callback.removeprefix(prefix))
            assert (claim.job_id, claim.provider, claim.attempt_no) == (video["id"], "simulator", 0)
        async with running_service(env, public=False) as svc:
            await svc.submit()
            await eventually(lambda: len(provider.bodies) == 2)
            assert provider.bodies[1]["callback_url"] is None


async def test_poll_only_job_completes_and_progress_is_visible(env):
    async with recording_subscriber() as subscriber, running_service(env, public=False) as svc:
        await svc.subscribe(subscriber.url)
        video = await svc.submit({"after_s": 1.5})
        seen = await eventually(lambda: _progress(svc, video["id"]))
        assert 0 < seen < 100
        await eventually(lambda: subscriber.received)
        assert subscriber.received[0].event["data"]["status"] == "completed"


async def _progress(svc, video_id):
    video = await svc.video(video_id)
    return video["progress"] if video["status"] == "in_progress" and video["progress"] else None


async def test_webhook_job_whose_webhook_never_comes_is_polled_after_the_grace(env):
    env["VIDEOHOOKS_WEBHOOK_GRACE"] = "1s"
    async with recording_subscriber() as subscriber, running_service(env) as svc:
        await svc.subscribe(subscriber.url)
        started = time.time()
        await svc.submit({"after_s": 0.2, "webhook": False})
        await eventually(lambda: subscriber.received)
        assert time.time() - started >= 1.0


async def test_poll_answers_503_with_retry_after_are_honoured(env):
    async with fake_provider() as provider:
        env["VIDEOHOOKS_SIMULATOR_BASE_URL"] = provider.url
        provider.status_answers = [
            Answer(503, {"error": "busy"}, {"retry-after": "1"}),
            Answer(503, {"error": "busy"}, {"retry-after": "1"}),
        ]
        async with running_service(env, public=False) as svc:
            video = await svc.submit()
            await eventually(lambda: provider.count("GET") >= 3, timeout=10)
            polls = [at for method, _, at in provider.requests if method == "GET"]
            assert polls[1] - polls[0] >= 0.95 and polls[2] - polls[1] >= 0.95
            provider.finish("fake_1")
            await eventually(lambda: _status(svc, video["id"], "completed"))


async def _status(svc, video_id, status):
    return (await svc.video(video_id))["status"] == status


async def test_simulator_poll_errors_are_survived(env):
    async with running_service(env, public=False) as svc:
        video = await svc.submit({"after_s": 0.2, "poll_errors": 2})
        await eventually(lambda: _status(svc, video["id"], "completed"), timeout=10)


async def test_transient_submission_failures_are_retried(env):
    env["VIDEOHOOKS_PROVIDER_TIMEOUT"] = "300ms"
    async with fake_provider() as provider:
        env["VIDEOHOOKS_SIMULATOR_BASE_URL"] = provider.url
        provider.submit_answers = [
            Answer(500, {"error": {"message": "upstream down"}}),
            Answer(429, {"error": "slow down"}, {"retry-after": "1"}),
            Answer(200, {}, delay=1.0),  # times out
            Answer(200, '{"id": "trunc'),  # malformed JSON
        ]
        async with running_service(env, public=False) as svc:
            video = await svc.submit()
            await eventually(lambda: provider.count("POST") == 5, timeout=20)
            posts = [at for method, _, at in provider.requests if method == "POST"]
            assert posts[2] - posts[1] >= 0.95  # Retry-After honoured
            stored = await eventually(lambda: _submitted(svc, video["id"]))
            assert stored["provider_job_id"] == "fake_1" and stored["status"] != "failed"


async def _submitted(svc, video_id):
    video = await svc.video(video_id)
    return video if video["provider_job_id"] else None


async def test_permanent_submission_failure_fails_the_job_with_the_providers_message(env):
    async with fake_provider() as provider, recording_subscriber() as subscriber:
        env["VIDEOHOOKS_SIMULATOR_BASE_URL"] = provider.url
        provider.submit_answers = [Answer(400, {"error": {"message": "prompt violates policy"}})]
        async with running_service(env) as svc:
            await svc.subscribe(subscriber.url)
            video = await svc.submit()
            await eventually(lambda: subscriber.received)
            event = subscriber.received[0].event
            assert event["type"] == "video.failed"
            assert event["data"]["error"] == {
                "code": "provider_rejected",
                "message": "prompt violates policy",
            }
            assert provider.count("POST") == 1
            assert (await svc.video(video["id"]))["status"] == "failed"


async def test_provider_concurrency_is_limited(env):
    env["VIDEOHOOKS_PROVIDER_CONCURRENCY"] = "2"
    async with fake_provider() as provider:
        provider.delay = 0.3
        env["VIDEOHOOKS_SIMULATOR_BASE_URL"] = provider.url
        async with running_service(env, public=False) as svc:
            for _ in range(6):
                await svc.submit()
            await eventually(lambda: provider.count("POST") == 6, timeout=10)
            assert provider.max_in_flight == 2


async def test_a_job_not_terminal_by_its_deadline_fails_with_timeout(env):
    env["VIDEOHOOKS_JOB_TIMEOUT"] = "1s"
    async with recording_subscriber() as subscriber, running_service(env, public=False) as svc:
        await svc.subscribe(subscriber.url)
        video = await svc.submit({"after_s": 600})
        await eventually(lambda: subscriber.received, timeout=10)
        event = subscriber.received[0].event
        assert event["type"] == "video.failed" and event["data"]["id"] == video["id"]
        assert event["data"]["error"]["code"] == "timeout"


async def test_fifty_duplicate_webhooks_from_the_simulator_make_one_event(env):
    async with recording_subscriber() as subscriber, running_service(env) as svc:
        await svc.subscribe(subscriber.url)
        video = await svc.submit({"after_s": 0.3, "duplicates": 49})
        await eventually(lambda: subscriber.received)
        # The job's one event was sent; every webhook after that found it terminal.
        await eventually(lambda: deliveries_settled(svc))
        assert len(subscriber.received) == 1
        assert [event["data"]["id"] for event in await svc.events()] == [video["id"]]


async def _submitted_receiver(svc, provider, video_id):
    await eventually(lambda: provider.bodies)
    await eventually(lambda: _submitted(svc, video_id))
    return provider.bodies[-1]["callback_url"]


async def test_fifty_concurrent_signed_webhooks_make_one_event(env):
    async with fake_provider() as provider, recording_subscriber() as subscriber:
        env["VIDEOHOOKS_SIMULATOR_BASE_URL"] = provider.url
        async with running_service(env) as svc:
            await svc.subscribe(subscriber.url)
            video = await svc.submit()
            callback = await _submitted_receiver(svc, provider, video["id"])
            provider.finish("fake_1")
            body, headers = signed(simulator_secret(svc), provider.jobs["fake_1"])
            async with httpx.AsyncClient() as client:
                responses = await asyncio.gather(
                    *(client.post(callback, content=body, headers=headers) for _ in range(50))
                )
            assert all(response.status_code in (200, 202) for response in responses)
            await eventually(lambda: subscriber.received)
            await eventually(lambda: deliveries_settled(svc))
            assert len(subscriber.received) == 1
            assert len(await svc.events()) == 1

            # A late non-terminal report changes nothing.
            late, late_headers = signed(
                simulator_secret(svc),
                {**provider.jobs["fake_1"], "status": "in_progress", "progress": 10},
            )
            async with httpx.AsyncClient() as client:
                answer = await client.post(callback, content=late, headers=late_headers)
            assert answer.status_code == 200 and answer.json()["applied"] is False
            stored = await svc.video(video["id"])
            assert stored["status"] == "completed" and stored["progress"] == 100


def webhooks_counted(result: str) -> float:
    value = REGISTRY.get_sample_value(
        "videohooks_webhooks_total", {"provider": "simulator", "result": result}
    )
    return value or 0.0


async def test_duplicate_and_late_webhooks_count_as_ignored(env):
    """Of twenty copies of one signed report arriving at once, one is recorded (accepted) and
    the others change nothing (ignored), whatever the timing; so is a report after the end."""
    async with fake_provider() as provider:
        env["VIDEOHOOKS_SIMULATOR_BASE_URL"] = provider.url
        async with running_service(env) as svc:
            video = await svc.submit()
            callback = await _submitted_receiver(svc, provider, video["id"])
            provider.finish("fake_1")
            body, headers = signed(simulator_secret(svc), provider.jobs["fake_1"])
            accepted, ignored = webhooks_counted("accepted"), webhooks_counted("ignored")
            async with httpx.AsyncClient() as client:
                answers = await asyncio.gather(
                    *(client.post(callback, content=body, headers=headers) for _ in range(20))
                )
                assert sorted(answer.status_code for answer in answers) == [200] * 19 + [202]
                assert webhooks_counted("accepted") - accepted == 1
                assert webhooks_counted("ignored") - ignored == 19
                await eventually(lambda: _completed(svc, video["id"]))
                late, late_headers = signed(
                    simulator_secret(svc), {**provider.jobs["fake_1"], "status": "failed"}
                )
                answer = await client.post(callback, content=late, headers=late_headers)
            assert answer.json() == {"received": True, "applied": False}
            assert webhooks_counted("accepted") - accepted == 1
            assert webhooks_counted("ignored") - ignored == 20


async def _completed(svc, video_id):
    return (await svc.video(video_id))["status"] == "completed"


async def test_receiver_rejects_forged_tampered_and_foreign_tokens(env):
    async with fake_provider() as provider:
        env["VIDEOHOOKS_SIMULATOR_BASE_URL"] = provider.url
        async with running_service(env) as svc:
            first = await svc.submit()
            callback = await _submitted_receiver(svc, provider, first["id"])
            second = await svc.submit()
            other_callback = await _submitted_receiver(svc, provider, second["id"])
            provider.finish("fake_1")
            provider.finish("fake_2")
            secret = simulator_secret(svc)
            token = callback.rsplit("/", 1)[1]
            forged = ReceiverTokens(["not-our-key"]).issue(first["id"], "simulator", 0)
            tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
            body, headers = signed(secret, provider.jobs["fake_1"])
            async with httpx.AsyncClient(base_url=svc.url) as client:
                for path, expected in (
                    (f"/hooks/simulator/{forged}", 401),
                    (f"/hooks/simulator/{tampered}", 401),
                    ("/hooks/simulator/garbage", 401),
                    (f"/hooks/openai/{token}", 404),  # a token names its provider
                ):
                    answer = await client.post(path, content=body, headers=headers)
                    assert answer.status_code == expected, path
                # Job 2's token with job 1's body: a body for another job.
                answer = await client.post(other_callback, content=body, headers=headers)
                assert answer.status_code == 400
                assert answer.json()["error"]["code"] == "webhook_mismatch"
                # A bad signature and a replayed (stale) signature.
                bad = dict(headers, **{"webhook-signature": "v1,AAAA"})
                assert (await client.post(callback, content=body, headers=bad)).status_code == 401
                stale_body, stale = signed(secret, provider.jobs["fake_1"], at=time.time() - 3600)
                assert (
                    await client.post(callback, content=stale_body, headers=stale)
                ).status_code == 401
            # Refused, so never stored: the worker has nothing to act on.
            assert await stored_webhooks(svc.store) == 0
            assert await svc.events() == []
            # Nothing changed: the webhooks were refused and no poll has happened yet.
            assert (await svc.video(first["id"]))["status"] == "queued"


async def test_receiver_persists_before_answering(env):
    async with fake_provider() as provider:
        env["VIDEOHOOKS_SIMULATOR_BASE_URL"] = provider.url
        async with running_service(env) as svc:
            video = await svc.submit()
            callback = await _submitted_receiver(svc, provider, video["id"])
        async with running_service(env, worker=False) as svc:
            provider.finish("fake_1")
            body, headers = signed(simulator_secret(svc), provider.jobs["fake_1"])
            async with httpx.AsyncClient() as client:
                answer = await client.post(
                    callback.replace(callback.split("/hooks")[0], svc.url),
                    content=body,
                    headers=headers,
                )
            assert answer.status_code == 202
            claimed = await svc.store.claim_webhooks("inspector", time.time(), 10, 60)
            assert [hook.job_id for hook in claimed] == [video["id"]]
            assert claimed[0].trusted and claimed[0].report["status"] == "completed"


async def test_receiver_tokens_survive_secret_key_rotation(env):
    env["VIDEOHOOKS_SECRET_KEY"] = "old-key"
    async with fake_provider() as provider:
        env["VIDEOHOOKS_SIMULATOR_BASE_URL"] = provider.url
        env["VIDEOHOOKS_SIMULATOR_WEBHOOK_SECRET"] = "whsec_" + "c2ltdWxhdG9yLXNlY3JldC1rZXk="
        async with running_service(env) as svc:
            video = await svc.submit()
            callback = await _submitted_receiver(svc, provider, video["id"])
        path = "/hooks" + callback.split("/hooks", 1)[1]
        provider.finish("fake_1")
        body, headers = signed(env["VIDEOHOOKS_SIMULATOR_WEBHOOK_SECRET"], provider.jobs["fake_1"])
        env["VIDEOHOOKS_SECRET_KEY"] = "new-key,old-key"
        async with running_service(env) as svc:
            async with httpx.AsyncClient(base_url=svc.url) as client:
                assert (await client.post(path, content=body, headers=headers)).status_code == 202
        env["VIDEOHOOKS_SECRET_KEY"] = "new-key"
        async with running_service(env) as svc:
            async with httpx.AsyncClient(base_url=svc.url) as client:
                assert (await client.post(path, content=body, headers=headers)).status_code == 401
