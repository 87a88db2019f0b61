"""fal: field names, the app-scoped queue paths, the status table, failed results, and webhook
signatures (Ed25519, keys from a JWKS) checked directly and through the running service."""

from __future__ import annotations

import time
from dataclasses import replace

import httpx2 as httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from handlers.base import SubmitRequest, TransientError, WebhookRejected
from handlers.fal import Handler
from tests.handlers.fakes.base import fixture
from tests.handlers.fakes.fal import Fake
from tests.support.quiet import stored_webhooks
from tests.support.servers import eventually
from tests.support.service import running_service
from tests.support.subscriber import recording_subscriber

VIDEO_URL = fixture("fal", "result_video")["video"]["url"]


@pytest.fixture
async def fal(fake):
    async with httpx.AsyncClient() as http:
        yield Handler(fake.config(), http)


def a_request(**fields) -> SubmitRequest:
    return SubmitRequest(job_id="vid_1", model=Fake.model, **({"prompt": "a fox"} | fields))


async def test_submission_maps_the_normalized_fields_to_fals_names(fake, fal):
    await fal.submit(
        a_request(
            prompt="a dancing robot",
            negative_prompt="blur",
            duration=5,
            resolution="720p",
            aspect_ratio="9:16",
            size="1280x720",
            seed=7,
            image_url="https://img.example/a.png",
            input={"cfg_scale": 0.3},
            callback_url="https://hooks.example/hooks/fal/token",
        )
    )
    [recorded] = fake.submissions()
    assert recorded.path == f"/{Fake.model}"
    assert recorded.headers["authorization"] == "Key test-provider-key"
    assert recorded.query == {"fal_webhook": "https://hooks.example/hooks/fal/token"}
    assert recorded.json() == {
        "prompt": "a dancing robot",
        "negative_prompt": "blur",
        "duration": "5",
        "resolution": "720p",
        "aspect_ratio": "9:16",
        "seed": 7,
        "image_url": "https://img.example/a.png",
        "cfg_scale": 0.3,
    }


async def test_input_overrides_the_duration_and_no_callback_means_no_fal_webhook(fake, fal):
    await fal.submit(a_request(duration=8, input={"duration": "8s"}))
    [recorded] = fake.submissions()
    assert recorded.json()["duration"] == "8s"
    assert recorded.query == {}


async def test_a_request_is_polled_under_its_app_without_the_subpath(fake, fal):
    report = await fal.submit(a_request())
    request_id = fake.latest()
    assert report.provider_job_id == f"fal-ai/kling-video/requests/{request_id}"
    assert (report.status, report.raw_status) == ("queued", "IN_QUEUE")
    await fal.fetch_status(report.provider_job_id)
    poll = fake.requests[-1]
    assert poll.path == f"/fal-ai/kling-video/requests/{request_id}/status"
    assert fake.authenticated(poll)


@pytest.mark.parametrize(
    ("word", "status"),
    [
        ("IN_QUEUE", "queued"),
        ("IN_PROGRESS", "in_progress"),
        ("COMPLETED", "completed"),
        ("in_progress", "in_progress"),
    ],
)
async def test_every_documented_status(fake, fal, word, status):
    report = await fal.submit(a_request())
    fake.set_status(fake.latest(), "completed")
    fake.set_raw_status(fake.latest(), word)
    seen = await fal.fetch_status(report.provider_job_id)
    assert (seen.status, seen.raw_status) == (status, word)


async def test_a_completed_request_reports_its_video(fake, fal):
    report = await fal.submit(a_request())
    fake.set_status(fake.latest(), "completed")
    seen = await fal.fetch_status(report.provider_job_id)
    assert [(output.url, output.content_type) for output in seen.outputs] == [
        (VIDEO_URL, "video/mp4")
    ]
    assert fake.requests[-1].path == f"/fal-ai/kling-video/requests/{fake.latest()}"


async def test_a_completed_request_whose_result_is_an_error_has_failed(fake, fal):
    report = await fal.submit(a_request())
    fake.set_status(fake.latest(), "failed")
    seen = await fal.fetch_status(report.provider_job_id)
    assert seen.status == "failed"
    assert (seen.error.code, seen.error.message) == ("generation_failed", "field required")


