"""Replicate: model ids and endpoints, fields inside `input`, the status table, outputs, and
per-job webhooks (signed here by the `standardwebhooks` package) through the running service."""

from __future__ import annotations

import json
import time

import httpx2 as httpx
import pytest

from handlers.base import (
    PermanentError,
    ProviderConfig,
    SubmitRequest,
    TransientError,
    WebhookRejected,
)
from handlers.replicate import Handler
from tests.handlers.fakes.base import fixture
from tests.handlers.fakes.replicate import WEBHOOK_SECRET, Fake
from tests.support.quiet import stored_webhooks, webhooks_processed
from tests.support.servers import eventually
from tests.support.service import running_service
from tests.support.signing import signed
from tests.support.subscriber import recording_subscriber


@pytest.fixture
async def replicate(fake):
    async with httpx.AsyncClient() as http:
        yield Handler(fake.config(), http)


def a_request(**fields) -> SubmitRequest:
    return SubmitRequest(**({"job_id": "vid_1", "model": Fake.model, "prompt": "a fox"} | fields))


def _body(prediction: dict) -> bytes:
    return json.dumps(prediction).encode()


async def test_an_official_model_gets_the_fields_inside_input_and_the_webhook(fake, replicate):
    await replicate.submit(
        a_request(
            prompt="a dancing robot",
            negative_prompt="blur",
            duration=8,
            resolution="1080p",
            aspect_ratio="16:9",
            size="1920x1080",
            seed=42,
            image_url="https://img.example/a.png",
            input={"generate_audio": False, "resolution": "720p"},
            callback_url="https://videohooks.example/hooks/replicate/token",
        )
    )
    [recorded] = fake.submissions()
    assert recorded.path == "/v1/models/google/veo-3/predictions" and fake.authenticated(recorded)
    assert recorded.json() == {
        "input": {
            "prompt": "a dancing robot",
            "negative_prompt": "blur",
            "duration": 8,
            "resolution": "720p",
            "aspect_ratio": "16:9",
            "seed": 42,
            "image": "https://img.example/a.png",
            "generate_audio": False,
        },
        "webhook": "https://videohooks.example/hooks/replicate/token",
        "webhook_events_filter": ["start", "completed"],
    }


async def test_a_version_runs_through_the_predictions_endpoint(fake, replicate):
    report = await replicate.submit(a_request(model="acme/wan-video:5c7d5dc6dd8b", duration=4.5))
    [recorded] = fake.submissions()
    assert recorded.path == "/v1/predictions"
    assert recorded.json() == {
        "version": "5c7d5dc6dd8b",
        "input": {"prompt": "a fox", "duration": 4.5},
    }
    assert (report.status, report.raw_status) == ("queued", "starting")


@pytest.mark.parametrize("model", ["veo-3", "google/veo-3/extra", "google/veo-3:", ":abc"])
async def test_a_malformed_model_id_is_refused_before_any_call(fake, replicate, model):
    with pytest.raises(PermanentError) as raised:
        await replicate.submit(a_request(model=model))
    assert "owner/name" in raised.value.message and fake.requests == []


@pytest.mark.parametrize(
    ("word", "status", "code"),
    [
        ("starting", "queued", None),
        ("processing", "in_progress", None),
        ("succeeded", "completed", None),
        ("failed", "failed", "generation_failed"),
        ("canceled", "failed", "cancelled"),
        ("aborted", "failed", "timeout"),
        ("SUCCEEDED", "completed", None),
    ],
)
async def test_every_documented_status(fake, replicate, word, status, code):
    report = await replicate.submit(a_request())
    fake.jobs[report.provider_job_id] |= {"status": word, "output": "https://r.example/v.mp4"}
    seen = await replicate.fetch_status(report.provider_job_id)
    assert (seen.status, seen.progress) == (status, None)
    assert (seen.error.code if seen.error else None) == code


async def test_the_error_string_is_surfaced(fake, replicate):
    report = await replicate.submit(a_request())
    fake.set_status(report.provider_job_id, "failed")
    seen = await replicate.fetch_status(report.provider_job_id)
    assert seen.error.message == "CUDA out of memory. Tried to allocate 2.00 GiB"


async def test_a_list_of_urls_is_every_output_typed_by_its_extension(fake, replicate):
    report = await replicate.submit(a_request())
    fake.jobs[report.provider_job_id] |= {
        "status": "succeeded",
        "output": ["https://r.example/a/out.mp4", "https://r.example/b/out.webm", "a caption"],
    }
    seen = await replicate.fetch_status(report.provider_job_id)
    assert [(o.url, o.content_type) for o in seen.outputs] == [
        ("https://r.example/a/out.mp4", "video/mp4"),
        ("https://r.example/b/out.webm", "video/webm"),
    ]


async def test_success_without_a_file_fails_rather_than_waiting_forever(replicate):
    report = replicate.parse_webhook(_body(fixture("replicate", "prediction")))  # "hello Alice"
    assert report.status == "failed" and report.error.code == "no_output"


async def test_the_public_api_is_the_default_and_a_key_configures_it():
    async with httpx.AsyncClient() as http:
        assert Handler(ProviderConfig(), http).base_url == "https://api.replicate.com"
        assert not Handler(ProviderConfig(), http).configured
        assert Handler(ProviderConfig(api_key="k"), http).configured


# -- webhooks, checked by the handler ----------------------------------------------------------


async def test_the_documented_webhook_body_parses(replicate):
    report = replicate.parse_webhook(_body(fixture("replicate", "webhook_prediction")))
    assert (report.provider_job_id, report.status) == ("ufawqhfynnddngldkgtslldrkq", "queued")


