"""Veo on the Gemini API: the instance and parameters of predictLongRunning, the operation's
states, filtered videos and errors, the video served with the API key (never handed to the
storage a download redirects to), and a receiver URL that is never trusted."""

from __future__ import annotations

import base64
from typing import Any

import httpx2 as httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from handlers.base import Output, PermanentError, SubmitRequest, TransientError, UncertainError
from handlers.veo import Handler
from service.urls import UrlPolicy, guarded_client
from tests.handlers.fakes.base import API_KEY, fixture
from tests.handlers.fakes.veo import MP4, Fake
from tests.handlers.hints import ATTACKER_URL, a_job_awaiting_hints
from tests.support.servers import eventually, serving
from tests.support.service import running_service
from tests.support.subscriber import recording_subscriber

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
PNG_DATA_URL = "data:image/png;base64," + base64.b64encode(PNG).decode()


@pytest.fixture
async def veo(fake):
    # A redirect to storage is followed through the service's egress guard, here one that lets
    # loopback through (the fake's storage lives there).
    egress = guarded_client(UrlPolicy(allow_private=True), 5.0)
    async with httpx.AsyncClient() as http, egress:
        handler = Handler(fake.config(), http)
        handler.egress = egress
        yield handler


def a_request(**fields: Any) -> SubmitRequest:
    return SubmitRequest(**({"job_id": "vid_1", "model": Fake.model, "prompt": "x"} | fields))


async def submitted(fake, handler: Handler, **fields: Any) -> dict[str, Any]:
    await handler.submit(a_request(**fields))
    return dict(fake.submissions()[-1].json())


def operation(fake, name: str, **changes: Any) -> dict[str, Any]:
    """The fake's operation `name`, changed."""
    fake.jobs[name] = {"name": name} | changes
    return fake.jobs[name]


def done_with(fake, name: str, **video_response: Any) -> None:
    """The fake's operation `name`, done with this generateVideoResponse."""
    response = fixture("veo", "operation_done")["response"]
    operation(fake, name, done=True, response=response | {"generateVideoResponse": video_response})


# -- submission --------------------------------------------------------------------------------


async def test_submission_maps_the_normalized_fields_to_an_instance_and_parameters(fake, veo):
    body = await submitted(
        fake,
        veo,
        prompt="a paper boat on a stream",
        negative_prompt="people",
        duration=7.6,
        resolution="1080p",
        aspect_ratio="9:16",
        size="1080x1920",
        seed=3,
        image_url=PNG_DATA_URL,
        metadata={"order": "7"},
        input={"personGeneration": "allow_adult", "lastFrame": {"bytesBase64Encoded": "AA=="}},
    )
    recorded = fake.submissions()[-1]
    assert recorded.path == "/models/veo-3.1-generate-preview:predictLongRunning"
    assert recorded.headers["x-goog-api-key"] == API_KEY
    assert body == {
        "instances": [
            {
                "prompt": "a paper boat on a stream",
                "image": {
                    "bytesBase64Encoded": PNG_DATA_URL.split(",", 1)[1],
                    "mimeType": "image/png",
                },
                "lastFrame": {"bytesBase64Encoded": "AA=="},
            }
        ],
        "parameters": {
            "negativePrompt": "people",
            "aspectRatio": "9:16",
            "resolution": "1080p",
            "durationSeconds": 8,
            "personGeneration": "allow_adult",
        },
    }


async def test_only_what_is_set_is_sent(fake, veo):
    assert await submitted(fake, veo) == {"instances": [{"prompt": "x"}]}


async def test_input_wins_in_the_instance_and_in_the_parameters(fake, veo):
    body = await submitted(
        fake,
        veo,
        duration=4,
        image_url=PNG_DATA_URL,
        input={"durationSeconds": 6, "image": {"bytesBase64Encoded": "AA==", "mimeType": "x/y"}},
    )
    assert body["instances"][0]["image"] == {"bytesBase64Encoded": "AA==", "mimeType": "x/y"}
    assert body["parameters"] == {"durationSeconds": 6}


@pytest.mark.parametrize(
    "image_url",
    ["https://img.example/first.png", "data:image/png,%89PNG", "data:image/png;base64,@@@"],
)
async def test_an_image_must_be_a_base64_data_url(fake, veo, image_url):
    with pytest.raises(PermanentError):
        await veo.submit(a_request(image_url=image_url))
    assert fake.submissions() == []


async def test_the_operation_runs_from_its_acceptance(fake, veo):
    report = await veo.submit(a_request())
    assert (report.provider_job_id, report.status) == (fake.latest(), "in_progress")
    assert report.provider_job_id.startswith("models/veo-3.1-generate-preview/operations/")


