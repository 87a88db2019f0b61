"""OpenAI: field names, the status table, the authenticated content download, and the thin
project webhooks (Standard Webhooks, signed here by the `standardwebhooks` package) arriving at
the account-level receiver POST /hooks/openai."""

from __future__ import annotations

import json
import time

import httpx2 as httpx
import pytest

from handlers.base import (
    CONTENT_URL_PREFIX,
    PermanentError,
    ProviderConfig,
    SubmitRequest,
    TransientError,
    WebhookRejected,
)
from handlers.openai import Handler
from tests.handlers.fakes.base import fixture
from tests.handlers.fakes.openai import MP4, WEBHOOK_SECRET, Fake
from tests.support.quiet import stored_webhooks
from tests.support.servers import eventually
from tests.support.service import running_service
from tests.support.signing import signed
from tests.support.subscriber import recording_subscriber


@pytest.fixture
async def openai(fake):
    async with httpx.AsyncClient() as http:
        yield Handler(fake.config(), http)


def a_request(**fields) -> SubmitRequest:
    return SubmitRequest(**({"job_id": "vid_1", "model": Fake.model, "prompt": "a fox"} | fields))


async def test_submission_maps_the_normalized_fields_to_openais_names(fake, openai):
    await openai.submit(
        a_request(
            model="sora-2-pro",
            prompt="a paper airplane over a forest",
            negative_prompt="rain",
            duration=8,
            size="1792x1024",
            resolution="720p",
            aspect_ratio="16:9",
            seed=7,
            image_url="https://img.example/first-frame.png",
            input={"seconds": "12", "characters": [{"id": "char_1"}]},
        )
    )
    [recorded] = fake.submissions()
    assert recorded.path == "/v1/videos" and fake.authenticated(recorded)
    assert recorded.json() == {
        "model": "sora-2-pro",
        "prompt": "a paper airplane over a forest",
        "seconds": "12",
        "size": "1792x1024",
        "input_reference": {"image_url": "https://img.example/first-frame.png"},
        "characters": [{"id": "char_1"}],
    }


@pytest.mark.parametrize(
    ("resolution", "size"), [("1280x720", "1280x720"), ("720p", None), (None, None)]
)
async def test_a_resolution_is_a_size_only_in_width_x_height_form(fake, openai, resolution, size):
    await openai.submit(a_request(resolution=resolution, duration=4))
    body = fake.submissions()[0].json()
    assert body.get("size") == size and body["seconds"] == "4"


@pytest.mark.parametrize(
    ("word", "status"),
    [
        ("queued", "queued"),
        ("in_progress", "in_progress"),
        ("completed", "completed"),
        ("failed", "failed"),
        ("COMPLETED", "completed"),
    ],
)
async def test_every_documented_status(fake, openai, word, status):
    report = await openai.submit(a_request())
    fake.jobs[report.provider_job_id] |= {
        "status": word,
        "error": {"code": "x", "message": "y"},
    }
    assert (await openai.fetch_status(report.provider_job_id)).status == status


async def test_progress_and_the_output_served_through_videohooks(fake, openai):
    report = await openai.submit(a_request())
    fake.set_status(report.provider_job_id, "in_progress")
    assert (await openai.fetch_status(report.provider_job_id)).progress == 33
    fake.set_status(report.provider_job_id, "completed")
    seen = await openai.fetch_status(report.provider_job_id)
    assert seen.progress == 100
    assert [(o.url, o.content_type) for o in seen.outputs] == [
        (f"{CONTENT_URL_PREFIX}0", "video/mp4")
    ]


async def test_the_error_message_is_surfaced(fake, openai):
    report = await openai.submit(a_request())
    fake.set_status(report.provider_job_id, "failed")
    seen = await openai.fetch_status(report.provider_job_id)
    assert seen.error.message == "Your request was blocked by our moderation system."


async def test_content_streams_the_mp4_with_the_api_key(fake, openai):
    report = await openai.submit(a_request())
    fake.set_status(report.provider_job_id, "completed")
    async with openai.content(report.provider_job_id, 0) as content:
        received = b"".join([chunk async for chunk in content.chunks])
    assert (content.content_type, received) == ("video/mp4", MP4)
    download = fake.requests[-1]
    assert download.path == f"/v1/videos/{report.provider_job_id}/content"
    assert fake.authenticated(download)


