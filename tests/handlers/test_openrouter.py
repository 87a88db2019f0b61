"""OpenRouter: field names, the status table, authenticated outputs, and HMAC-signed webhooks,
checked on the handler and through the running service's receiver.

Webhooks are signed here with the test's own `hmac`, as OpenRouter documents it, independently
of the handler's verifier."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import httpx2 as httpx
import pytest

from handlers.base import (
    Output,
    PermanentError,
    ProviderConfig,
    SubmitRequest,
    TransientError,
    WebhookRejected,
)
from handlers.openrouter import Handler
from tests.handlers.fakes.base import API_KEY, fixture
from tests.handlers.fakes.openrouter import VIDEO_BYTES, WEBHOOK_SECRET, Fake
from tests.support.quiet import stored_webhooks
from tests.support.servers import eventually
from tests.support.service import running_service
from tests.support.subscriber import recording_subscriber

MODEL = f"openrouter/{Fake.model}"


def signed(
    event: dict[str, Any], secret: str = WEBHOOK_SECRET, at: float | None = None
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of a webhook signed the documented way:
    t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>,<raw body>")>."""
    body = json.dumps(event).encode()
    timestamp = str(int(time.time() if at is None else at))
    digest = hmac.new(secret.encode(), f"{timestamp},".encode() + body, hashlib.sha256)
    data = event["data"]
    return body, {
        "content-type": "application/json",
        "x-openrouter-signature": f"t={timestamp},v1={digest.hexdigest()}",
        "x-openrouter-idempotency-key": f"{data['id']}-{data['status']}",
    }


@pytest.fixture
async def openrouter(fake):
    async with httpx.AsyncClient() as http:
        yield Handler(fake.config(), http)


def a_request(**fields: Any) -> SubmitRequest:
    return SubmitRequest(job_id="vid_1", model=Fake.model, **({"prompt": "x"} | fields))


async def submitted(fake, handler: Handler, **fields: Any) -> dict[str, Any]:
    await handler.submit(a_request(**fields))
    return dict(fake.submitted(fake.submissions()[-1]))


# -- submission --------------------------------------------------------------------------------


async def test_submission_maps_the_normalized_fields_to_openrouters_names(fake, openrouter):
    body = await submitted(
        fake,
        openrouter,
        prompt="a lamp on a desk",
        negative_prompt="blur",
        duration=4.4,
        resolution="720p",
        aspect_ratio="16:9",
        size="1280x720",
        seed=3,
        image_url="https://img.example/first.png",
        metadata={"order": "7"},
        callback_url="https://hooks.example/hooks/openrouter/token",
        input={"generate_audio": False, "provider": {"options": {"google-vertex": {}}}},
    )
    assert body == {
        "model": "google/veo-3.1",
        "prompt": "a lamp on a desk",
        "duration": 4,
        "resolution": "720p",
        "aspect_ratio": "16:9",
        "size": "1280x720",
        "seed": 3,
        "frame_images": [
            {
                "type": "image_url",
                "image_url": {"url": "https://img.example/first.png"},
                "frame_type": "first_frame",
            }
        ],
        "metadata": {"order": "7"},
        "callback_url": "https://hooks.example/hooks/openrouter/token",
        "generate_audio": False,
        "provider": {"options": {"google-vertex": {}}},
    }
    assert fake.submissions()[-1].headers["authorization"] == f"Bearer {API_KEY}"


async def test_only_what_is_set_is_sent(fake, openrouter):
    assert await submitted(fake, openrouter) == {"model": "google/veo-3.1", "prompt": "x"}


async def test_input_wins_over_the_composed_fields(fake, openrouter):
    references = [{"type": "image_url", "image_url": {"url": "https://img.example/style.png"}}]
    body = await submitted(
        fake,
        openrouter,
        duration=4,
        image_url="https://img.example/first.png",
        input={"duration": 8, "frame_images": [], "input_references": references},
    )
    assert (body["duration"], body["frame_images"]) == (8, [])
    assert body["input_references"] == references


