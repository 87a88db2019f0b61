"""Hedra: field names, the status table, progress 0-1 → 0-100, the ETA."""

from __future__ import annotations

import httpx2 as httpx
import pytest

from handlers.base import SubmitRequest
from handlers.hedra import Handler
from tests.handlers.fakes.hedra import Fake


@pytest.fixture
async def hedra(fake):
    async with httpx.AsyncClient() as http:
        yield Handler(fake.config(), http)


async def test_submission_maps_the_normalized_fields_to_hedras_names(fake, hedra):
    await hedra.submit(
        SubmitRequest(
            job_id="vid_1",
            model=Fake.model,
            prompt="a dancing robot",
            duration=5,
            resolution="720p",
            aspect_ratio="16:9",
            image_url="https://img.example/a.png",
            input={"audio_id": "aud_1", "generated_video_inputs": {"enhance_prompt": True}},
        )
    )
    body = fake.submitted(fake.submissions()[0])
    assert body["type"] == "video" and body["ai_model_id"] == Fake.model
    assert body["start_keyframe_url"] == "https://img.example/a.png"
    assert body["audio_id"] == "aud_1"
    assert body["generated_video_inputs"] == {
        "text_prompt": "a dancing robot",
        "resolution": "720p",
        "aspect_ratio": "16:9",
        "duration_ms": 5000,
        "enhance_prompt": True,
    }


@pytest.mark.parametrize(
    ("word", "status"),
    [
        ("pending", "queued"),
        ("queued", "queued"),
        ("processing", "in_progress"),
        ("finalizing", "in_progress"),
        ("complete", "completed"),
        ("error", "failed"),
        ("COMPLETE", "completed"),
    ],
)
async def test_every_documented_status(fake, hedra, word, status):
    report = await hedra.submit(SubmitRequest(job_id="vid_1", model=Fake.model, prompt="x"))
    job = fake.jobs[fake.latest()]
    job |= {
        "status": word,
        "download_url": "https://cdn.hedra.example/v.mp4",
        "error_message": "bad",
    }
    assert (await hedra.fetch_status(report.provider_job_id)).status == status


async def test_progress_is_scaled_and_the_eta_is_kept(fake, hedra):
    report = await hedra.submit(SubmitRequest(job_id="vid_1", model=Fake.model, prompt="x"))
    fake.jobs[fake.latest()] |= {"status": "processing", "progress": 0.37, "eta_sec": 42}
    seen = await hedra.fetch_status(report.provider_job_id)
    assert (seen.progress, seen.eta_s) == (37, 42)


async def test_the_error_message_is_surfaced(fake, hedra):
    report = await hedra.submit(SubmitRequest(job_id="vid_1", model=Fake.model, prompt="x"))
    fake.set_status(fake.latest(), "failed")
    seen = await hedra.fetch_status(report.provider_job_id)
    assert seen.error.message == "The image could not be animated"


async def test_unsigned_callbacks_are_never_trusted(hedra):
    assert await hedra.verify_webhook({}, b'{"status": "complete"}') is False