async def test_content_refusals_carry_openais_message(fake, openai):
    report = await openai.submit(a_request())
    with pytest.raises(PermanentError) as raised:
        async with openai.content(report.provider_job_id, 0):
            pass
    assert "Video is not ready yet" in raised.value.message
    with pytest.raises(PermanentError):
        async with openai.content(report.provider_job_id, 1):
            pass


async def test_content_outages_are_transient(fake, openai):
    report = await openai.submit(a_request())
    fake.set_status(report.provider_job_id, "completed")
    fake.script("content", 503, fake.error_body("overloaded"), {"retry-after": "3"})
    with pytest.raises(TransientError) as raised:
        async with openai.content(report.provider_job_id, 0):
            pass
    assert raised.value.retry_after == 3 and "overloaded" in raised.value.message
    unreachable = Handler(ProviderConfig(api_key="k", base_url="http://127.0.0.1:9"), openai.http)
    with pytest.raises(TransientError):
        async with unreachable.content(report.provider_job_id, 0):
            pass


async def test_the_public_api_is_the_default_and_a_key_configures_it():
    async with httpx.AsyncClient() as http:
        assert Handler(ProviderConfig(), http).base_url == "https://api.openai.com"
        assert not Handler(ProviderConfig(), http).configured
        assert Handler(ProviderConfig(api_key="k"), http).configured


# -- webhooks, checked by the handler ----------------------------------------------------------


async def test_a_signed_webhook_names_the_video_to_refetch(fake, openai):
    body, headers = signed(WEBHOOK_SECRET, fake.webhook("video_abc", "video.failed"))
    assert await openai.verify_webhook(headers, body) is True
    report = openai.parse_webhook(body)
    assert (report.provider_job_id, report.status, report.refetch) == ("video_abc", "failed", True)


async def test_the_documented_example_parses(openai):
    report = openai.parse_webhook(json.dumps(fixture("openai", "webhook_video_completed")).encode())
    assert (report.provider_job_id, report.status) == ("video_abc123", "completed")


async def test_another_project_event_is_never_terminal(openai):
    event = fixture("openai", "webhook_video_completed") | {"type": "batch.completed"}
    report = openai.parse_webhook(json.dumps(event).encode())
    assert (report.status, report.refetch) == ("in_progress", True)


async def test_bad_and_stale_signatures_are_rejected(fake, openai):
    body, headers = signed(WEBHOOK_SECRET, fake.webhook("video_abc"))
    with pytest.raises(WebhookRejected):
        await openai.verify_webhook(headers | {"webhook-signature": "v1,AAAA"}, body)
    with pytest.raises(WebhookRejected):
        await openai.verify_webhook(headers, body.replace(b"video_abc", b"video_xyz"))
    stale_body, stale = signed(WEBHOOK_SECRET, fake.webhook("video_abc"), at=time.time() - 600)
    with pytest.raises(WebhookRejected):
        await openai.verify_webhook(stale, stale_body)


async def test_without_a_secret_nothing_is_verified(fake):
    async with httpx.AsyncClient() as http:
        handler = Handler(ProviderConfig(api_key="k", base_url=fake.url), http)
        body, headers = signed(WEBHOOK_SECRET, fake.webhook("video_abc"))
        assert await handler.verify_webhook(headers, body) is False


@pytest.mark.parametrize("body", [b"{not json", b'{"type": "video.completed"}', b"[]"])
async def test_unreadable_webhooks_are_transient(openai, body):
    with pytest.raises(TransientError):
        openai.parse_webhook(body)


# -- webhooks through the running service ------------------------------------------------------

# Polls so rare that anything the tests see within seconds was caused by the webhook.
SLOW_POLLS = {"VIDEOHOOKS_POLL_MIN": "60s", "VIDEOHOOKS_POLL_MAX": "60s"}


async def _submitted(svc, fake) -> tuple[dict, str]:
    video = await svc.submit(model=f"openai/{Fake.model}")
    await eventually(lambda: fake.jobs)
    await eventually(lambda: _provider_job_id(svc, video["id"]))
    return video, fake.latest()


async def _provider_job_id(svc, video_id: str) -> str | None:
    return (await svc.video(video_id))["provider_job_id"]


