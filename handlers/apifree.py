"""APIFree: poll only. POST /v1/videos (JSON, or multipart/form-data carrying an
`input_reference` image file), GET /v1/videos/{task_id}, `Authorization: Bearer`.

Documented at https://docs.apifree.ai/model-apis/api-reference/v1/videos-create (fields model,
prompt, size, seconds, input_reference; the task object) and
https://docs.apifree.ai/model-apis/api-reference/v1/videos-get (statuses queued, in_progress,
completed, failed; progress a percentage). Where the docs are silent:
- They do not say where the finished video is. APIFree's video API is OpenAI-compatible (the
  same routes answer under /v1/openai/videos), and OpenAI's video object has no URL: its bytes
  are at GET /v1/videos/{id}/content
  (https://developers.openai.com/api/reference/resources/videos/methods/download_content). So the
  output is `Output.via_content(0)`, which `content()` streams with the API key.
- They show no failed task. Its `error` is read as OpenAI's `{code, message}`
  (https://developers.openai.com/api/reference/resources/videos/methods/retrieve), or a string.
Our duration becomes `seconds` (a string). An image_url is uploaded as `input_reference`: a data:
URL is decoded here; any other URL is fetched by videohooks through the egress guard
(`handlers.http.fetch`: the URL and every redirect hop held to the policy subscriber URLs are held
to), within the provider timeout, at most 20 MiB.

Paying once: the two pages above are the whole video API: no idempotency key, no list of tasks to
find one by a reference of ours, no webhooks. Reconciliation is `none`.
"""

from __future__ import annotations

import base64
import binascii
import json
import mimetypes
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

import httpx2 as httpx
from pydantic import BaseModel

from handlers.base import (
    Content,
    HttpProvider,
    JobError,
    Output,
    PermanentError,
    ProviderStatus,
    Status,
    SubmitRequest,
    normalize_progress,
    normalize_status,
)
from handlers.http import fetch, parse, request_json, stream

DEFAULT_BASE_URL = "https://api.apifree.ai"
MAX_IMAGE_BYTES = 20 * 1024 * 1024

STATUSES: dict[str, Status] = {
    "queued": "queued",
    "in_progress": "in_progress",
    "completed": "completed",
    "failed": "failed",
}

FIELDS = {"prompt": "prompt", "size": "size"}


class TaskError(BaseModel):
    message: str


class Task(BaseModel):
    id: str
    status: str
    progress: float | None = None
    error: str | TaskError | None = None

    def report(self) -> ProviderStatus:
        status = normalize_status("apifree", self.status, STATUSES)
        report = ProviderStatus(
            provider_job_id=self.id,
            status=status,
            progress=normalize_progress(self.progress),
            raw_status=self.status,
        )
        if status == "completed":
            report.outputs = [Output.via_content(0, "video/mp4")]
        elif status == "failed":
            message = self.error.message if isinstance(self.error, TaskError) else self.error
            report.error = JobError(
                code="generation_failed", message=message or "apifree reported the task failed"
            )
        return report


@dataclass(frozen=True)
class Image:
    data: bytes
    content_type: str

    def upload(self) -> tuple[str, bytes, str]:
        """As httpx's `files` entry; the extension helps an upstream that goes by file name."""
        extension = mimetypes.guess_extension(self.content_type) or ""
        return f"input_reference{extension}", self.data, self.content_type


def decode_data_url(url: str) -> Image:
    """`data:[<media type>][;base64],<data>` (RFC 2397), decoded without any network."""
    header, comma, payload = url.removeprefix("data:").partition(",")
    if not comma:
        raise PermanentError("image_url is not a valid data: URL")
    media_type, *parameters = header.split(";")
    media_type = media_type or "application/octet-stream"
    if parameters[-1:] != ["base64"]:  # then the data is percent-encoded, RFC 2397's default
        return Image(unquote_to_bytes(payload), media_type)
    try:
        return Image(base64.b64decode(payload, validate=True), media_type)
    except binascii.Error:
        raise PermanentError("image_url is a data: URL with invalid base64") from None


async def download_image(egress: httpx.AsyncClient | None, url: str) -> Image:
    data = bytearray()
    async with fetch(egress, url) as response:
        # Counted as it arrives, so an endless or oversized body is cut off at the cap.
        async for chunk in response.aiter_bytes():
            data += chunk
            if len(data) > MAX_IMAGE_BYTES:
                raise PermanentError("image_url is larger than 20 MiB")
        content_type = response.headers.get("content-type", "application/octet-stream")
    return Image(bytes(data), content_type.split(";")[0].strip())


def form_value(value: Any) -> str:
    """A form field's text: strings as they are, anything else as JSON (true, 8, {…})."""
    return value if isinstance(value, str) else json.dumps(value)


class Handler(HttpProvider):
    name = "apifree"
    default_base_url = DEFAULT_BASE_URL
    reconciliation = "none"

    async def submit(self, request: SubmitRequest) -> ProviderStatus:
        fields = request.normalized(FIELDS)
        fields.setdefault("model", request.model)
        if request.duration is not None:
            fields.setdefault("seconds", f"{request.duration:g}")
        url = f"{self.base_url}/v1/videos"
        if request.image_url is None:
            data = await request_json(self.http, "POST", url, json=fields, headers=self.headers)
        else:
            image = await self.image(request.image_url)
            data = await request_json(
                self.http,
                "POST",
                url,
                data={key: form_value(value) for key, value in fields.items()},
                files={"input_reference": image.upload()},
                headers=self.headers,
            )
        return parse(Task, data).report()

    async def image(self, image_url: str) -> Image:
        if image_url.startswith("data:"):
            return decode_data_url(image_url)
        return await download_image(self.egress, image_url)

    async def fetch_status(self, provider_job_id: str) -> ProviderStatus:
        url = f"{self.base_url}/v1/videos/{provider_job_id}"
        return parse(Task, await request_json(self.http, "GET", url, headers=self.headers)).report()

    @asynccontextmanager
    async def content(self, provider_job_id: str, index: int) -> AsyncIterator[Content]:
        # The only output is the video itself (index 0). A redirect to storage is followed;
        # httpx drops the Authorization header when it leaves APIFree's host.
        url = f"{self.base_url}/v1/videos/{provider_job_id}/content"
        async with stream(
            self.http, "GET", url, headers=self.headers, follow_redirects=True
        ) as response:
            content_type = response.headers.get("content-type", "video/mp4")
            yield Content(content_type, response.aiter_bytes())