async def test_submission_is_queued_as_pending(openrouter):
    report = await openrouter.submit(a_request())
    assert (report.status, report.raw_status) == ("queued", "pending")


# -- statuses and outputs -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "status"),
    [
        ("pending", "queued"),
        ("queued", "queued"),
        ("in_progress", "in_progress"),
        ("completed", "completed"),
        ("failed", "failed"),
        ("cancelled", "failed"),
        ("expired", "failed"),
        ("IN_PROGRESS", "in_progress"),
    ],
)
async def test_every_documented_status(fake, openrouter, word, status):
    report = await openrouter.submit(a_request())
    fake.set_status(fake.latest(), "completed")
    fake.jobs[fake.latest()]["status"] = word
    seen = await openrouter.fetch_status(report.provider_job_id)
    assert (seen.status, seen.raw_status) == (status, word)


@pytest.mark.parametrize(
    ("word", "code", "message"),
    [
        ("failed", "generation_failed", "Content policy violation"),
        ("cancelled", "cancelled", "Job was cancelled"),
        ("expired", "expired", "Job exceeded maximum time to live"),
    ],
)
async def test_failures_keep_their_kind_and_openrouters_message(
    fake, openrouter, word, code, message
):
    report = await openrouter.submit(a_request())
    fake.jobs[fake.latest()] |= {"status": word, "error": message}
    seen = await openrouter.fetch_status(report.provider_job_id)
    assert seen.error.model_dump() == {"code": code, "message": message}


async def test_outputs_are_served_through_content_never_as_unsigned_urls(fake, openrouter):
    report = await openrouter.submit(a_request())
    fake.set_status(fake.latest(), "completed")
    fake.jobs[fake.latest()]["unsigned_urls"] *= 2
    seen = await openrouter.fetch_status(report.provider_job_id)
    assert seen.outputs == [Output.via_content(0), Output.via_content(1)]
    async with openrouter.content(report.provider_job_id, 1) as content:
        data = b"".join([chunk async for chunk in content.chunks])
    assert (content.content_type, data) == ("video/mp4", VIDEO_BYTES)
    download = fake.requests[-1]
    assert download.path == f"/v1/videos/{report.provider_job_id}/content"
    assert download.query == {"index": "1"} and fake.authenticated(download)


async def test_completed_without_urls_is_transient(fake, openrouter):
    report = await openrouter.submit(a_request())
    fake.jobs[fake.latest()]["status"] = "completed"
    with pytest.raises(TransientError):
        await openrouter.fetch_status(report.provider_job_id)


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (dict(status=404, body={"error": {"code": 404, "message": "Not found"}}), PermanentError),
        (dict(status=503, body="unavailable", headers={"retry-after": "4"}), TransientError),
        (dict(status=200, body="", delay=1.5), TransientError),
    ],
)
async def test_a_refused_download_is_classified(fake, answer, error):
    async with httpx.AsyncClient(timeout=1.0) as http:
        handler = Handler(fake.config(), http)
        report = await handler.submit(a_request())
        fake.script("content", **answer)
        with pytest.raises(error) as raised:
            async with handler.content(report.provider_job_id, 0):
                pass
    if answer["status"] == 503:
        assert raised.value.retry_after == 4
    if answer["status"] == 404:
        assert raised.value.message == "Not found"


# -- webhook signatures, on the handler -----------------------------------------------------


async def test_a_documented_signature_verifies(openrouter):
    event = fixture("openrouter", "webhook_completed")
    body, headers = signed(event)
    assert await openrouter.verify_webhook(headers, body) is True
    upper = {key.title(): value for key, value in headers.items()}
    assert await openrouter.verify_webhook(upper, body) is True


def forged(headers: dict[str, str], signature: str) -> dict[str, str]:
    return headers | {"x-openrouter-signature": signature}


