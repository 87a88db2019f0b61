"""Bifrost: field names, the optional key, the status table, progress, URL and inline outputs."""

from __future__ import annotations

from base64 import b64decode

import httpx2 as httpx
import pytest

from handlers.base import (
    Output,
    PermanentError,
    ProviderConfig,
    SubmitRequest,
    TransientError,
)
from handlers.bifrost import DEFAULT_BASE_URL, Handler
from tests.handlers.fakes.base import API_KEY, fixture
from tests.handlers.fakes.bifrost import Fake


@pytest.fixture
async def bifrost(fake):
    async with httpx.AsyncClient() as http:
        yield Handler(fake.config(), http)


def a_request(**fields) -> SubmitRequest:
    return SubmitRequest(job_id="vid_1", model=Fake.model, **({"prompt": "x"} | fields))


async def submitted(fake, handler: Handler, **fields) -> dict:
    await handler.submit(a_request(**fields))
    return fake.submitted(fake.submissions()[-1])


async def test_submission_maps_the_normalized_fields_to_bifrosts_names(fake, bifrost):
    body = await submitted(
        fake,
        bifrost,
        prompt="a cat at a piano",
        negative_prompt="blur",
        duration=4,
        size="1280x720",
        resolution="720p",
        aspect_ratio="16:9",
        seed=7,
        image_url="https://img.example/cat.png",
        input={"audio": True, "fallbacks": ["gemini/veo-3.1-generate-preview"]},
    )
    assert body == {
        "model": "openai/sora-2",
        "prompt": "a cat at a piano",
        "negative_prompt": "blur",
        "seconds": "4",
        "size": "1280x720",
        "seed": 7,
        "input_reference": "https://img.example/cat.png",
        "audio": True,
        "fallbacks": ["gemini/veo-3.1-generate-preview"],
    }


async def test_resolution_is_sent_as_size_when_there_is_no_size(fake, bifrost):
    assert (await submitted(fake, bifrost, resolution="720x1280"))["size"] == "720x1280"


async def test_fractional_seconds_are_kept_and_input_wins(fake, bifrost):
    assert (await submitted(fake, bifrost, duration=2.5))["seconds"] == "2.5"
    assert (await submitted(fake, bifrost, duration=4, input={"seconds": "8"}))["seconds"] == "8"


async def test_our_fallbacks_are_never_bifrosts(fake, bifrost):
    assert "fallbacks" not in await submitted(fake, bifrost)


async def test_a_gateway_without_a_key_gets_no_authorization_header(fake):
    async with httpx.AsyncClient() as http:
        handler = Handler(ProviderConfig(base_url=fake.url), http)
        await handler.submit(a_request())
    assert "authorization" not in fake.submissions()[0].headers


@pytest.mark.parametrize(
    ("config", "configured"),
    [
        (ProviderConfig(), False),
        (ProviderConfig(base_url="http://bifrost.internal:8080"), True),
        (ProviderConfig(api_key="sk-bf-virtual"), True),
    ],
)
async def test_an_address_or_a_key_configures_it(config, configured):
    async with httpx.AsyncClient() as http:
        handler = Handler(config, http)
    assert handler.configured is configured
    assert handler.base_url == (config.base_url or DEFAULT_BASE_URL)


async def test_job_ids_are_percent_encoded_whole_in_paths(fake, bifrost):
    await bifrost.submit(a_request())
    video_id = "models/veo-3.1/operations/op1:gemini"
    fake.jobs[video_id] = fake.jobs[fake.latest()] | {"id": video_id}
    seen = await bifrost.fetch_status(video_id)
    assert seen.provider_job_id == video_id
    assert fake.raw_paths[-1] == b"/v1/videos/models%2Fveo-3.1%2Foperations%2Fop1%3Agemini"


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
async def test_every_documented_status(fake, bifrost, word, status):
    report = await bifrost.submit(a_request())
    fake.set_status(fake.latest(), status)
    fake.jobs[fake.latest()]["status"] = word
    seen = await bifrost.fetch_status(report.provider_job_id)
    assert (seen.status, seen.raw_status) == (status, word)


@pytest.mark.parametrize(("raw", "percent"), [(0, 0), (42.4, 42), (99.6, 100), (140, 100)])
async def test_progress_is_a_whole_percentage(fake, bifrost, raw, percent):
    report = await bifrost.submit(a_request())
    fake.jobs[fake.latest()] |= {"status": "in_progress", "progress": raw}
    assert (await bifrost.fetch_status(report.provider_job_id)).progress == percent


async def test_the_gateways_error_message_is_surfaced(fake, bifrost):
    report = await bifrost.submit(a_request())
    fake.set_status(fake.latest(), "failed")
    seen = await bifrost.fetch_status(report.provider_job_id)
    assert seen.error.code == "generation_failed"
    assert seen.error.message == "Your request was blocked by our moderation system."


async def test_url_outputs_go_to_events_and_inline_ones_through_content(fake, bifrost):
    report = await bifrost.submit(a_request())
    inline = fixture("bifrost", "video_completed_base64")["videos"][0]
    hosted = fixture("bifrost", "video_completed")["videos"][0]
    fake.jobs[fake.latest()] |= {"status": "completed", "videos": [hosted, inline]}
    seen = await bifrost.fetch_status(report.provider_job_id)
    assert seen.outputs == [
        Output(url="https://videos.example.com/video_abc123.mp4", content_type="video/mp4"),
        Output.via_content(1, "video/mp4"),
    ]
    async with bifrost.content(report.provider_job_id, 1) as content:
        data = b"".join([chunk async for chunk in content.chunks])
    assert content.content_type == "video/mp4"
    assert data == b64decode(inline["base64"])
    assert fake.requests[-1].headers["authorization"] == f"Bearer {API_KEY}"


async def test_an_empty_content_type_is_taken_as_mp4(fake, bifrost):
    report = await bifrost.submit(a_request())
    videos = [{"type": "url", "url": "https://videos.example.com/v.mp4", "content_type": ""}]
    fake.jobs[fake.latest()] |= {"status": "completed", "videos": videos}
    [output] = (await bifrost.fetch_status(report.provider_job_id)).outputs
    assert output.content_type == "video/mp4"


async def test_completed_without_videos_is_transient(fake, bifrost):
    report = await bifrost.submit(a_request())
    fake.jobs[fake.latest()] |= {"status": "completed", "videos": []}
    with pytest.raises(TransientError):
        await bifrost.fetch_status(report.provider_job_id)


async def test_content_that_cannot_be_served(fake, bifrost):
    report = await bifrost.submit(a_request())
    fake.set_status(fake.latest(), "completed")  # a URL output: nothing inline to serve
    with pytest.raises(PermanentError):
        async with bifrost.content(report.provider_job_id, 0):
            pass
    with pytest.raises(PermanentError):
        async with bifrost.content(report.provider_job_id, 5):
            pass
    fake.jobs[fake.latest()]["videos"] = [{"type": "base64", "base64": "not*base64"}]
    with pytest.raises(TransientError):
        async with bifrost.content(report.provider_job_id, 0):
            pass
    fake.script("status", 502, "<html>bad gateway</html>")
    with pytest.raises(TransientError):
        async with bifrost.content(report.provider_job_id, 0):
            pass


async def test_there_are_no_webhooks_to_trust(bifrost):
    assert await bifrost.verify_webhook({}, b'{"status": "completed"}') is False
    with pytest.raises(TransientError):
        bifrost.parse_webhook(b"{}")
