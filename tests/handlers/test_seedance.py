"""Seedance on BytePlus ModelArk: the content list and output settings, the status table with its
cancelled and expired endings, ModelArk's error object, and callbacks read but never trusted."""

from __future__ import annotations

import json
from typing import Any

import httpx2 as httpx
import pytest

from handlers.base import Output, PermanentError, SubmitRequest, TransientError
from handlers.seedance import Handler
from tests.handlers.fakes.base import API_KEY, fixture
from tests.handlers.fakes.seedance import Fake

VIDEO_URL = fixture("seedance", "task_succeeded")["content"]["video_url"]


@pytest.fixture
async def seedance(fake):
    async with httpx.AsyncClient() as http:
        yield Handler(fake.config(), http)


def a_request(**fields: Any) -> SubmitRequest:
    return SubmitRequest(job_id="vid_1", model=Fake.model, **({"prompt": "a fox"} | fields))


async def test_submission_maps_the_normalized_fields_to_modelarks_names(fake, seedance):
    report = await seedance.submit(
        a_request(
            prompt="a kitten yawns at the camera",
            negative_prompt="blur",
            duration=5.4,
            resolution="720p",
            aspect_ratio="16:9",
            size="1280x720",
            seed=11,
            image_url="https://img.example/first.png",
            callback_url="https://hooks.example/hooks/seedance/token",
            input={"camera_fixed": True, "watermark": False},
        )
    )
    [recorded] = fake.submissions()
    assert recorded.path == "/api/v3/contents/generations/tasks"
    assert recorded.headers["authorization"] == f"Bearer {API_KEY}"
    assert recorded.json() == {
        "model": "seedance-1-0-pro-250528",
        "content": [
            {"type": "text", "text": "a kitten yawns at the camera"},
            {
                "type": "image_url",
                "image_url": {"url": "https://img.example/first.png"},
                "role": "first_frame",
            },
        ],
        "resolution": "720p",
        "ratio": "16:9",
        "seed": 11,
        "duration": 5,
        "callback_url": "https://hooks.example/hooks/seedance/token",
        "camera_fixed": True,
        "watermark": False,
    }
    assert (report.provider_job_id, report.status) == (fake.latest(), "queued")
    assert report.provider_job_id.startswith("cgt-")


async def test_input_content_replaces_the_whole_list(fake, seedance):
    frames = [
        {"type": "text", "text": "from first to last"},
        {
            "type": "image_url",
            "image_url": {"url": "https://img.example/a.png"},
            "role": "first_frame",
        },
        {
            "type": "image_url",
            "image_url": {"url": "https://img.example/b.png"},
            "role": "last_frame",
        },
    ]
    await seedance.submit(
        a_request(image_url="https://img.example/ignored.png", input={"content": frames})
    )
    assert fake.submissions()[-1].json()["content"] == frames


@pytest.mark.parametrize(
    ("word", "status"),
    [
        ("queued", "queued"),
        ("running", "in_progress"),
        ("succeeded", "completed"),
        ("failed", "failed"),
        ("cancelled", "failed"),
        ("expired", "failed"),
        ("RUNNING", "in_progress"),
    ],
)
async def test_every_documented_status(fake, seedance, word, status):
    report = await seedance.submit(a_request())
    fake.set_status(fake.latest(), "completed")
    fake.set_raw_status(fake.latest(), word)
    seen = await seedance.fetch_status(report.provider_job_id)
    assert (seen.status, seen.raw_status, seen.provider_job_id) == (
        status,
        word,
        report.provider_job_id,
    )


async def test_a_finished_task_gives_its_video(fake, seedance):
    report = await seedance.submit(a_request())
    fake.set_status(fake.latest(), "completed")
    seen = await seedance.fetch_status(report.provider_job_id)
    assert seen.outputs == [Output(url=VIDEO_URL, content_type="video/mp4")]


@pytest.mark.parametrize(
    ("word", "code", "message"),
    [
        ("failed", "generation_failed", fixture("seedance", "task_failed")["error"]["message"]),
        ("cancelled", "cancelled", "seedance reported the task cancelled"),
        ("expired", "expired", "seedance reported the task expired"),
    ],
)
async def test_failures_keep_their_kind_and_modelarks_message(fake, seedance, word, code, message):
    report = await seedance.submit(a_request())
    if word == "failed":
        fake.set_status(fake.latest(), "failed")
    else:
        fake.set_raw_status(fake.latest(), word)
    seen = await seedance.fetch_status(report.provider_job_id)
    assert seen.error.model_dump() == {"code": code, "message": message}


async def test_succeeded_without_a_video_is_asked_again(fake, seedance):
    report = await seedance.submit(a_request())
    fake.set_raw_status(fake.latest(), "succeeded")
    with pytest.raises(TransientError):
        await seedance.fetch_status(report.provider_job_id)


async def test_modelarks_error_object_is_the_message(fake, seedance):
    fake.script("submit", 400, fixture("seedance", "error"))
    with pytest.raises(PermanentError) as raised:
        await seedance.submit(a_request())
    assert raised.value.message == fixture("seedance", "error")["error"]["message"]
    async with httpx.AsyncClient() as http:
        wrong = Handler(type(fake.config())(api_key="wrong", base_url=fake.config().base_url), http)
        with pytest.raises(PermanentError, match="API key") as raised:
            await wrong.submit(a_request())
        assert raised.value.status == 401


def test_only_a_callback_can_tell_which_task_a_lost_submission_created():
    assert Handler.reconciliation == "webhook"


async def test_callbacks_are_unsigned_and_read_as_the_task(fake, seedance):
    report = await seedance.submit(a_request())
    fake.set_status(fake.latest(), "completed")
    body = json.dumps(fake.callback(fake.latest())).encode()
    assert await seedance.verify_webhook({}, body) is False
    seen = seedance.parse_webhook(body)
    assert (seen.provider_job_id, seen.status) == (report.provider_job_id, "completed")
    assert seen.outputs == [Output(url=VIDEO_URL, content_type="video/mp4")]


@pytest.mark.parametrize("body", [b"{not json", b"[]", b"{}", b'{"id": "cgt-1"}'])
async def test_unreadable_callbacks_are_transient(seedance, body):
    with pytest.raises(TransientError):
        seedance.parse_webhook(body)
