"""Luma: field names, the receiver URL as `callback_url`, the state table and failure reasons,
and its unsigned callbacks, which Luma posts on every state change: through the service they only
make the worker ask Luma, so a forged one changes nothing and a progress one never ends a job."""

from __future__ import annotations

import json
from typing import Any

import httpx2 as httpx
import pytest

from handlers.base import Output, SubmitRequest, TransientError, UncertainError
from handlers.luma import Handler
from tests.handlers.fakes.base import API_KEY, fixture
from tests.handlers.fakes.luma import Fake
from tests.handlers.hints import ATTACKER_URL, a_job_awaiting_hints
from tests.support.subscriber import recording_subscriber

RECEIVER = "https://hooks.example/hooks/luma/token"


@pytest.fixture
async def luma(fake):
    async with httpx.AsyncClient() as http:
        yield Handler(fake.config(), http)


def a_request(**fields: Any) -> SubmitRequest:
    return SubmitRequest(**({"job_id": "vid_1", "model": Fake.model, "prompt": "x"} | fields))


async def submitted(fake, handler: Handler, **fields: Any) -> dict[str, Any]:
    await handler.submit(a_request(**fields))
    return dict(fake.submissions()[-1].json())


def callback(generation: dict[str, Any]) -> bytes:
    return json.dumps(generation).encode()


# -- submission --------------------------------------------------------------------------------


async def test_submission_maps_the_normalized_fields_to_lumas_names(fake, luma):
    body = await submitted(
        fake,
        luma,
        model="ray-flash-2",
        prompt="A tiger walking in snow",
        negative_prompt="people",
        duration=9.2,
        resolution="1080p",
        aspect_ratio="21:9",
        size="1920x1080",
        seed=3,
        image_url="https://img.example/first.jpg",
        callback_url=RECEIVER,
        input={"loop": True, "concepts": [{"key": "dolly_zoom"}]},
    )
    recorded = fake.submissions()[-1]
    assert recorded.path == "/generations"
    assert recorded.headers["authorization"] == f"Bearer {API_KEY}"
    assert body == {
        "model": "ray-flash-2",
        "prompt": "A tiger walking in snow",
        "aspect_ratio": "21:9",
        "resolution": "1080p",
        "duration": "9s",
        "keyframes": {"frame0": {"type": "image", "url": "https://img.example/first.jpg"}},
        "callback_url": RECEIVER,
        "loop": True,
        "concepts": [{"key": "dolly_zoom"}],
    }


async def test_only_what_is_set_is_sent(fake, luma):
    assert await submitted(fake, luma) == {"model": "ray-2", "prompt": "x"}


async def test_input_wins_but_the_receiver_stays_the_callback_url(fake, luma):
    frames = {"frame0": {"type": "generation", "id": "an-earlier-generation"}}
    body = await submitted(
        fake,
        luma,
        image_url="https://img.example/first.jpg",
        callback_url=RECEIVER,
        input={"keyframes": frames, "callback_url": "https://elsewhere.example/"},
    )
    assert (body["keyframes"], body["callback_url"]) == (frames, RECEIVER)


async def test_the_answer_is_the_generation_queued(fake, luma):
    report = await luma.submit(a_request())
    assert (report.provider_job_id, report.status) == (fake.latest(), "queued")


# -- states, outputs and failure reasons -------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "status"),
    [
        ("queued", "queued"),
        ("dreaming", "in_progress"),
        ("completed", "completed"),
        ("failed", "failed"),
        ("DREAMING", "in_progress"),
    ],
)
async def test_every_documented_state(fake, luma, word, status):
    report = await luma.submit(a_request())
    fake.set_status(fake.latest(), "completed")
    fake.jobs[fake.latest()]["state"] = word
    seen = await luma.fetch_status(report.provider_job_id)
    assert (seen.status, seen.raw_status) == (status, word)


async def test_the_output_is_the_video_asset(fake, luma):
    report = await luma.submit(a_request())
    fake.jobs[fake.latest()] = fixture("luma", "generation_completed") | {"id": fake.latest()}
    seen = await luma.fetch_status(report.provider_job_id)
    video = fixture("luma", "generation_completed")["assets"]["video"]
    assert seen.outputs == [Output(url=video, content_type="video/mp4")]


async def test_completed_without_a_video_is_transient(fake, luma):
    report = await luma.submit(a_request())
    fake.jobs[fake.latest()] |= {"state": "completed", "assets": {"image": "https://i.example/x"}}
    with pytest.raises(TransientError):
        await luma.fetch_status(report.provider_job_id)


