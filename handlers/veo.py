"""Veo through Google's Gemini API: a long-running operation, polled until `done`; the video is
served only to a caller holding the API key, so videohooks serves it.

Documented at https://ai.google.dev/gemini-api/docs/video (POST
/v1beta/models/{model}:predictLongRunning with `x-goog-api-key`, the body
`{instances: [{prompt, image, lastFrame, referenceImages}], parameters: {aspectRatio, resolution,
durationSeconds, negativePrompt, personGeneration, …}}`, the answer `{name}`; GET /v1beta/{name}
until `done`; the video at `response.generateVideoResponse.generatedSamples[].video.uri`,
downloaded "using the URI and API key" with redirects followed), the operation's shape in
https://ai.google.dev/api/batch-mode#Operation (name, done, error as a google.rpc.Status
`{code, message}`, response) and Google's error shape in https://cloud.google.com/apis/design/errors
(`{"error": {"code", "message", "status"}}`). The official SDK (github.com/googleapis/python-genai,
google/genai/models.py `_GenerateVideosParameters_to_mldev`, `_GenerateVideosResponse_from_mldev`;
files.py `download`) routes the same fields, reads `raiMediaFilteredCount` and
`raiMediaFilteredReasons` (videos Responsible-AI filters removed) and an inline `encodedVideo`,
and downloads a video as `files/{id}:download?alt=media`, the id taken from the URI.

Paying once: the Gemini API documents no idempotency key and no way to list or search operations,
so `reconciliation` is "none". (It now documents webhooks, a `webhookConfig` per request; they are
not used here: see docs/providers/veo.md.)

Choices where the docs leave room:
- An operation has no status word; the handler names its states for the status table: `running`
  (not done), `error` (done with an error), `done` (done with a video response), `filtered` (done,
  every video removed by the safety filters). A done operation with any other response (another
  `@type`, or none) is logged with that type and kept in progress: never terminal on a guess.
- `input` is one flat object, routed as the SDK routes its config: the instance fields (prompt,
  image, lastFrame, video, referenceImages) go to `instances[0]`, every other key to
  `parameters`.
- `image_url` must be a base64 data: URL (the API takes image bytes inline, not a URL; fetching
  an arbitrary URL is not done here). `seed` is not sent: the SDK refuses it for the Gemini API.
- The video URI's host is never used: the key is only sent to the configured base URL, where the
  file is downloaded by its id, and never to where a redirect from there points.
- google.rpc codes CANCELLED (1) and DEADLINE_EXCEEDED (4) fail with `cancelled` and `timeout`;
  other errors with `generation_failed`, filtered videos with `content_filtered`; a done video
  response without any video fails with `no_output`.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote, urlsplit

from pydantic import BaseModel, Field

from handlers.base import (
    Content,
    HttpProvider,
    JobError,
    Output,
    PermanentError,
    ProviderStatus,
    Status,
    SubmitRequest,
    normalize_status,
)
from handlers.http import parse, request_json, stream_with_credential

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com/v1beta"

STATUSES: dict[str, Status] = {
    "running": "in_progress",
    "done": "completed",
    "filtered": "failed",
    "error": "failed",
}

FIELDS = {
    "prompt": "prompt",
    "negative_prompt": "negativePrompt",
    "aspect_ratio": "aspectRatio",
    "resolution": "resolution",
}
INSTANCE_FIELDS = frozenset({"prompt", "image", "lastFrame", "video", "referenceImages"})

# google.rpc.Code values with an error code of their own.
RPC_ERRORS = {1: "cancelled", 4: "timeout"}

DATA_URL = re.compile(r"data:(?P<type>[\w.+-]+/[\w.+-]+);base64,(?P<data>.*)", re.DOTALL)
# A generated file's id: up to 40 lowercase letters, digits and dashes (the Files API's names).
FILE_URI = re.compile(r"/files/(?P<id>[a-z0-9-]{1,40}):download")
CHUNK = 64 * 1024


class Video(BaseModel):
    uri: str | None = None
    encodedVideo: str | None = None
    encoding: str | None = None


class Sample(BaseModel):
    video: Video | None = None


class VideoResponse(BaseModel):
    generatedSamples: list[Sample] = Field(default_factory=list)
    raiMediaFilteredCount: int | None = None
    raiMediaFilteredReasons: list[str] = Field(default_factory=list)


class Result(BaseModel):
    type: str | None = Field(default=None, alias="@type")
    generateVideoResponse: VideoResponse | None = None


class RpcStatus(BaseModel):
    code: int = 0
    message: str = ""


class Operation(BaseModel):
    name: str = Field(min_length=1)
    done: bool = False
    error: RpcStatus | None = None
    response: Result | None = None

    @property
    def videos(self) -> list[Video]:
        """The videos the operation produced, in the order of its outputs."""
        found = self.response.generateVideoResponse if self.response else None
        samples = found.generatedSamples if found else []
        return [s.video for s in samples if s.video and (s.video.uri or s.video.encodedVideo)]

    def word(self) -> str:
        if not self.done:
            return "running"
        if self.error is not None:
            return "error"
        found = self.response.generateVideoResponse if self.response else None
        if found is None:
            return (self.response.type if self.response else None) or "done without a response"
        return "filtered" if not self.videos and found.raiMediaFilteredCount else "done"

    def report(self) -> ProviderStatus:
        word = self.word()
        status = normalize_status("veo", word, STATUSES)
        report = ProviderStatus(provider_job_id=self.name, status=status, raw_status=word)
        if word == "done":
            report.outputs = [
                Output.via_content(index, video.encoding or "video/mp4")
                for index, video in enumerate(self.videos)
            ]
            if not report.outputs:
                report.status = "failed"
                message = "veo's operation finished without any video"
                report.error = JobError(code="no_output", message=message)
        elif word == "filtered":
            report.error = JobError(code="content_filtered", message=self.filtered_message())
        elif word == "error":
            assert self.error is not None
            code = RPC_ERRORS.get(self.error.code, "generation_failed")
            message = self.error.message or f"veo's operation failed (code {self.error.code})"
            report.error = JobError(code=code, message=message)
        return report

    def filtered_message(self) -> str:
        assert self.response and self.response.generateVideoResponse
        reasons = self.response.generateVideoResponse.raiMediaFilteredReasons
        return "; ".join(reasons) or "veo's safety filters removed the video"


class Handler(HttpProvider):
    name = "veo"
    default_base_url = DEFAULT_BASE_URL
    auth_header = "x-goog-api-key"
    auth_scheme = ""

    async def submit(self, request: SubmitRequest) -> ProviderStatus:
        fields = request.normalized(FIELDS)
        if request.duration is not None:
            fields.setdefault("durationSeconds", round(request.duration))
        if request.image_url is not None:
            fields.setdefault("image", inline_image(request.image_url))
        instance = {key: value for key, value in fields.items() if key in INSTANCE_FIELDS}
        parameters = {key: value for key, value in fields.items() if key not in INSTANCE_FIELDS}
        body: dict[str, Any] = {"instances": [instance]}
        if parameters:
            body["parameters"] = parameters
        url = f"{self.base_url}/models/{quote(request.model, safe='')}:predictLongRunning"
        data = await request_json(self.http, "POST", url, json=body, headers=self.headers)
        return parse(Operation, data).report()

    async def fetch_status(self, provider_job_id: str) -> ProviderStatus:
        return (await self._operation(provider_job_id)).report()

    @asynccontextmanager
    async def content(self, provider_job_id: str, index: int) -> AsyncIterator[Content]:
        """Streams video `index` of the operation, fetched again for its file id."""
        videos = (await self._operation(provider_job_id)).videos
        if not 0 <= index < len(videos):
            raise PermanentError(f"veo's operation has no video {index + 1}")
        video = videos[index]
        content_type = video.encoding or "video/mp4"
        if video.uri is None:
            yield Content(content_type, _chunks(_decoded(video.encodedVideo or "")))
            return
        url = f"{self.base_url}/files/{_file_id(video.uri)}:download"
        async with stream_with_credential(
            self.http, self.egress, url, self.headers, params={"alt": "media"}
        ) as got:
            yield Content(got.headers.get("content-type", content_type), got.aiter_bytes())

    async def _operation(self, name: str) -> Operation:
        url = f"{self.base_url}/{quote(name, safe='/')}"
        return parse(Operation, await request_json(self.http, "GET", url, headers=self.headers))


def inline_image(image_url: str) -> dict[str, str]:
    """A base64 data: URL as the API's inline image; anything else is refused."""
    match = DATA_URL.fullmatch(image_url)
    if match is None:
        raise PermanentError(
            "veo takes image_url as a base64 data: URL (data:image/png;base64,…), "
            "or an image in input.image"
        )
    _decoded(match["data"])
    return {"bytesBase64Encoded": match["data"], "mimeType": match["type"]}


def _decoded(data: str) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except binascii.Error:
        raise PermanentError("veo: invalid base64 data") from None


def _file_id(uri: str) -> str:
    match = FILE_URI.search(urlsplit(uri).path)
    if match is None:
        raise PermanentError("veo's video URI names no file")
    return match["id"]


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), CHUNK):
        yield data[start : start + CHUNK]