@pytest.mark.parametrize(
    "case",
    [
        "wrong secret",
        "tampered body",
        "stale",
        "from the future",
        "no header",
        "no v1",
        "bad timestamp",
        "not ascii",
    ],
)
async def test_bad_signatures_are_rejected(openrouter, case):
    event = fixture("openrouter", "webhook_completed")
    body, headers = signed(event)
    t = headers["x-openrouter-signature"].split(",")[0]
    if case == "wrong secret":
        body, headers = signed(event, secret="another-secret")
    elif case == "tampered body":
        body = body.replace(b"completed", b"cancelled")
    elif case == "stale":
        body, headers = signed(event, at=time.time() - 301)
    elif case == "from the future":
        body, headers = signed(event, at=time.time() + 301)
    elif case == "no header":
        del headers["x-openrouter-signature"]
    elif case == "no v1":
        headers = forged(headers, t)
    elif case == "bad timestamp":
        headers = forged(headers, "t=soon,v1=00")
    elif case == "not ascii":
        headers = forged(headers, f"{t},v1=é")
    with pytest.raises(WebhookRejected):
        await openrouter.verify_webhook(headers, body)


async def test_a_rotated_secret_may_sign_alongside(openrouter):
    event = fixture("openrouter", "webhook_completed")
    body, headers = signed(event)
    _, old = signed(event, secret="old-secret")
    old_v1 = old["x-openrouter-signature"].split(",")[1]
    headers = forged(headers, f"{old_v1},{headers['x-openrouter-signature']}")
    assert await openrouter.verify_webhook(headers, body) is True


async def test_without_a_secret_nothing_is_verified(fake):
    async with httpx.AsyncClient() as http:
        handler = Handler(ProviderConfig(api_key=API_KEY, base_url=fake.url), http)
        body, headers = signed(fixture("openrouter", "webhook_completed"))
        assert await handler.verify_webhook(headers, body) is False
        assert await handler.verify_webhook({}, body) is False


@pytest.mark.parametrize(
    ("word", "status", "code"),
    [
        ("completed", "completed", None),
        ("failed", "failed", "generation_failed"),
        ("cancelled", "failed", "cancelled"),
        ("expired", "failed", "expired"),
    ],
)
async def test_every_documented_webhook_parses(openrouter, word, status, code):
    report = openrouter.parse_webhook(json.dumps(fixture("openrouter", f"webhook_{word}")).encode())
    assert (report.provider_job_id, report.status, report.refetch) == ("abc123", status, False)
    assert (report.error and report.error.code) == code
    assert report.outputs == ([Output.via_content(0)] if status == "completed" else [])


@pytest.mark.parametrize("body", [b"{not json", b'{"type": "video.generation', b"[]", b"{}"])
async def test_unreadable_webhooks_are_transient(openrouter, body):
    with pytest.raises(TransientError):
        openrouter.parse_webhook(body)


# -- webhooks through the running service's receiver ----------------------------------------


async def _submitted(svc, fake, **fields: Any) -> tuple[dict[str, Any], str]:
    """A video submitted through the service, once OpenRouter holds it: (video, callback URL)."""
    video = await svc.submit(model=MODEL, **fields)
    stored = await eventually(lambda: _with_provider_job(svc, video["id"]))
    return stored, str(fake.callbacks[stored["provider_job_id"]])


async def _with_provider_job(svc, video_id: str) -> dict[str, Any] | None:
    video = await svc.video(video_id)
    return video if video["provider_job_id"] else None


async def _status_is(svc, video_id: str, status: str) -> bool:
    return (await svc.video(video_id))["status"] == status


def polls(fake) -> list[str]:
    return [recorded.path for recorded in fake.requests if recorded.method == "GET"]


