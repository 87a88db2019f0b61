"""NanoGPT: field names, both documented status shapes, every status word, error messages."""

from __future__ import annotations

import httpx2 as httpx
import pytest

from handlers.base import PermanentError, ProviderConfig, SubmitRequest, TransientError
from handlers.nanogpt import Handler
from tests.handlers.fakes.base import fixture
from tests.handlers.fakes.nanogpt import Fake, status_payload


@pytest.fixture
async def nanogpt(fake):
    async with httpx.AsyncClient() as http:
        yield Handler(fake.config(), http)


def a_request(**fields) -> SubmitRequest:
    return SubmitRequest(job_id="vid_1", model=Fake.model, **({"prompt": "x"} | fields))


async def submitted_job(fake, nanogpt) -> str:
    report = await nanogpt.submit(a_request())
    assert report.provider_job_id == fake.latest()
    return report.provider_job_id


async def test_submission_maps_the_normalized_fields_to_nanogpts_names(fake, nanogpt):
    report = await nanogpt.submit(
        a_request(
            prompt="a fox in the snow",
            negative_prompt="blur",
            duration=5,
            aspect_ratio="16:9",
            resolution="720p",
            size="1280x720",
            seed=42,
            image_url="https://img.example/fox.png",
            input={"generateAudio": True},
        )
    )
    assert fake.submitted(fake.submissions()[0]) == {
        "model": "veo2-video",
        "prompt": "a fox in the snow",
        "negative_prompt": "blur",
        "duration": "5",
        "aspect_ratio": "16:9",
        "resolution": "720p",
        "size": "1280x720",
        "seed": 42,
        "imageUrl": "https://img.example/fox.png",
        "generateAudio": True,
    }
    assert (report.status, report.raw_status) == ("queued", "pending")


async def test_a_data_url_goes_to_image_data_url_and_input_wins_over_duration(fake, nanogpt):
    data_url = "data:image/jpeg;base64,/9j/4AAQ"
    await nanogpt.submit(a_request(duration=5.5, image_url=data_url, input={"duration": "5s"}))
    body = fake.submitted(fake.submissions()[0])
    assert body["imageDataUrl"] == data_url and "imageUrl" not in body
    assert body["duration"] == "5s"


async def test_a_fractional_duration_is_sent_as_written(fake, nanogpt):
    await nanogpt.submit(a_request(duration=5.5))
    assert fake.submitted(fake.submissions()[0])["duration"] == "5.5"


async def test_the_status_is_polled_by_request_id_with_the_api_key(fake, nanogpt):
    job_id = await submitted_job(fake, nanogpt)
    await nanogpt.fetch_status(job_id)
    poll = fake.requests[-1]
    assert (poll.path, poll.query) == ("/video/status", {"requestId": job_id})
    assert fake.authenticated(poll)


@pytest.mark.parametrize(
    ("word", "status"),
    [
        ("pending", "queued"),
        ("queued", "queued"),
        ("IN_QUEUE", "queued"),
        ("processing", "in_progress"),
        ("generating", "in_progress"),
        ("delivering", "in_progress"),
        ("IN_PROGRESS", "in_progress"),
        ("unknown", "in_progress"),
        ("COMPLETED", "completed"),
        ("completed", "completed"),
        ("FAILED", "failed"),
        ("failed", "failed"),
        ("CANCELED", "failed"),
        ("cancelled", "failed"),
    ],
)
async def test_every_documented_status(fake, nanogpt, word, status):
    job_id = await submitted_job(fake, nanogpt)
    fake.jobs[job_id] = status_payload(job_id, "completed")
    fake.set_raw_status(job_id, word)
    seen = await nanogpt.fetch_status(job_id)
    assert (seen.status, seen.raw_status) == (status, word)


async def test_the_nested_example_shape_gives_the_video_url(fake, nanogpt):
    job_id = await submitted_job(fake, nanogpt)
    fake.set_status(job_id, "completed")
    seen = await nanogpt.fetch_status(job_id)
    assert [output.url for output in seen.outputs] == ["https://storage.example.com/video.mp4"]
    assert seen.outputs[0].content_type == "video/mp4"


async def test_the_flat_schema_shape_gives_url_progress_and_eta(fake, nanogpt):
    job_id = await submitted_job(fake, nanogpt)
    flat = fixture("nanogpt", "status_schema") | {"requestId": job_id}
    fake.jobs[job_id] = flat | {
        "status": "processing",
        "progress": 37,
        "estimatedTimeRemaining": 20,
    }
    seen = await nanogpt.fetch_status(job_id)
    assert (seen.status, seen.progress, seen.eta_s) == ("in_progress", 37, 20)
    fake.jobs[job_id] = flat | {"status": "completed", "videoUrl": "https://cdn.example/v.mp4"}
    seen = await nanogpt.fetch_status(job_id)
    assert (seen.status, seen.progress, seen.outputs[0].url) == (
        "completed",
        100,  # the sample's 123 is clamped
        "https://cdn.example/v.mp4",
    )


async def test_completion_without_a_url_is_transient(fake, nanogpt):
    job_id = await submitted_job(fake, nanogpt)
    fake.set_raw_status(job_id, "COMPLETED")
    with pytest.raises(TransientError):
        await nanogpt.fetch_status(job_id)


@pytest.mark.parametrize(
    ("error", "message"),
    [
        ("Content policy violation", "Content policy violation"),
        ({"message": "Upstream refused the image"}, "Upstream refused the image"),
        (None, "nanogpt reported FAILED"),
    ],
)
async def test_the_error_message_is_surfaced(fake, nanogpt, error, message):
    job_id = await submitted_job(fake, nanogpt)
    fake.set_status(job_id, "failed")
    fake.jobs[job_id]["data"]["error"] = error
    seen = await nanogpt.fetch_status(job_id)
    assert (seen.status, seen.error.message) == ("failed", message)


async def test_the_legacy_error_shape_is_permanent_with_its_message(fake, nanogpt):
    fake.script("submit", 402, fixture("nanogpt", "error_legacy"))
    with pytest.raises(PermanentError) as raised:
        await nanogpt.submit(a_request())
    assert raised.value.message == "Insufficient balance"


async def test_the_default_base_url_is_nanogpts_api():
    async with httpx.AsyncClient() as http:
        assert Handler(ProviderConfig(api_key="k"), http).base_url == "https://nano-gpt.com/api"


async def test_callbacks_are_never_trusted(nanogpt):
    assert await nanogpt.verify_webhook({}, b'{"status": "COMPLETED"}') is False
    with pytest.raises(TransientError):
        nanogpt.parse_webhook(b"{}")