def _polls(fake) -> int:
    return sum(1 for r in fake.requests if r.method == "GET" and not r.path.endswith("/content"))


async def test_a_signed_webhook_makes_the_service_fetch_the_video_at_once(fake, env):
    env |= fake.env() | SLOW_POLLS
    async with recording_subscriber() as subscriber, running_service(env) as svc:
        await svc.subscribe(subscriber.url)
        video, video_id = await _submitted(svc, fake)
        fake.set_status(video_id, "completed")
        assert _polls(fake) == 0
        body, headers = signed(WEBHOOK_SECRET, fake.webhook(video_id))
        async with httpx.AsyncClient() as client:
            answer = await client.post(f"{svc.url}/hooks/openai", content=body, headers=headers)
        assert answer.status_code == 202
        await eventually(lambda: subscriber.received)
        event = subscriber.received[0].event
        assert event["type"] == "video.completed" and event["data"]["id"] == video["id"]
        content_url = f"{svc.url}/v1/videos/{video['id']}/content?output=0"
        assert event["data"]["outputs"] == [{"url": content_url, "content_type": "video/mp4"}]
        assert _polls(fake) == 1  # the one re-fetch the webhook asked for
        downloaded = await svc.api.get(content_url)
        assert downloaded.status_code == 200 and downloaded.content == MP4


async def test_refused_webhooks_change_nothing(fake, env):
    env |= fake.env() | SLOW_POLLS
    async with running_service(env) as svc:
        video, video_id = await _submitted(svc, fake)
        fake.set_status(video_id, "completed")
        body, headers = signed(WEBHOOK_SECRET, fake.webhook(video_id))
        stale_body, stale = signed(WEBHOOK_SECRET, fake.webhook(video_id), at=time.time() - 600)
        foreign_body, foreign = signed(WEBHOOK_SECRET, fake.webhook("video_not_ours"))
        async with httpx.AsyncClient(base_url=svc.url) as client:
            bad = headers | {"webhook-signature": "v1,AAAA"}
            assert (
                await client.post("/hooks/openai", content=body, headers=bad)
            ).status_code == 401
            answer = await client.post("/hooks/openai", content=stale_body, headers=stale)
            assert answer.status_code == 401
            answer = await client.post("/hooks/openai", content=foreign_body, headers=foreign)
            assert answer.status_code == 200 and answer.json()["applied"] is False
        assert await stored_webhooks(svc.store) == 0  # refused or not ours: never acted on
        assert _polls(fake) == 0
        assert (await svc.video(video["id"]))["status"] == "queued"
        assert await svc.events() == []


async def test_without_a_secret_the_account_receiver_refuses_webhooks(fake, env):
    env |= fake.env() | SLOW_POLLS
    del env["VIDEOHOOKS_OPENAI_WEBHOOK_SECRET"]
    async with running_service(env) as svc:
        video, video_id = await _submitted(svc, fake)
        body, headers = signed(WEBHOOK_SECRET, fake.webhook(video_id))
        async with httpx.AsyncClient(base_url=svc.url) as client:
            answer = await client.post("/hooks/openai", content=body, headers=headers)
        assert answer.status_code == 401
        assert "VIDEOHOOKS_OPENAI_WEBHOOK_SECRET" in answer.json()["error"]["message"]
        assert _polls(fake) == 0
        assert (await svc.video(video["id"]))["status"] == "queued"


@pytest.mark.parametrize("secret", [True, False], ids=["with a secret", "without"])
async def test_with_a_secret_a_job_waits_for_its_webhook_before_polling(fake, env, secret):
    # Polls every 100 ms (fast_env), a webhook grace of a minute.
    env |= fake.env() | {"VIDEOHOOKS_WEBHOOK_GRACE": "60s"}
    if not secret:
        del env["VIDEOHOOKS_OPENAI_WEBHOOK_SECRET"]
    async with running_service(env) as svc:
        video, _ = await _submitted(svc, fake)
        if secret:
            # The first poll is scheduled after the grace: a webhook is expected first.
            stored = await svc.store.get_job(video["id"])
            assert stored.next_check_at - stored.submitted_at >= 59
            assert _polls(fake) == 0
        else:
            await eventually(lambda: _polls(fake) >= 2)
