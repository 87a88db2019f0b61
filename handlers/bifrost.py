"""Bifrost: a self-hosted AI gateway with an OpenAI-shaped video API. Poll only.

POST /v1/videos, GET /v1/videos/{video_id}; `Authorization: Bearer` with the gateway's key or a
virtual key (sk-bf-...), or no header at all when the gateway runs without authentication.
Documented at https://docs.getbifrost.ai/api-reference/videos/generate-a-video and
https://docs.getbifrost.ai/api-reference/videos/retrieve-a-video-generation-job (schemas in
https://github.com/maximhq/bifrost/blob/main/docs/openapi/schemas/inference/videos.yaml); the
gateway's documented default address is http://localhost:8080.

Our model id `bifrost/<provider>/<model>` reaches Bifrost as `model: "<provider>/<model>"`, the
gateway's own format. Our fallback models are never mapped to Bifrost's `fallbacks`: the core
tries them itself and records each attempt (`input.fallbacks` still passes through).

Readings where the docs are silent or disagree:
- Job ids: the API reference says `provider:id`, the gateway's handler parses `{id}:{provider}`.
  We treat the id as opaque and percent-encode it whole in paths (the gateway unescapes it).
- `seconds`: the reference says "a string (e.g. "4")", an older schema an integer; we send the
  string, without a trailing ".0".
- `size` is the only resolution field; our `size` wins, else our `resolution` is sent as `size`.
- An output with only inline `base64` never goes into an event: it is served through `content()`,
  which re-fetches the job and decodes that item (the download endpoint has no output index).

Paying once: the gateway documents no idempotency key for video jobs and no way to find one by a
reference of ours (its request options, https://docs.getbifrost.ai/providers/request-options, route
and tag requests; `x-request-id` only labels logs), and it sends no webhooks. Reconciliation is
`none`: an uncertain submission fails with `submission_uncertain`.
"""

from __future__ import annotations

import binascii
from base64 import b64decode
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import quote

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
    TransientError,
    normalize_progress,
    normalize_status,
)
from handlers.http import parse, request_json

DEFAULT_BASE_URL = "http://localhost:8080"

STATUSES: dict[str, Status] = {
    "queued": "queued",
    "in_progress": "in_progress",
    "completed": "completed",
    "failed": "failed",
}

FIELDS = {
    "prompt": "prompt",
    "negative_prompt": "negative_prompt",
    "size": "size",
    "seed": "seed",
    "image_url": "input_reference",
}


class VideoOutput(BaseModel):
    """One item of `videos[]`: a URL, or the video itself inline as base64."""

    url: str | None = None
    base64: str | None = None
    content_type: str | None = None

    @property
    def media_type(self) -> str:
        return self.content_type or "video/mp4"  # the gateway may send an empty string


class VideoError(BaseModel):
    code: str | None = None
    message: str | None = None


class Video(BaseModel):
    """Bifrost's VideoGenerationResponse, on submission and on every poll."""

    id: str
    status: str
    progress: float | None = None
    videos: list[VideoOutput] = Field(default_factory=list)
    error: VideoError | None = None

    def report(self) -> ProviderStatus:
        status = normalize_status("bifrost", self.status, STATUSES)
        report = ProviderStatus(
            provider_job_id=self.id,
            status=status,
            progress=normalize_progress(self.progress),
            raw_status=self.status,
        )
        if status == "completed":
            report.outputs = self.outputs()
        elif status == "failed":
            message = (self.error and self.error.message) or "bifrost reported a failure"
            report.error = JobError(code="generation_failed", message=message)
        return report

    def outputs(self) -> list[Output]:
        if not self.videos:
            raise TransientError("bifrost reported completed without videos")
        return [
            Output(url=video.url, content_type=video.media_type)
            if video.url
            else Output.via_content(index, video.media_type)
            for index, video in enumerate(self.videos)
        ]


class Handler(HttpProvider):
    name = "bifrost"
    default_base_url = DEFAULT_BASE_URL
    reconciliation = "none"

    @property
    def configured(self) -> bool:
        # A gateway without authentication needs no key, so an explicit address alone configures it.
        return bool(self.api_key or self.config.base_url)

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    async def submit(self, request: SubmitRequest) -> ProviderStatus:
        body = request.normalized(FIELDS)
        body.setdefault("model", request.model)
        if request.duration is not None:
            body.setdefault("seconds", f"{request.duration:g}")
        if request.resolution is not None:
            body.setdefault("size", request.resolution)
        url = f"{self.base_url}/v1/videos"
        data = await request_json(self.http, "POST", url, json=body, headers=self.headers)
        return parse(Video, data).report()

    async def fetch_status(self, provider_job_id: str) -> ProviderStatus:
        return (await self._video(provider_job_id)).report()

    @asynccontextmanager
    async def content(self, provider_job_id: str, index: int) -> AsyncIterator[Content]:
        """The bytes of an inline (base64) output, decoded from a fresh copy of the job."""
        videos = (await self._video(provider_job_id)).videos
        inline = videos[index].base64 if index < len(videos) else None
        if not inline:
            raise PermanentError(f"bifrost has no inline video at index {index}")
        try:
            data = b64decode(inline, validate=True)
        except binascii.Error:
            raise TransientError("bifrost answered malformed base64 for a video") from None
        yield Content(content_type=videos[index].media_type, chunks=_once(data))

    async def _video(self, provider_job_id: str) -> Video:
        url = f"{self.base_url}/v1/videos/{quote(provider_job_id, safe='')}"
        return parse(Video, await request_json(self.http, "GET", url, headers=self.headers))


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data