async def test_a_result_without_a_video_has_failed(fake, fal):
    report = await fal.submit(a_request())
    fake.set_status(fake.latest(), "completed")
    fake.script("result", 200, fixture("fal", "webhook_ok")["payload"])  # an image model's
    seen = await fal.fetch_status(report.provider_job_id)
    assert seen.status == "failed" and "no video" in seen.error.message


@pytest.mark.parametrize(
    "answer",
    [dict(status=503, body={"detail": "busy"}), dict(status=200, body='{"video": {"ur')],
)
async def test_an_unreadable_or_unavailable_result_is_transient(fake, fal, answer):
    report = await fal.submit(a_request())
    fake.set_status(fake.latest(), "completed")
    fake.script("result", **answer)
    with pytest.raises(TransientError):
        await fal.fetch_status(report.provider_job_id)


# -- signatures, checked by the handler against the fake's JWKS -------------------------------


async def completed_webhook(fake, fal) -> tuple[str, bytes, dict[str, str]]:
    await fal.submit(a_request())
    request_id = fake.latest()
    fake.set_status(request_id, "completed")
    return (request_id, *fake.webhook(request_id))


async def test_a_signed_webhook_verifies_and_the_keys_are_cached(fake, fal):
    _, body, headers = await completed_webhook(fake, fal)
    assert await fal.verify_webhook(headers, body) is True
    assert await fal.verify_webhook(headers, body) is True
    assert fake.jwks_fetches() == 1


@pytest.mark.parametrize(
    "header",
    [
        "x-fal-webhook-request-id",
        "x-fal-webhook-user-id",
        "x-fal-webhook-timestamp",
        "x-fal-webhook-signature",
    ],
)
async def test_fal_always_signs_so_a_missing_header_is_refused(fake, fal, header):
    _, body, headers = await completed_webhook(fake, fal)
    del headers[header]
    with pytest.raises(WebhookRejected):
        await fal.verify_webhook(headers, body)


@pytest.mark.parametrize("skew", [-301, 301])
async def test_a_timestamp_outside_five_minutes_is_refused(fake, fal, skew):
    request_id, body, _ = await completed_webhook(fake, fal)
    headers = fake.sign(request_id, body, at=time.time() + skew)
    with pytest.raises(WebhookRejected, match="5 minutes"):
        await fal.verify_webhook(headers, body)


async def test_a_tampered_body_or_a_mangled_signature_is_refused(fake, fal):
    _, body, headers = await completed_webhook(fake, fal)
    with pytest.raises(WebhookRejected, match="does not verify"):
        await fal.verify_webhook(headers, body.replace(b"OK", b"ERROR"))
    with pytest.raises(WebhookRejected, match="not hex"):
        await fal.verify_webhook(headers | {"x-fal-webhook-signature": "zz"}, body)


async def test_a_rotated_key_is_fetched_once_and_forgeries_do_not_hammer_the_jwks(fake, fal):
    request_id, body, headers = await completed_webhook(fake, fal)
    assert await fal.verify_webhook(headers, body)
    fake.rotate()
    assert await fal.verify_webhook(fake.sign(request_id, body), body)
    assert fake.jwks_fetches() == 2
    forger = Ed25519PrivateKey.generate()
    for _ in range(3):
        with pytest.raises(WebhookRejected):
            await fal.verify_webhook(fake.sign(request_id, body, key=forger), body)
    assert fake.jwks_fetches() == 2  # the refresh for the rotation was the last allowed one


async def test_a_forgery_on_a_cold_cache_fetches_the_keys_once(fake, fal):
    request_id, body, _ = await completed_webhook(fake, fal)
    forged = fake.sign(request_id, body, key=Ed25519PrivateKey.generate())
    with pytest.raises(WebhookRejected):
        await fal.verify_webhook(forged, body)
    assert fake.jwks_fetches() == 1


async def test_unavailable_keys_refuse_the_webhook(fake, fal):
    _, body, headers = await completed_webhook(fake, fal)
    config = replace(fake.config(), options={"JWKS_URL": fake.url + "/nowhere"})
    with pytest.raises(WebhookRejected, match="keys are unavailable"):
        await Handler(config, fal.http).verify_webhook(headers, body)


async def test_a_webhook_body_reports_its_request(fake, fal):
    request_id, body, _ = await completed_webhook(fake, fal)
    report = fal.parse_webhook(body)
    assert (report.provider_job_id, report.status) == (request_id, "completed")
    assert report.outputs[0].url == VIDEO_URL
    with pytest.raises(TransientError):
        fal.parse_webhook(b'{"request_id": "truncated')


