"""MiniMax: field names, errors carried in `base_resp`, the status table, the finished task's
file_id turned into the video only when it is downloaded, and the callback challenge answered over
real HTTP through the running service's receiver."""

from __future__ import annotations

import json
from typing import Any

import httpx2 as httpx
import pytest

from handlers import handler_class, implemented
from handlers.base import (
    Output,
    PermanentError,
    ProviderConfig,
    SubmitRequest,
    TransientError,
    UncertainError,
)
from handlers.minimax import Handler
from service.urls import UrlPolicy, guarded_client
from tests.handlers.fakes.base import API_KEY, fixture
from tests.handlers.fakes.minimax import VIDEO_BYTES, Fake
from tests.support.servers import eventually
from tests.support.service import running_service
from tests.support.subscriber import recording_subscriber


@pytest.fixture
async def minimax(fake):
    # The download URL MiniMax gives is fetched through the service's egress guard, here one that
    # lets loopback through (the fake's files live there).
    egress = guarded_client(UrlPolicy(allow_private=True), 1.0)
    async with httpx.AsyncClient(timeout=1.0) as http, egress:
        handler = Handler(fake.config(), http)
        handler.egress = egress
        yield handler


def a_request(**fields: Any) -> SubmitRequest:
    return SubmitRequest(job_id="vid_1", model=Fake.model, **({"prompt": "a fox"} | fields))


# -- submission --------------------------------------------------------------------------------


async def test_submission_maps_the_normalized_fields_to_minimaxs_names(fake, minimax):
    report = await minimax.submit(
        a_request(
            prompt="a lamp on a desk [Push in]",
            negative_prompt="blur",
            duration=6.2,
            resolution="1080p",
            aspect_ratio="16:9",
            size="1920x1080",
            seed=3,
            image_url="https://img.example/first.png",
            input={"prompt_optimizer": False},
        )
    )
    [recorded] = fake.submissions()
    assert recorded.path == "/v1/video_generation"
    assert recorded.headers["authorization"] == f"Bearer {API_KEY}"
    assert recorded.json() == {
        "model": "MiniMax-Hailuo-02",
        "prompt": "a lamp on a desk [Push in]",
        "first_frame_image": "https://img.example/first.png",
        "duration": 6,
        "resolution": "1080P",
        "prompt_optimizer": False,
    }
    assert (report.provider_job_id, report.status) == (fake.latest(), "queued")


async def test_a_resolution_minimax_does_not_spell_is_left_to_input(fake, minimax):
    await minimax.submit(a_request(resolution="1920x1080", input={"duration": 10}))
    body = fake.submissions()[-1].json()
    assert "resolution" not in body and body["duration"] == 10


@pytest.mark.parametrize(
    ("code", "message", "error"),
    [
        (2013, "invalid params", PermanentError),
        (1004, "not authorized", PermanentError),
        (1008, "insufficient balance", PermanentError),
        (1026, "input new_sensitive", PermanentError),
        (1002, "rate limit", TransientError),
        (1039, "token limit", TransientError),
        (1001, "request timeout", UncertainError),
        (1000, "unknown error", UncertainError),
    ],
)
async def test_errors_answered_with_http_200_are_classified_by_their_code(
    fake, minimax, code, message, error
):
    body = {"task_id": "", "base_resp": {"status_code": code, "status_msg": message}}
    fake.script("submit", 200, body)
    with pytest.raises(error) as raised:
        await minimax.submit(a_request())
    assert type(raised.value) is error
    assert raised.value.message == f"{message} (minimax status_code {code})"


async def test_the_documented_refusals(fake, minimax):
    fake.script("submit", 200, fixture("minimax", "rate_limited"))
    with pytest.raises(TransientError) as raised:
        await minimax.submit(a_request())
    assert not isinstance(raised.value, UncertainError)
    fake.script("submit", 200, fixture("minimax", "error"))
    with pytest.raises(PermanentError, match="invalid params"):
        await minimax.submit(a_request())


async def test_a_wrong_key_is_refused_on_every_call(fake):
    async with httpx.AsyncClient() as http:
        handler = Handler(type(fake.config())(api_key="wrong", base_url=fake.url), http)
        with pytest.raises(PermanentError, match="not authorized"):
            await handler.submit(a_request())
        with pytest.raises(PermanentError, match="not authorized"):
            await handler.fetch_status("176843862716480")


# -- statuses and outputs ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "status"),
    [
        ("Preparing", "queued"),
        ("Queueing", "queued"),
        ("Processing", "in_progress"),
        ("Success", "completed"),
        ("Fail", "failed"),
        ("success", "completed"),
        ("failed", "failed"),
    ],
)
async def test_every_documented_status(fake, minimax, word, status):
    report = await minimax.submit(a_request())
    fake.set_status(fake.latest(), "completed")
    fake.set_raw_status(fake.latest(), word)
    seen = await minimax.fetch_status(report.provider_job_id)
    assert (seen.status, seen.raw_status, seen.provider_job_id) == (
        status,
        word,
        report.provider_job_id,
    )


async def test_a_finished_task_is_served_through_the_content_endpoint(fake, minimax):
    report = await minimax.submit(a_request())
    fake.set_status(fake.latest(), "completed")
    seen = await minimax.fetch_status(report.provider_job_id)
    assert seen.outputs == [Output.via_content(0, "video/mp4")]
    # Nothing but the query was asked: the download URL is resolved when it is downloaded.
    assert [r.path for r in fake.requests][-1] == "/v1/query/video_generation"