async def test_a_signed_webhook_completes_the_job_without_a_poll(fake, env):
    async with recording_subscriber() as subscriber, running_service(env | fake.env()) as svc:
        await svc.subscribe(subscriber.url)
        video, callback = await _submitted(svc, fake, metadata={"order": "7"})
        assert callback.startswith(f"{svc.url}/hooks/openrouter/")
        body, headers = signed(fake.webhook(video["provider_job_id"], "completed"))
        async with httpx.AsyncClient() as client:
            answer = await client.post(callback, content=body, headers=headers)
        assert answer.status_code == 202
        await eventually(lambda: subscriber.received)
        event = subscriber.received[0].event
        assert event["type"] == "video.completed" and event["data"]["id"] == video["id"]
        assert event["data"]["metadata"] == {"order": "7"}
        assert event["data"]["outputs"] == [
            {
                "url": f"{svc.url}/v1/videos/{video['id']}/content?output=0",
                "content_type": "video/mp4",
            }
        ]
        assert polls(fake) == []


async def test_a_signed_cancellation_fails_the_job(fake, env):
    async with recording_subscriber() as subscriber, running_service(env | fake.env()) as svc:
        await svc.subscribe(subscriber.url)
        video, callback = await _submitted(svc, fake)
        body, headers = signed(fake.webhook(video["provider_job_id"], "cancelled"))
        async with httpx.AsyncClient() as client:
            assert (await client.post(callback, content=body, headers=headers)).status_code == 202
        await eventually(lambda: subscriber.received)
        event = subscriber.received[0].event
        assert event["type"] == "video.failed"
        assert event["data"]["error"] == {"code": "cancelled", "message": "Job was cancelled"}
        assert polls(fake) == []


async def test_forged_stale_and_foreign_webhooks_change_nothing(fake, env):
    async with running_service(env | fake.env()) as svc:
        first, callback = await _submitted(svc, fake)
        second, _ = await _submitted(svc, fake)
        event = fake.webhook(first["provider_job_id"], "completed")
        body = json.dumps(event).encode()
        stale_body, stale = signed(event, at=time.time() - 301)
        forged_body, forged_headers = signed(event, secret="not-the-workspace-secret")
        foreign_body, foreign = signed(fake.webhook(second["provider_job_id"], "completed"))
        unsigned = {"content-type": "application/json"}
        async with httpx.AsyncClient() as client:
            for content, sent, expected in (
                (forged_body, forged_headers, 401),
                (stale_body, stale, 401),
                (body, unsigned, 401),
                (foreign_body, foreign, 400),
            ):
                answer = await client.post(callback, content=content, headers=sent)
                assert answer.status_code == expected, answer.text
        await _no_change(svc, first["id"])
        assert await svc.events() == []


async def _no_change(svc, video_id: str) -> None:
    assert await stored_webhooks(svc.store) == 0  # nothing stored for the worker to act on
    video = await svc.video(video_id)
    assert (video["status"], video["outputs"]) == ("queued", [])


async def test_an_unsigned_callback_only_makes_the_service_ask(fake, env):
    env = {key: value for key, value in (env | fake.env()).items() if "WEBHOOK_SECRET" not in key}
    async with recording_subscriber() as subscriber, running_service(env) as svc:
        await svc.subscribe(subscriber.url)
        video, callback = await _submitted(svc, fake)
        job_id = video["provider_job_id"]
        fake.set_status(job_id, "in_progress")
        body, headers = signed(fake.webhook(job_id, "completed"))
        async with httpx.AsyncClient() as client:
            assert (await client.post(callback, content=body, headers=headers)).status_code == 202
        # Asked at once (the webhook grace is 2 s), and the body's "completed" was not taken.
        await eventually(lambda: _status_is(svc, video["id"], "in_progress"), timeout=1.5)
        assert polls(fake) and subscriber.received == []
        fake.set_status(job_id, "completed")
        await eventually(lambda: subscriber.received)
        assert subscriber.received[0].event["type"] == "video.completed"
