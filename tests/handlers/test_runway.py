"""Runway: field names and the two task endpoints, the version header, the status table with
progress, failure codes, and a receiver URL that is never trusted (Runway sends no callbacks)."""

from __future__ import annotations

from typing import Any

import httpx2 as httpx
import pytest

from handlers.base import (
    Output,
    ProviderConfig,
    SubmitRequest,
    TransientError,
    UncertainError,
)
from handlers.runway import Handler
from tests.handlers.fakes.base import API_KEY, fixture
from tests.handlers.fakes.runway import VERSION, Fake
from tests.handlers.hints import ATTACKER_URL, a_job_awaiting_hints
from tests.support.servers import eventually
from tests.support.service import running_service
from tests.support.subscriber import recording_subscriber


@pytest.fixture
async def runway(fake):
    async with httpx.AsyncClient() as http:
        yield Handler(fake.config(), http)


def a_request(**fields: Any) -> SubmitRequest:
    return SubmitRequest(**({"job_id": "vid_1", "model": Fake.model, "prompt": "x"} | fields))


async def submitted(fake, handler: Handler, **fields: Any) -> dict[str, Any]:
    await handler.submit(a_request(**fields))
    return dict(fake.submissions()[-1].json())


# -- submission --------------------------------------------------------------------------------


async def test_text_to_video_maps_the_normalized_fields_to_runways_names(fake, runway):
    body = await submitted(
        fake,
        runway,
        model="veo3.1",
        prompt="a lighthouse at dusk",
        negative_prompt="people",
        duration=7.6,
        size="1280x720",
        aspect_ratio="16:9",
        seed=42,
        metadata={"order": "7"},
        input={"audio": False},
    )
    recorded = fake.submissions()[-1]
    assert recorded.path == "/v1/text_to_video"
    assert recorded.headers["authorization"] == f"Bearer {API_KEY}"
    assert recorded.headers["x-runway-version"] == VERSION
    assert body == {
        "model": "veo3.1",
        "promptText": "a lighthouse at dusk",
        "negativePrompt": "people",
        "duration": 8,
        "ratio": "1280:720",
        "seed": 42,
        "audio": False,
    }


async def test_an_image_makes_it_image_to_video(fake, runway):
    body = await submitted(fake, runway, image_url="https://img.example/first.png", duration=5)
    assert fake.submissions()[-1].path == "/v1/image_to_video"
    assert body == {
        "model": "gen4_turbo",
        "promptText": "x",
        "promptImage": "https://img.example/first.png",
        "duration": 5,
    }


@pytest.mark.parametrize(
    ("fields", "ratio"),
    [
        ({"size": "720x1280"}, "720:1280"),
        ({"resolution": "1920x1080", "aspect_ratio": "16:9"}, "1920:1080"),
        ({"size": "1280x720", "resolution": "1920x1080"}, "1280:720"),
        ({"aspect_ratio": "960:960"}, "960:960"),
        ({"aspect_ratio": "16:9", "resolution": "720p"}, "16:9"),
        ({"resolution": "720p"}, None),
        ({"size": "1280x720", "input": {"ratio": "720:1280"}}, "720:1280"),
    ],
)
async def test_the_ratio_is_the_output_size(fake, runway, fields, ratio):
    assert (await submitted(fake, runway, **fields)).get("ratio") == ratio


async def test_the_version_header_can_be_overridden(fake):
    config = ProviderConfig(api_key=API_KEY, base_url=fake.url, options={"VERSION": "2025-01-01"})
    async with httpx.AsyncClient() as http:
        handler = Handler(config, http)
        report = await handler.submit(a_request())
        await handler.fetch_status(report.provider_job_id)
    assert {recorded.headers["x-runway-version"] for recorded in fake.requests} == {"2025-01-01"}


async def test_the_answer_is_the_task_id_queued(fake, runway):
    report = await runway.submit(a_request())
    assert (report.provider_job_id, report.status) == (fake.latest(), "queued")


# -- statuses, progress, outputs and failures --------------------------------------------------


@pytest.mark.parametrize(
    ("word", "status"),
    [
        ("PENDING", "queued"),
        ("THROTTLED", "queued"),
        ("RUNNING", "in_progress"),
        ("SUCCEEDED", "completed"),
        ("FAILED", "failed"),
        ("CANCELLED", "failed"),
        ("running", "in_progress"),
    ],
)
async def test_every_documented_status(fake, runway, word, status):
    report = await runway.submit(a_request())
    fake.set_status(fake.latest(), "completed")
    fake.jobs[fake.latest()]["status"] = word
    seen = await runway.fetch_status(report.provider_job_id)
    assert (seen.status, seen.raw_status) == (status, word)


async def test_progress_is_a_fraction(fake, runway):
    report = await runway.submit(a_request())
    fake.set_status(fake.latest(), "in_progress")
    assert (await runway.fetch_status(report.provider_job_id)).progress == 28  # 0.275


async def test_every_output_url_is_an_output(fake, runway):
    report = await runway.submit(a_request())
    task = fixture("runway", "task_succeeded") | {"id": fake.latest()}
    urls = [*task["output"], "https://cdn.runway.example/second.mp4"]
    fake.jobs[fake.latest()] = task | {"output": urls}
    seen = await runway.fetch_status(report.provider_job_id)
    assert seen.outputs == [Output(url=url, content_type="video/mp4") for url in urls]