# -- the operation's states --------------------------------------------------------------------


async def test_a_running_operation_may_say_done_false(fake, veo):
    report = await veo.submit(a_request())
    operation(fake, report.provider_job_id, done=False)
    seen = await veo.fetch_status(report.provider_job_id)
    assert (seen.status, seen.raw_status) == ("in_progress", "running")
    polled = fake.requests[-1]
    assert polled.path == f"/{report.provider_job_id}" and fake.authenticated(polled)


async def test_every_video_of_a_done_operation_is_an_output(fake, veo):
    report = await veo.submit(a_request())
    uri = "https://generativelanguage.googleapis.com/v1beta/files/abc:download?alt=media"
    samples = [{"video": {"uri": uri}}, {"video": {"uri": uri, "encoding": "video/webm"}}, {}]
    done_with(fake, report.provider_job_id, generatedSamples=samples)
    seen = await veo.fetch_status(report.provider_job_id)
    assert (seen.status, seen.raw_status) == ("completed", "done")
    assert seen.outputs == [Output.via_content(0), Output.via_content(1, "video/webm")]


async def test_filtered_videos_fail_with_the_filters_reasons(fake, veo):
    report = await veo.submit(a_request())
    fake.jobs[report.provider_job_id] = fixture("veo", "operation_filtered")
    seen = await veo.fetch_status(report.provider_job_id)
    reasons = fixture("veo", "operation_filtered")["response"]["generateVideoResponse"]
    assert (seen.status, seen.raw_status) == ("failed", "filtered")
    assert seen.error is not None and seen.error.model_dump() == {
        "code": "content_filtered",
        "message": reasons["raiMediaFilteredReasons"][0],
    }


async def test_a_video_response_without_any_video_fails_with_no_output(fake, veo):
    report = await veo.submit(a_request())
    done_with(fake, report.provider_job_id)
    seen = await veo.fetch_status(report.provider_job_id)
    assert seen.status == "failed" and seen.error is not None and seen.error.code == "no_output"


@pytest.mark.parametrize(
    ("rpc_code", "code"),
    [(1, "cancelled"), (4, "timeout"), (13, "generation_failed"), (3, "generation_failed")],
)
async def test_an_operation_error_keeps_its_message(fake, veo, rpc_code, code):
    report = await veo.submit(a_request())
    operation(fake, report.provider_job_id, done=True, error={"code": rpc_code, "message": "no"})
    seen = await veo.fetch_status(report.provider_job_id)
    assert (seen.status, seen.raw_status) == ("failed", "error")
    assert seen.error is not None and seen.error.model_dump() == {"code": code, "message": "no"}


# -- the video, served with the key ------------------------------------------------------------


async def completed(fake, veo: Handler) -> str:
    report = await veo.submit(a_request())
    fake.set_status(report.provider_job_id, "completed")
    return report.provider_job_id


async def read(veo: Handler, name: str, index: int = 0) -> tuple[str, bytes]:
    async with veo.content(name, index) as content:
        return content.content_type, b"".join([chunk async for chunk in content.chunks])


async def test_the_video_is_downloaded_from_the_api_by_its_file_id_with_the_key(fake, veo):
    name = await completed(fake, veo)
    [sample] = fake.jobs[name]["response"]["generateVideoResponse"]["generatedSamples"]
    # The URI's host is not where the key goes: only the file id is taken from it.
    file_id = sample["video"]["uri"].split("/files/")[1].split(":")[0]
    sample["video"]["uri"] = f"https://attacker.example/v1beta/files/{file_id}:download?alt=media"
    assert await read(veo, name) == ("video/mp4", MP4)
    download = fake.requests[-1]
    assert download.path == f"/files/{file_id}:download" and download.query == {"alt": "media"}
    assert fake.authenticated(download)


async def test_a_redirect_to_storage_is_followed_without_the_key(fake, veo):
    seen: list[dict[str, str]] = []

    async def storage(request: Request) -> Response:
        seen.append(dict(request.headers))
        return Response(MP4, media_type="video/mp4")

    async with serving(Starlette(routes=[Route("/bucket/video.mp4", storage)])) as bucket:
        name = await completed(fake, veo)
        fake.script("content", 302, b"", headers={"location": f"{bucket}/bucket/video.mp4"})
        assert await read(veo, name) == ("video/mp4", MP4)
    assert fake.authenticated(fake.requests[-1])
    [headers] = seen
    assert "x-goog-api-key" not in headers and API_KEY not in str(headers)