@pytest.mark.parametrize(
    ("reason", "code"),
    [
        ("Contains blacklisted words", "content_filtered"),
        ("Frame moderation failed", "content_filtered"),
        ("Advanced prompt moderation failed", "content_filtered"),
        ("Failed to read user input frames", "generation_failed"),
        ("Prompt processing failed", "generation_failed"),
    ],
)
async def test_failure_reasons_become_error_codes(fake, luma, reason, code):
    report = await luma.submit(a_request())
    fake.jobs[fake.latest()] |= {"state": "failed", "failure_reason": reason}
    seen = await luma.fetch_status(report.provider_job_id)
    assert seen.error is not None and seen.error.model_dump() == {"code": code, "message": reason}


# -- callbacks, on the handler -----------------------------------------------------------------


@pytest.mark.parametrize(
    "state", ["generation_dreaming", "generation_completed", "generation_failed"]
)
async def test_every_documented_callback_parses_but_none_is_trusted(luma, state):
    body = callback(fixture("luma", state))
    assert await luma.verify_webhook({"content-type": "application/json"}, body) is False
    report = luma.parse_webhook(body)
    assert report.provider_job_id == fixture("luma", state)["id"]


@pytest.mark.parametrize("body", [b"{not json", b"[]", b"{}", b'{"id": "x"}'])
async def test_unreadable_callbacks_are_transient(luma, body):
    with pytest.raises(TransientError):
        luma.parse_webhook(body)


# -- paying once -------------------------------------------------------------------------------


async def test_the_first_callback_names_the_generation_a_lost_answer_created(fake):
    """Reconciliation by webhook: a submission whose answer never came still made Luma call this
    attempt's receiver URL, from its first change of state, with the generation's id."""
    assert Handler.reconciliation == "webhook"
    fake.answer_delay = 1.5
    async with recording_subscriber() as receiver, httpx.AsyncClient(timeout=1.0) as http:
        handler = Handler(fake.config(), http)
        with pytest.raises(UncertainError):
            await handler.submit(a_request(callback_url=receiver.url))
        [generation_id] = fake.jobs
        fake.set_status(generation_id, "in_progress")
        assert await fake.notify(generation_id) == 200
        [received] = receiver.received
    assert handler.parse_webhook(received.body).provider_job_id == generation_id
    [submission] = fake.submissions()
    assert submission.json()["callback_url"] == receiver.url


# -- callbacks through the service, over loopback ----------------------------------------------


async def a_luma_job(fake, env):
    return a_job_awaiting_hints(fake, env, handed=lambda job_id: fake.callbacks[job_id], prompt="x")


async def test_a_forged_callback_changes_nothing(fake, env):
    async with await a_luma_job(fake, env) as job:
        assert job.receiver_url.startswith(f"{job.svc.url}/hooks/luma/")
        generation_id = job.provider_job_id
        fake.set_status(generation_id, "in_progress")
        forged = fixture("luma", "generation_completed") | {"id": generation_id}
        forged["assets"] = {"video": ATTACKER_URL}
        assert await job.post(forged) == 202
        await job.asked()
        # Luma says dreaming, so the job is in progress, and nothing else happened.
        video = await job.video()
        assert (video["status"], video["outputs"]) == ("in_progress", [])
        assert await job.svc.events() == []

        fake.set_status(generation_id, "completed")
        assert await job.post(fixture("luma", "generation_failed") | {"id": generation_id}) == 202
        event = await job.terminal_event()
        assert event["type"] == "video.completed" and ATTACKER_URL not in str(event)
        [output] = event["data"]["outputs"]
        assert output["url"] == fake.jobs[generation_id]["assets"]["video"]


async def test_a_callback_about_another_generation_is_refused(fake, env):
    async with await a_luma_job(fake, env) as job:
        other = fixture("luma", "generation_completed") | {"id": "another-generation"}
        assert await job.post(other) == 400
        assert await job.post(b"{not json") == 202  # unreadable: only a reason to ask
        await job.asked()
        video = await job.video()
        assert (video["status"], video["outputs"]) == ("queued", [])


async def test_progress_callbacks_update_the_job_and_never_end_it(fake, env):
    async with await a_luma_job(fake, env) as job:
        generation_id = job.provider_job_id
        fake.set_status(generation_id, "in_progress")
        assert await fake.notify(generation_id) == 202
        await job.asked()
        assert (await job.video())["status"] == "in_progress"
        assert await job.svc.events() == []
        # A late "dreaming" (Luma retries callbacks) is still only a reason to ask, and Luma's
        # API says the generation is complete: that is what happens.
        fake.set_status(generation_id, "completed")
        dreaming = fixture("luma", "generation_dreaming") | {"id": generation_id}
        assert await job.post(dreaming) == 202
        event = await job.terminal_event()
        assert event["type"] == "video.completed"


async def test_a_failed_generation_fails_the_job_with_its_reason(fake, env):
    async with await a_luma_job(fake, env) as job:
        fake.set_status(job.provider_job_id, "failed")
        assert await fake.notify(job.provider_job_id) == 202
        event = await job.terminal_event()
        assert event["type"] == "video.failed"
        assert event["data"]["error"] == {
            "code": "content_filtered",
            "message": "Advanced prompt moderation failed",
        }