async def test_the_video_is_fetched_by_its_file_id_and_its_download_url_without_the_key(
    fake, minimax
):
    report = await minimax.submit(a_request())
    fake.set_status(fake.latest(), "completed")
    file_id = fake.jobs[fake.latest()]["file_id"]
    async with minimax.content(report.provider_job_id, 0) as content:
        data = b"".join([chunk async for chunk in content.chunks])
    assert (content.content_type, data) == ("video/mp4", VIDEO_BYTES)
    query, retrieve, download = fake.requests[-3:]
    assert query.query == {"task_id": report.provider_job_id} and fake.authenticated(query)
    assert (retrieve.path, retrieve.query) == ("/v1/files/retrieve", {"file_id": file_id})
    assert fake.authenticated(retrieve)
    assert download.path == f"/download/{file_id}/output_aigc.mp4"
    assert "authorization" not in download.headers


async def test_a_video_that_cannot_be_served_is_refused(fake, minimax):
    report = await minimax.submit(a_request())
    fake.set_status(fake.latest(), "in_progress")
    with pytest.raises(PermanentError, match="has no file"):
        async with minimax.content(report.provider_job_id, 0):
            pass
    fake.set_status(fake.latest(), "completed")
    with pytest.raises(PermanentError, match="one video"):
        async with minimax.content(report.provider_job_id, 1):
            pass
    # The documentation's own example download_url has no scheme: never fetched.
    fake.script("retrieve", 200, fixture("minimax", "file_retrieved"))
    with pytest.raises(TransientError, match="not http"):
        async with minimax.content(report.provider_job_id, 0):
            pass
    fake.script("download", 404, "gone")
    with pytest.raises(PermanentError):
        async with minimax.content(report.provider_job_id, 0):
            pass


async def test_a_failed_task_carries_minimaxs_reason(fake, minimax):
    report = await minimax.submit(a_request())
    fake.set_status(fake.latest(), "failed")
    seen = await minimax.fetch_status(report.provider_job_id)
    assert seen.error.model_dump() == {
        "code": "generation_failed",
        "message": "output video sensitive",
    }
    fake.jobs[fake.latest()]["base_resp"] = {"status_code": 0, "status_msg": "success"}
    seen = await minimax.fetch_status(report.provider_job_id)
    assert seen.error.message == "minimax reported the task failed"


async def test_success_without_a_file_is_asked_again(fake, minimax):
    report = await minimax.submit(a_request())
    fake.set_raw_status(fake.latest(), "Success")
    with pytest.raises(TransientError):
        await minimax.fetch_status(report.provider_job_id)


# -- callbacks and the challenge -------------------------------------------------------------------


async def test_the_challenge_is_echoed_and_nothing_else_is_a_handshake(minimax):
    challenge = fixture("minimax", "callback_challenge")
    assert minimax.handshake(json.dumps(challenge).encode()) == challenge
    assert minimax.handshake(b'{"challenge": 42}') == {"challenge": 42}
    for body in (json.dumps(fixture("minimax", "callback")).encode(), b"{no", b"[]", b"{}"):
        assert minimax.handshake(body) is None


async def test_no_other_provider_answers_a_challenge():
    body = json.dumps(fixture("minimax", "callback_challenge")).encode()
    async with httpx.AsyncClient() as http:
        for name in implemented():
            handler = handler_class(name)(ProviderConfig(api_key="k"), http)
            assert (handler.handshake(body) is not None) == (name == "minimax"), name


async def test_the_documented_callback_reads_as_the_task(minimax):
    body = json.dumps(fixture("minimax", "callback")).encode()
    assert await minimax.verify_webhook({}, body) is False
    report = minimax.parse_webhook(body)
    assert (report.provider_job_id, report.status) == ("115334141465231360", "completed")
    assert report.outputs == [Output.via_content(0, "video/mp4")]


@pytest.mark.parametrize("body", [b"{not json", b"[]", b"{}", b'{"task_id": "1"}'])
async def test_unreadable_callbacks_are_transient(minimax, body):
    with pytest.raises(TransientError):
        minimax.parse_webhook(body)


def test_only_a_callback_can_tell_which_task_a_lost_submission_created():
    assert Handler.reconciliation == "webhook"


async def test_the_service_answers_the_challenge_in_time_and_serves_the_video(fake, env):
    async with recording_subscriber() as subscriber, running_service(env | fake.env()) as svc:
        await svc.subscribe(subscriber.url)
        video = await svc.submit(model=f"minimax/{Fake.model}")
        task = await eventually(lambda: fake.jobs and fake.latest())
        # The creation was accepted only because the receiver echoed the challenge.
        [(sent, answered)] = fake.challenges
        assert answered == {"challenge": sent}
        assert str(fake.callbacks[task]).startswith(f"{svc.url}/hooks/minimax/")
        fake.set_status(task, "completed")
        async with httpx.AsyncClient() as client:
            answer = await client.post(str(fake.callbacks[task]), json=fake.callback(task))
            assert answer.status_code == 202
        await eventually(lambda: subscriber.received)
        event = subscriber.received[0].event
        assert event["type"] == "video.completed"
        content_url = f"{svc.url}/v1/videos/{video['id']}/content?output=0"
        assert event["data"]["outputs"] == [{"url": content_url, "content_type": "video/mp4"}]
        downloaded = await svc.api.get(content_url)
        assert (downloaded.status_code, downloaded.content) == (200, VIDEO_BYTES)


async def test_a_challenge_on_a_forged_receiver_url_is_refused(fake, env):
    async with running_service(env | fake.env()) as svc:
        body = fixture("minimax", "callback_challenge")
        async with httpx.AsyncClient() as client:
            answer = await client.post(f"{svc.url}/hooks/minimax/not-a-token", json=body)
        assert answer.status_code == 401
        assert "challenge" not in answer.text
