"""APIFree: field names, the image upload (data: URL, or an https URL videohooks fetches), the
status table, and the video served through the handler's `content()`."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator

import httpx2 as httpx
import pytest

from handlers.apifree import Handler
from handlers.base import (
    CONTENT_URL_PREFIX,
    PermanentError,
    ProviderConfig,
    SubmitRequest,
    TransientError,
)
from tests.handlers.fakes.apifree import VIDEO, Fake, Upload
from tests.support.servers import eventually
from tests.support.service import running_service
from tests.support.subscriber import recording_subscriber

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
IMAGE_URL = "https://img.example/fox.png"


class ImageHost:
    """The https host an image_url points at, as a mock transport on the handler's client."""

    def __init__(self) -> None:
        self.response: httpx.Response | Exception = httpx.Response(
            200, content=PNG, headers={"content-type": "image/png"}
        )
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if isinstance(self.response, Exception):
            raise self.response
        return self.response


@pytest.fixture
def image_host() -> ImageHost:
    return ImageHost()


@pytest.fixture
async def apifree(fake, image_host):
    mounts = {"https://img.example": httpx.MockTransport(image_host)}
    async with httpx.AsyncClient(mounts=mounts, timeout=1.0) as http:
        handler = Handler(fake.config(), http)
        # Stands in for the service's egress guard (tests/test_egress.py tests the guard itself).
        handler.egress = http
        yield handler


def a_request(**fields) -> SubmitRequest:
    return SubmitRequest(job_id="vid_1", model=Fake.model, **({"prompt": "x"} | fields))


async def test_submission_maps_the_documented_fields_as_json(fake, apifree):
    report = await apifree.submit(
        a_request(
            prompt="a drone shot over a lake",
            size="1280x720",
            duration=8,
            resolution="720p",
            aspect_ratio="16:9",
            negative_prompt="blur",
            seed=7,
            input={"stream": False},
        )
    )
    [recorded] = fake.submissions()
    assert recorded.headers["content-type"] == "application/json"
    # resolution, aspect_ratio, negative_prompt and seed are not APIFree fields
    assert fake.submitted(recorded) == {
        "model": "video-model-id",
        "prompt": "a drone shot over a lake",
        "size": "1280x720",
        "seconds": "8",
        "stream": False,
    }
    assert (report.provider_job_id, report.status) == (fake.latest(), "queued")


async def test_a_data_url_image_is_uploaded_as_input_reference(fake, apifree, image_host):
    data_url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    await apifree.submit(
        a_request(
            duration=4,
            image_url=data_url,
            input={"stream": True, "options": {"fps": 24}, "prompt": "from input"},
        )
    )
    [recorded] = fake.submissions()
    assert fake.authenticated(recorded)
    assert fake.submitted(recorded) == {
        "model": "video-model-id",
        "prompt": "from input",
        "seconds": "4",
        "stream": "true",
        "options": json.dumps({"fps": 24}),
        "input_reference": Upload("input_reference.png", "image/png", PNG),
    }
    assert image_host.requests == []


async def test_a_percent_encoded_data_url_is_decoded_too(fake, apifree):
    await apifree.submit(a_request(image_url="data:image/svg+xml,%3Csvg%2F%3E"))
    upload = fake.submitted(fake.submissions()[0])["input_reference"]
    assert (upload.filename, upload.content_type, upload.data) == (
        "input_reference.svg",
        "image/svg+xml",
        b"<svg/>",
    )


async def test_an_https_image_is_fetched_without_the_api_key(fake, apifree, image_host):
    image_host.response = httpx.Response(
        200, content=PNG, headers={"content-type": "image/webp; charset=binary"}
    )
    await apifree.submit(a_request(image_url=IMAGE_URL))
    upload = fake.submitted(fake.submissions()[0])["input_reference"]
    assert (upload.content_type, upload.data) == ("image/webp", PNG)
    [fetch] = image_host.requests
    assert str(fetch.url) == IMAGE_URL and "authorization" not in fetch.headers


async def endless() -> AsyncIterator[bytes]:
    while True:
        yield b"\0" * 65536


