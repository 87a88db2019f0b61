"""Kling: field names and endpoints, the API token (a JWT, checked by the fake with PyJWT as Kling
documents it, and made anew before it lapses), the status table, the lookup by external_task_id
that resolves an uncertain submission, and callbacks read but never trusted."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx2 as httpx
import jwt
import pytest

from handlers.base import (
    Output,
    PermanentError,
    ProviderConfig,
    SubmitRequest,
    TransientError,
)
from handlers.kling import ApiToken, Handler
from tests.handlers.fakes.base import fixture
from tests.handlers.fakes.kling import ACCESS_KEY, SECRET_KEY, Fake

VIDEO_URL = fixture("kling", "task_succeed")["data"]["task_result"]["videos"][0]["url"]


@pytest.fixture
async def kling(fake):
    async with httpx.AsyncClient() as http:
        yield Handler(fake.config(), http)


def a_request(**fields: Any) -> SubmitRequest:
    return SubmitRequest(job_id="vid_1", model=Fake.model, **({"prompt": "a fox"} | fields))


def claims(recorded) -> dict[str, Any]:
    token = recorded.headers["authorization"].removeprefix("Bearer ")
    return dict(jwt.decode(token, SECRET_KEY, algorithms=["HS256"]))


# -- submission --------------------------------------------------------------------------------


async def test_text_to_video_maps_the_normalized_fields_to_klings_names(fake, kling):
    report = await kling.submit(
        a_request(
            prompt="a lamp on a desk",
            negative_prompt="blur",
            duration=10,
            resolution="1080p",
            aspect_ratio="9:16",
            size="1280x720",
            seed=3,
            callback_url="https://hooks.example/hooks/kling/token",
            reference="vid_1.0",
            input={"mode": "pro", "cfg_scale": 0.5},
        )
    )
    [recorded] = fake.submissions()
    assert recorded.path == "/v1/videos/text2video"
    assert recorded.json() == {
        "model_name": "kling-v2-1-master",
        "prompt": "a lamp on a desk",
        "negative_prompt": "blur",
        "duration": "10",
        "aspect_ratio": "9:16",
        "callback_url": "https://hooks.example/hooks/kling/token",
        "external_task_id": "vid_1.0",
        "mode": "pro",
        "cfg_scale": 0.5,
    }
    assert report.provider_job_id == f"text2video/{fake.latest()}"
    assert (report.status, report.raw_status) == ("queued", "submitted")


async def test_an_image_goes_to_image_to_video_without_an_aspect_ratio(fake, kling):
    report = await kling.submit(
        a_request(image_url="https://img.example/first.png", aspect_ratio="16:9")
    )
    [recorded] = fake.submissions()
    assert recorded.path == "/v1/videos/image2video"
    assert recorded.json() == {
        "model_name": "kling-v2-1-master",
        "prompt": "a fox",
        "image": "https://img.example/first.png",
    }
    assert report.provider_job_id == f"image2video/{fake.latest()}"
    await kling.fetch_status(report.provider_job_id)
    assert fake.requests[-1].path == f"/v1/videos/image2video/{fake.latest()}"


async def test_an_image_in_input_also_means_image_to_video(fake, kling):
    await kling.submit(a_request(input={"image": "aGVsbG8=", "image_tail": "aGk="}))
    assert fake.submissions()[-1].path == "/v1/videos/image2video"


async def test_input_wins_except_over_the_reference_that_finds_the_task_again(fake, kling):
    await kling.submit(
        a_request(
            duration=5,
            reference="vid_1.0",
            input={"duration": "10", "model_name": "kling-v1-6", "external_task_id": "mine"},
        )
    )
    body = fake.submissions()[-1].json()
    assert (body["duration"], body["model_name"]) == ("10", "kling-v1-6")
    assert body["external_task_id"] == "vid_1.0"


# -- the API token ------------------------------------------------------------------------------


async def test_every_call_carries_a_jwt_made_from_the_access_and_secret_keys(fake, kling):
    before = int(time.time())
    report = await kling.submit(a_request())
    await kling.fetch_status(report.provider_job_id)
    submitted, polled = fake.requests
    assert fake.authenticated(submitted) and fake.authenticated(polled)
    made = claims(submitted)
    assert made["iss"] == ACCESS_KEY
    assert before + 1800 <= made["exp"] <= int(time.time()) + 1800
    assert made["nbf"] == made["exp"] - 1800 - 5
    assert polled.headers["authorization"] == submitted.headers["authorization"]


def test_the_token_is_kept_until_five_minutes_before_it_lapses_then_made_anew():
    now = [1_000_000.0]
    token = ApiToken(ACCESS_KEY, SECRET_KEY, clock=lambda: now[0])
    first = token.current()
    now[0] += 1499
    assert token.current() == first
    now[0] += 1
    second = token.current()
    assert second != first
    assert jwt.decode(second, SECRET_KEY, algorithms=["HS256"], options={"verify_exp": False}) == {
        "iss": ACCESS_KEY,
        "exp": 1_001_500 + 1800,
        "nbf": 1_001_500 - 5,
    }


async def test_a_token_near_its_end_is_refreshed_before_kling_would_refuse_it(fake, kling):
    report = await kling.submit(a_request())
    first = fake.requests[-1].headers["authorization"]
    # 26 minutes on, for both sides: the old token still has four minutes, but is not sent again.
    later = time.time() + 1560
    kling.api_token.clock = lambda: later
    fake.clock_offset = 1560
    await kling.fetch_status(report.provider_job_id)
    assert fake.requests[-1].headers["authorization"] != first
    # The fake does refuse a lapsed token, so the refresh is what kept the call working.
    fake.clock_offset = 1560 + 1800
    with pytest.raises(PermanentError) as raised:
        await kling.fetch_status(report.provider_job_id)
    assert raised.value.status == 401 and "expired" in raised.value.message


async def test_configured_only_with_both_keys(fake):
    async with httpx.AsyncClient() as http:
        for options in ({}, {"ACCESS_KEY": ACCESS_KEY}, {"SECRET_KEY": SECRET_KEY}):
            handler = Handler(ProviderConfig(base_url=fake.url, options=options), http)
            assert not handler.configured
            with pytest.raises(PermanentError, match="VIDEOHOOKS_KLING_ACCESS_KEY"):
                await handler.submit(a_request())
        # The contract's single API key cannot hold both halves, so it is not read.
        handler = Handler(ProviderConfig(api_key="ak:sk", base_url=fake.url), http)
        assert not handler.configured
        assert Handler(fake.config(), http).configured
    assert fake.requests == []


# -- statuses and outputs ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "status"),
    [
        ("submitted", "queued"),
        ("processing", "in_progress"),
        ("succeed", "completed"),
        ("failed", "failed"),
        ("SUCCEED", "completed"),
    ],
)
async def test_every_documented_status(fake, kling, word, status):
    report = await kling.submit(a_request())
    fake.set_status(fake.latest(), "completed")
    fake.set_status(fake.latest(), "failed")
    fake.set_raw_status(fake.latest(), word)
    seen = await kling.fetch_status(report.provider_job_id)
    assert (seen.status, seen.raw_status) == (status, word)
    assert seen.provider_job_id == report.provider_job_id


async def test_a_finished_task_gives_its_videos(fake, kling):
    report = await kling.submit(a_request())
    fake.set_status(fake.latest(), "completed")
    seen = await kling.fetch_status(report.provider_job_id)
    assert seen.outputs == [Output(url=VIDEO_URL, content_type="video/mp4")]
    assert seen.progress is None and seen.error is None


async def test_a_failed_task_carries_klings_reason(fake, kling):
    report = await kling.submit(a_request())
    fake.set_status(fake.latest(), "failed")
    seen = await kling.fetch_status(report.provider_job_id)
    assert seen.error.model_dump() == {
        "code": "generation_failed",
        "message": "Failure to pass the risk control system",
    }


async def test_succeed_without_a_video_is_asked_again(fake, kling):
    report = await kling.submit(a_request())
    fake.set_raw_status(fake.latest(), "succeed")
    with pytest.raises(TransientError):
        await kling.fetch_status(report.provider_job_id)


async def test_a_refusal_carries_klings_message(fake, kling):
    fake.script("submit", 400, fixture("kling", "error"))
    with pytest.raises(PermanentError) as raised:
        await kling.submit(a_request())
    assert (raised.value.message, raised.value.status) == ("model_name is not valid", 400)


# -- at-most-once: the lookup by external_task_id -------------------------------------------------


def test_kling_declares_the_lookup():
    assert Handler.reconciliation == "lookup"


async def test_a_submission_is_found_again_by_its_reference(fake, kling):
    submitted = await kling.submit(a_request(reference="vid_7.1"))
    fake.set_status(fake.latest(), "in_progress")
    found = await kling.find_submission(a_request(reference="vid_7.1"))
    assert found is not None
    assert (found.provider_job_id, found.status) == (submitted.provider_job_id, "in_progress")
    assert fake.requests[-1].path == "/v1/videos/text2video/vid_7.1"
    assert len(fake.submissions()) == 1


async def test_an_image_submission_is_looked_up_under_image_to_video(fake, kling):
    request = a_request(reference="vid_8.0", image_url="https://img.example/a.png")
    submitted = await kling.submit(request)
    found = await kling.find_submission(request)
    assert found is not None and found.provider_job_id == submitted.provider_job_id
    assert found.provider_job_id.startswith("image2video/")


async def test_a_callback_before_the_answer_adopts_the_task_it_names(fake, kling):
    """A callback that arrives before the submission's answer names the bare task_id; the job
    adopted is the one submit would have returned, which the worker can then poll."""
    request = a_request(reference="vid_9.0", image_url="https://img.example/a.png")
    submitted = await kling.submit(request)
    task_id = submitted.provider_job_id.partition("/")[2]
    adopted = kling.adopted_job_id(request, task_id)
    assert adopted == submitted.provider_job_id
    assert (await kling.fetch_status(adopted)).provider_job_id == submitted.provider_job_id


async def test_no_task_with_the_reference_means_none(fake, kling):
    await kling.submit(a_request(reference="vid_7.0"))
    assert await kling.find_submission(a_request(reference="vid_7.1")) is None
    assert await kling.find_submission(a_request(reference="")) is None


async def test_a_lookup_that_fails_otherwise_is_not_taken_for_none(fake, kling):
    fake.script("status", 503, {"code": 5001, "message": "maintenance"})
    with pytest.raises(TransientError):
        await kling.find_submission(a_request(reference="vid_7.1"))
    fake.clock_offset = 3600  # Kling no longer accepts the token: 401, not "no such task"
    with pytest.raises(PermanentError):
        await kling.find_submission(a_request(reference="vid_7.1"))


# -- callbacks -------------------------------------------------------------------------------------


async def test_callbacks_are_unsigned_so_never_verified(kling):
    body = json.dumps(fixture("kling", "callback")).encode()
    assert await kling.verify_webhook({"authorization": "Bearer x"}, body) is False


async def test_the_documented_callback_reads_as_the_task(kling):
    report = kling.parse_webhook(json.dumps(fixture("kling", "callback")).encode())
    assert (report.provider_job_id, report.status) == ("867283741759111202", "completed")
    assert report.outputs == [Output(url=VIDEO_URL, content_type="video/mp4")]


@pytest.mark.parametrize("body", [b"{not json", b"[]", b"{}", b'{"task_id": "1"}'])
async def test_unreadable_callbacks_are_transient(kling, body):
    with pytest.raises(TransientError):
        kling.parse_webhook(body)