# -- webhooks through the running service's receiver --------------------------------------------


@pytest.fixture
def fal_env(env, fake):
    # A long grace: a job that ends within it was ended by its webhook, not by the grace poll.
    return env | fake.env() | {"VIDEOHOOKS_WEBHOOK_GRACE": "30s"}


async def submitted(svc, fake) -> tuple[str, str]:
    """Submits a fal job; its video id and fal request id once the submission is recorded."""
    video = await svc.submit(model=f"fal/{Fake.model}")
    await eventually(lambda: _provider_job_id(svc, video["id"]))
    request_id = (await _provider_job_id(svc, video["id"])).rsplit("/", 1)[1]
    return video["id"], request_id


async def _provider_job_id(svc, video_id: str) -> str | None:
    return (await svc.video(video_id))["provider_job_id"]


async def post(url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.post(url, content=body, headers=headers)


@pytest.mark.parametrize("outcome", ["completed", "failed"])
async def test_a_signed_webhook_ends_the_job_through_the_receiver(fake, fal_env, outcome):
    async with recording_subscriber() as subscriber, running_service(fal_env) as svc:
        await svc.subscribe(subscriber.url)
        video_id, request_id = await submitted(svc, fake)
        callback = fake.callbacks[request_id]
        assert callback.startswith(f"{svc.url}/hooks/fal/")
        fake.set_status(request_id, outcome)
        assert fake.polls(request_id) == 0
        answer = await post(callback, *fake.webhook(request_id))
        assert answer.status_code == 202
        await eventually(lambda: subscriber.received, timeout=10)
        data = subscriber.received[0].event["data"]
        assert (data["id"], data["status"]) == (video_id, outcome)
        if outcome == "completed":
            assert data["outputs"] == [{"url": VIDEO_URL, "content_type": "video/mp4"}]
        else:
            assert data["error"] == {"code": "generation_failed", "message": "field required"}
        assert fake.polls(request_id) == 0  # the verified body was applied as it is


async def test_refused_webhooks_change_nothing(fake, fal_env):
    async with running_service(fal_env) as svc:
        video_id, request_id = await submitted(svc, fake)
        _, other_request_id = await submitted(svc, fake)
        callback = fake.callbacks[request_id]
        fake.set_status(request_id, "completed")
        fake.set_status(other_request_id, "completed")
        body, headers = fake.webhook(request_id)
        forged = fake.sign(request_id, body, key=Ed25519PrivateKey.generate())
        stale = fake.sign(request_id, body, at=time.time() - 3600)
        unsigned = {"content-type": "application/json"}
        for refused in (forged, stale, unsigned):
            assert (await post(callback, body, refused)).status_code == 401
        assert (await post(callback, body.replace(b"OK", b"ERROR"), headers)).status_code == 401
        assert await stored_webhooks(svc.store) == 0  # refused, so never acted on
        assert fake.polls(request_id) == 0 and await svc.events() == []
        # Another job's signed body: refused, and nothing is polled or changed.
        answer = await post(callback, *fake.webhook(other_request_id))
        assert answer.status_code == 400 and answer.json()["error"]["code"] == "webhook_mismatch"
        assert await stored_webhooks(svc.store) == 0
        assert fake.polls(request_id) == 0
        assert (await svc.video(video_id))["status"] == "queued"
        assert await svc.events() == []


async def test_a_webhook_signed_with_a_rotated_key_is_accepted(fake, fal_env):
    async with recording_subscriber() as subscriber, running_service(fal_env) as svc:
        await svc.subscribe(subscriber.url)
        _, first = await submitted(svc, fake)
        _, second = await submitted(svc, fake)
        fake.set_status(first, "completed")
        assert (await post(fake.callbacks[first], *fake.webhook(first))).status_code == 202
        fake.rotate()
        fake.set_status(second, "completed")
        assert (await post(fake.callbacks[second], *fake.webhook(second))).status_code == 202
        await eventually(lambda: len(subscriber.received) == 2, timeout=10)
        assert fake.jwks_fetches() == 2
        forger = Ed25519PrivateKey.generate()
        body, _ = fake.webhook(second)
        forged = fake.sign(second, body, key=forger)
        assert (await post(fake.callbacks[second], body, forged)).status_code == 401
        assert fake.jwks_fetches() == 2