async def test_an_image_over_20_mib_is_cut_off_while_streaming(fake, apifree, image_host):
    image_host.response = httpx.Response(200, content=endless())
    with pytest.raises(PermanentError) as raised:
        await apifree.submit(a_request(image_url=IMAGE_URL))
    assert "20 MiB" in raised.value.message
    assert fake.submissions() == []


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (httpx.Response(404, text="no such image"), PermanentError),
        (httpx.Response(503), TransientError),
        (httpx.Response(429, headers={"retry-after": "3"}), TransientError),
        (httpx.ReadTimeout("the image host stalled"), TransientError),
    ],
)
async def test_an_image_that_cannot_be_fetched_fails_the_submission(
    fake, apifree, image_host, answer, error
):
    image_host.response = answer
    with pytest.raises(error):
        await apifree.submit(a_request(image_url=IMAGE_URL))
    assert fake.submissions() == []


async def test_an_unusable_data_url_is_refused_without_a_fetch(fake, apifree, image_host):
    with pytest.raises(PermanentError):
        await apifree.submit(a_request(image_url="data:image/png;base64,not base64!"))
    assert image_host.requests == [] and fake.submissions() == []


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
async def test_every_documented_status(fake, apifree, word, status):
    report = await apifree.submit(a_request())
    fake.set_raw_status(report.provider_job_id, word)
    seen = await apifree.fetch_status(report.provider_job_id)
    assert (seen.status, seen.raw_status) == (status, word)


async def test_progress_is_kept_as_a_percentage(fake, apifree):
    report = await apifree.submit(a_request())
    fake.set_status(report.provider_job_id, "in_progress")
    assert (await apifree.fetch_status(report.provider_job_id)).progress == 42


@pytest.mark.parametrize(
    ("error", "message"),
    [
        ({"code": "moderation", "message": "The prompt was blocked"}, "The prompt was blocked"),
        ("upstream timed out", "upstream timed out"),
        (None, "apifree reported the task failed"),
    ],
)
async def test_the_error_message_is_surfaced(fake, apifree, error, message):
    report = await apifree.submit(a_request())
    fake.set_status(report.provider_job_id, "failed")
    fake.jobs[report.provider_job_id]["error"] = error
    seen = await apifree.fetch_status(report.provider_job_id)
    assert (seen.status, seen.error.message) == ("failed", message)


async def test_the_video_is_an_output_streamed_through_content(fake, apifree):
    report = await apifree.submit(a_request())
    fake.set_status(report.provider_job_id, "completed")
    seen = await apifree.fetch_status(report.provider_job_id)
    assert [(o.url, o.content_type) for o in seen.outputs] == [
        (f"{CONTENT_URL_PREFIX}0", "video/mp4")
    ]
    async with apifree.content(report.provider_job_id, 0) as content:
        assert content.content_type == "video/mp4"
        assert b"".join([chunk async for chunk in content.chunks]) == VIDEO
    download = fake.requests[-1]
    assert download.path == f"/v1/videos/{report.provider_job_id}/content"
    assert fake.authenticated(download)


@pytest.mark.parametrize(
    ("status", "error"), [(404, PermanentError), (500, TransientError), (429, TransientError)]
)
async def test_content_failures_are_classified(fake, apifree, status, error):
    report = await apifree.submit(a_request())
    fake.script("content", status, fake.error_body("Video is not ready"))
    with pytest.raises(error):
        async with apifree.content(report.provider_job_id, 0):
            pass


async def test_the_service_serves_the_video_from_apifree(fake, env):
    env |= fake.env()
    async with recording_subscriber() as subscriber, running_service(env, public=False) as svc:
        await svc.subscribe(subscriber.url)
        video = await svc.submit(model=f"apifree/{Fake.model}", input={})
        await eventually(lambda: fake.jobs)
        fake.set_status(fake.latest(), "completed")
        await eventually(lambda: subscriber.received, timeout=15)
        [output] = subscriber.received[0].event["data"]["outputs"]
        assert output["url"].endswith(f"/v1/videos/{video['id']}/content?output=0")
        response = await svc.api.get(f"/v1/videos/{video['id']}/content")
        assert response.status_code == 200
        assert (response.headers["content-type"], response.content) == ("video/mp4", VIDEO)


async def test_the_default_base_url_is_apifrees_api():
    async with httpx.AsyncClient() as http:
        assert Handler(ProviderConfig(api_key="k"), http).base_url == "https://api.apifree.ai"


async def test_callbacks_are_never_trusted(apifree):
    assert await apifree.verify_webhook({}, b'{"status": "completed"}') is False
    with pytest.raises(TransientError):
        apifree.parse_webhook(b"{}")