async def test_an_inline_video_is_served_from_the_operation(fake, veo):
    report = await veo.submit(a_request())
    encoded = base64.b64encode(MP4).decode()
    samples = [{"video": {"encodedVideo": encoded, "encoding": "video/mp4"}}]
    done_with(fake, report.provider_job_id, generatedSamples=samples)
    assert await read(veo, report.provider_job_id) == ("video/mp4", MP4)
    assert not any(recorded.path.startswith("/files/") for recorded in fake.requests)


async def test_there_is_no_video_beyond_the_last(fake, veo):
    name = await completed(fake, veo)
    with pytest.raises(PermanentError):
        await read(veo, name, 1)


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (
            dict(status=404, body={"error": {"code": 404, "message": "File not found"}}),
            PermanentError,
        ),
        (dict(status=503, body="unavailable", headers={"retry-after": "4"}), TransientError),
        (dict(status=200, body="", delay=1.5), TransientError),
    ],
)
async def test_a_refused_download_is_classified(fake, answer, error):
    async with httpx.AsyncClient(timeout=1.0) as http:
        handler = Handler(fake.config(), http)
        name = await completed(fake, handler)
        fake.script("content", **answer)
        with pytest.raises(error):
            await read(handler, name)


# -- paying once -------------------------------------------------------------------------------


async def test_veo_offers_no_way_to_reconcile_and_a_late_answer_is_uncertain(fake):
    assert Handler.reconciliation == "none"
    fake.script("submit", 200, fixture("veo", "operation_started"), delay=1.5)
    async with httpx.AsyncClient(timeout=1.0) as http:
        handler = Handler(fake.config(), http)
        with pytest.raises(UncertainError):
            await handler.submit(a_request())
        assert await handler.find_submission(a_request()) is None
    assert len(fake.submissions()) == 1


# -- through the service, over loopback --------------------------------------------------------


async def test_users_get_the_video_from_videohooks_content_endpoint(fake, env):
    async with recording_subscriber() as subscriber, running_service(env | fake.env()) as svc:
        await svc.subscribe(subscriber.url)
        video = await svc.submit(model=f"veo/{Fake.model}", prompt="a fox", duration=8)
        await eventually(lambda: fake.jobs)
        fake.set_status(fake.latest(), "completed")
        await eventually(lambda: subscriber.received)
        event = subscriber.received[0].event
        content_url = f"{svc.url}/v1/videos/{video['id']}/content?output=0"
        assert event["type"] == "video.completed"
        assert event["data"]["outputs"] == [{"url": content_url, "content_type": "video/mp4"}]
        downloaded = await svc.api.get(content_url)
        assert downloaded.status_code == 200 and downloaded.content == MP4
        async with httpx.AsyncClient() as anonymous:
            assert (await anonymous.get(content_url)).status_code == 401


async def test_filtered_videos_fail_the_job(fake, env):
    async with recording_subscriber() as subscriber, running_service(env | fake.env()) as svc:
        await svc.subscribe(subscriber.url)
        await svc.submit(model=f"veo/{Fake.model}", prompt="a fox")
        await eventually(lambda: fake.jobs)
        fake.jobs[fake.latest()] = fixture("veo", "operation_filtered") | {"name": fake.latest()}
        await eventually(lambda: subscriber.received)
        event = subscriber.received[0].event
        assert event["type"] == "video.failed"
        assert event["data"]["error"]["code"] == "content_filtered"


async def test_a_post_to_the_receiver_is_only_a_reason_to_ask_google(fake, env):
    """The Gemini API is never handed a receiver URL: anything posted to one is a forgery. It
    makes the worker fetch the operation, and the operation is what happens."""
    async with a_job_awaiting_hints(fake, env, prompt="x") as job:
        name = job.provider_job_id
        forged = fixture("veo", "operation_done") | {"name": name}
        forged["response"]["generateVideoResponse"]["generatedSamples"] = [
            {"video": {"uri": ATTACKER_URL}}
        ]
        assert await job.post(forged) == 202
        await job.asked()
        # The operation is still running, as the fetch the post caused says: the job is too.
        assert (await job.video())["status"] == "in_progress" and await job.svc.events() == []

        fake.set_status(name, "completed")
        assert await job.post(fixture("veo", "operation_error") | {"name": name}) == 202
        event = await job.terminal_event()
        assert event["type"] == "video.completed" and ATTACKER_URL not in str(event)
        downloaded = await job.svc.api.get(event["data"]["outputs"][0]["url"])
        assert downloaded.content == MP4