async def test_bad_and_stale_signatures_are_rejected(replicate):
    prediction = fixture("replicate", "webhook_prediction")
    body, headers = signed(WEBHOOK_SECRET, prediction)
    assert await replicate.verify_webhook(headers, body) is True
    with pytest.raises(WebhookRejected):
        await replicate.verify_webhook(headers | {"webhook-signature": "v1,AAAA"}, body)
    with pytest.raises(WebhookRejected):
        await replicate.verify_webhook(headers, body.replace(b"starting", b"succeeded"))
    stale_body, stale = signed(WEBHOOK_SECRET, prediction, at=time.time() - 600)
    with pytest.raises(WebhookRejected):
        await replicate.verify_webhook(stale, stale_body)


async def test_without_a_secret_nothing_is_verified(fake):
    async with httpx.AsyncClient() as http:
        handler = Handler(ProviderConfig(api_key="k", base_url=fake.url), http)
        body, headers = signed(WEBHOOK_SECRET, fixture("replicate", "webhook_prediction"))
        assert await handler.verify_webhook(headers, body) is False


@pytest.mark.parametrize("body", [b"{not json", b'{"status": "succeeded"}', b"[]"])
async def test_unreadable_webhooks_are_transient(replicate, body):
    with pytest.raises(TransientError):
        replicate.parse_webhook(body)


# -- webhooks through the running service ------------------------------------------------------

# The service polls only after this grace, so what the tests see within seconds came by webhook.
NO_POLLS = {"VIDEOHOOKS_WEBHOOK_GRACE": "60s"}


async def _submitted(svc, fake) -> tuple[dict, str, str]:
    """Our video, Replicate's prediction id, and the webhook URL the prediction was given."""
    video = await svc.submit(model=f"replicate/{Fake.model}")
    await eventually(lambda: fake.jobs)
    await eventually(lambda: _provider_job_id(svc, video["id"]))
    return video, fake.latest(), fake.webhook_url()


async def _provider_job_id(svc, video_id: str) -> str | None:
    return (await svc.video(video_id))["provider_job_id"]


async def _status_is(svc, video_id: str, status: str) -> bool:
    return (await svc.video(video_id))["status"] == status


def _polls(fake) -> int:
    return sum(1 for recorded in fake.requests if recorded.method == "GET")


async def test_a_signed_webhook_completes_the_job_without_a_poll(fake, env):
    env |= fake.env() | NO_POLLS
    async with recording_subscriber() as subscriber, running_service(env) as svc:
        await svc.subscribe(subscriber.url)
        video, prediction_id, webhook = await _submitted(svc, fake)
        assert webhook.startswith(f"{svc.url}/hooks/replicate/")
        fake.set_status(prediction_id, "completed")
        body, headers = signed(WEBHOOK_SECRET, fake.jobs[prediction_id])
        async with httpx.AsyncClient() as client:
            assert (await client.post(webhook, content=body, headers=headers)).status_code == 202
        await eventually(lambda: subscriber.received)
        event = subscriber.received[0].event
        assert event["type"] == "video.completed" and event["data"]["id"] == video["id"]
        assert event["data"]["outputs"] == [
            {"url": fake.jobs[prediction_id]["output"], "content_type": "video/mp4"}
        ]
        assert _polls(fake) == 0


async def test_refused_webhooks_change_nothing(fake, env):
    env |= fake.env() | NO_POLLS
    async with running_service(env) as svc:
        video, prediction_id, webhook = await _submitted(svc, fake)
        fake.set_status(prediction_id, "completed")
        prediction = fake.jobs[prediction_id]
        body, headers = signed(WEBHOOK_SECRET, prediction)
        stale_body, stale = signed(WEBHOOK_SECRET, prediction, at=time.time() - 600)
        other_body, other = signed(WEBHOOK_SECRET, prediction | {"id": "another0prediction"})
        async with httpx.AsyncClient() as client:
            bad = headers | {"webhook-signature": "v1,AAAA"}
            assert (await client.post(webhook, content=body, headers=bad)).status_code == 401
            answer = await client.post(webhook, content=stale_body, headers=stale)
            assert answer.status_code == 401
            answer = await client.post(webhook, content=other_body, headers=other)
            assert answer.status_code == 400
            assert answer.json()["error"]["code"] == "webhook_mismatch"
        assert await stored_webhooks(svc.store) == 0  # refused, so never acted on
        assert (await svc.video(video["id"]))["status"] == "queued"
        assert await svc.events() == [] and _polls(fake) == 0


async def test_an_unsigned_callback_only_makes_the_service_ask_replicate(fake, env):
    env |= fake.env() | NO_POLLS
    del env["VIDEOHOOKS_REPLICATE_WEBHOOK_SECRET"]
    async with recording_subscriber() as subscriber, running_service(env) as svc:
        await svc.subscribe(subscriber.url)
        video, prediction_id, webhook = await _submitted(svc, fake)
        fake.set_status(prediction_id, "in_progress")
        claimed = fake.jobs[prediction_id] | {
            "status": "succeeded",
            "output": "https://attacker.example/x.mp4",
        }
        body, _ = signed(WEBHOOK_SECRET, claimed)
        async with httpx.AsyncClient() as client:
            answer = await client.post(webhook, content=body)
        assert answer.status_code == 202
        await eventually(lambda: _polls(fake) >= 1)
        # Processed, and taken only as a reason to ask: the poll said in progress.
        await eventually(lambda: webhooks_processed(svc.store))
        await eventually(lambda: _status_is(svc, video["id"], "in_progress"))
        assert subscriber.received == []
        fake.set_status(prediction_id, "completed")
        await eventually(lambda: subscriber.received, timeout=15)
        outputs = subscriber.received[0].event["data"]["outputs"]
        assert outputs[0]["url"] == fake.jobs[prediction_id]["output"]