async def test_succeeded_without_output_is_transient(fake, runway):
    report = await runway.submit(a_request())
    fake.jobs[fake.latest()] = {"id": fake.latest(), "status": "SUCCEEDED", "output": []}
    with pytest.raises(TransientError):
        await runway.fetch_status(report.provider_job_id)


@pytest.mark.parametrize(
    ("failure_code", "code"),
    [
        ("SAFETY.INPUT.TEXT", "content_filtered"),
        ("SAFETY.INPUT.IMAGE", "content_filtered"),
        ("SAFETY.OUTPUT.VIDEO", "content_filtered"),
        ("INPUT_PREPROCESSING.SAFETY.TEXT", "content_filtered"),
        ("INTERNAL.BAD_OUTPUT.CODE01", "generation_failed"),
        ("INPUT_PREPROCESSING.INTERNAL", "generation_failed"),
        (None, "generation_failed"),
    ],
)
async def test_failure_codes_become_error_codes(fake, runway, failure_code, code):
    report = await runway.submit(a_request())
    fake.jobs[fake.latest()] = fixture("runway", "task_failed") | {
        "id": fake.latest(),
        "failureCode": failure_code,
    }
    seen = await runway.fetch_status(report.provider_job_id)
    failure = fixture("runway", "task_failed")["failure"]
    assert seen.error is not None and seen.error.code == code
    assert seen.error.message == (f"{failure} ({failure_code})" if failure_code else failure)


async def test_a_cancelled_task_fails_as_cancelled(fake, runway):
    report = await runway.submit(a_request())
    fake.jobs[fake.latest()] = fixture("runway", "task_cancelled") | {"id": fake.latest()}
    seen = await runway.fetch_status(report.provider_job_id)
    assert seen.error is not None and seen.error.code == "cancelled"


# -- paying once -----------------------------------------------------------------------------


async def test_runway_offers_no_way_to_reconcile_and_a_late_answer_is_uncertain(fake):
    assert Handler.reconciliation == "none"
    fake.script("submit", 200, fixture("runway", "task_created"), delay=1.5)
    async with httpx.AsyncClient(timeout=1.0) as http:
        handler = Handler(fake.config(), http)
        with pytest.raises(UncertainError):
            await handler.submit(a_request())
        assert await handler.find_submission(a_request()) is None
    assert len(fake.submissions()) == 1


# -- through the service, over loopback --------------------------------------------------------


async def test_a_task_reports_progress_then_fails_with_its_failure_code(fake, env):
    async with recording_subscriber() as subscriber, running_service(env | fake.env()) as svc:
        await svc.subscribe(subscriber.url)
        video = await svc.submit(model=f"runway/{Fake.model}", prompt="a fox", size="1280x720")
        await eventually(lambda: fake.jobs)
        fake.set_status(fake.latest(), "in_progress")

        async def progressed() -> bool:
            seen = await svc.video(video["id"])
            return (seen["status"], seen["progress"]) == ("in_progress", 28)

        await eventually(progressed)
        fake.set_status(fake.latest(), "failed")
        await eventually(lambda: subscriber.received)
        event = subscriber.received[0].event
        assert event["type"] == "video.failed" and event["data"]["id"] == video["id"]
        assert event["data"]["error"]["code"] == "content_filtered"
        assert fake.submissions()[0].json()["ratio"] == "1280:720"


async def test_a_refused_submission_fails_the_job_with_runways_message(fake, env):
    fake.script("submit", 400, fake.error_body("promptImage: Only HTTPS URLs are allowed."))
    async with recording_subscriber() as subscriber, running_service(env | fake.env()) as svc:
        await svc.subscribe(subscriber.url)
        await svc.submit(model=f"runway/{Fake.model}", prompt="x", image_url="https://a.example/i")
        await eventually(lambda: subscriber.received)
        error = subscriber.received[0].event["data"]["error"]
        assert error == {
            "code": "provider_rejected",
            "message": "promptImage: Only HTTPS URLs are allowed.",
        }


async def test_a_post_to_the_receiver_is_only_a_reason_to_ask_runway(fake, env):
    """Runway sends no callbacks, so anything posted to a Runway job's receiver URL is a forgery:
    it makes the worker ask Runway, and what Runway answers is what happens."""
    async with a_job_awaiting_hints(fake, env, prompt="x") as job:
        fake.set_status(job.provider_job_id, "in_progress")
        forged = fixture("runway", "task_succeeded") | {
            "id": job.provider_job_id,
            "output": [ATTACKER_URL],
        }
        assert await job.post(forged) == 202
        video = await job.reaches("in_progress", progress=28)
        assert video["outputs"] == [] and await job.svc.events() == []

        fake.set_status(job.provider_job_id, "completed")
        failed = fixture("runway", "task_failed") | {"id": job.provider_job_id}
        assert await job.post(failed) == 202
        event = await job.terminal_event()
        assert event["type"] == "video.completed"
        [output] = event["data"]["outputs"]
        assert output["url"] == f"https://cdn.runway.example/{job.provider_job_id}.mp4"
