"""OpenAI's Videos API (Sora): polled, plus project webhooks that only name the video to re-fetch.

Documented at https://developers.openai.com/api/reference/resources/videos (POST /v1/videos,
GET /v1/videos/{id}: statuses queued, in_progress, completed, failed; progress 0-100; error
{code, message}; GET /v1/videos/{id}/content streams the MP4 to a caller holding the API key) and
https://developers.openai.com/api/docs/guides/video-generation ("Use webhooks for notifications":
project webhooks `video.completed` / `video.failed` whose body is only `{data: {id}}`, signed with
Standard Webhooks per https://developers.openai.com/api/docs/guides/webhooks).

Choices where the docs leave room:
- The image goes as JSON `input_reference: {image_url}` (the reference's ImageInputReferenceParam),
  so no multipart upload is needed.
- `seconds` is a string in the API ("4", "8", "12"); our duration is sent as its plain decimal form.
- `size` is WIDTHxHEIGHT. Our `resolution` is used only when it has that form ("1280x720"); a
  "720p" is not guessed into a size.
- The video is served only with the API key, so the output is `Output.via_content(0)` and
  `content()` streams it.

Paying once: OpenAI documents no idempotency key for videos; its list of videos
(https://developers.openai.com/api/reference/resources/videos/methods/list) carries no field of
ours to match (no metadata); project webhooks name only the video, which no job knows before the
answer. Reconciliation is `none`.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from pydantic import BaseModel

from handlers import strictjson
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
from handlers.http import parse, request_json, stream
from handlers.signatures import verify_standard_webhook

DEFAULT_BASE_URL = "https://api.openai.com"

STATUSES: dict[str, Status] = {
    "queued": "queued",
    "in_progress": "in_progress",
    "completed": "completed",
    "failed": "failed",
}

FIELDS = {
    "prompt": "prompt",
    "size": "size",
    "image_url": "input_reference.image_url",
}

# The webhook event types the guide documents, and what each says about the video.
EVENTS: dict[str, Status] = {"video.completed": "completed", "video.failed": "failed"}

DIMENSIONS = re.compile(r"\d+x\d+")


class VideoError(BaseModel):
    code: str
    message: str


class Video(BaseModel):
    id: str
    status: str
    progress: float | None = None
    error: VideoError | None = None

    def report(self) -> ProviderStatus:
        status = normalize_status("openai", self.status, STATUSES)
        report = ProviderStatus(
            provider_job_id=self.id,
            status=status,
            progress=normalize_progress(self.progress),
            raw_status=self.status,
        )
        if status == "completed":
            report.outputs = [Output.via_content(0, "video/mp4")]
        elif status == "failed":
            message = self.error.message if self.error else "openai reported the video failed"
            report.error = JobError(code="generation_failed", message=message)
        return report


class EventData(BaseModel):
    id: str


class Event(BaseModel):
    type: str
    data: EventData

    def report(self) -> ProviderStatus:
        # The body carries no outputs or error: the worker fetches the video itself. Another
        # event type of the project (a batch, a response) names no video of ours, so the receiver
        # finds no job for it and acknowledges it.
        return ProviderStatus(
            provider_job_id=self.data.id,
            status=EVENTS.get(self.type, "in_progress"),
            raw_status=self.type,
            refetch=True,
        )


class Handler(HttpProvider):
    name = "openai"
    default_base_url = DEFAULT_BASE_URL
    account_webhooks = True
    reconciliation = "none"

    async def submit(self, request: SubmitRequest) -> ProviderStatus:
        body = request.normalized(FIELDS)
        body.setdefault("model", request.model)
        if request.duration is not None:
            body.setdefault("seconds", f"{request.duration:g}")
        if request.size is None and DIMENSIONS.fullmatch(request.resolution or ""):
            body.setdefault("size", request.resolution)
        url = f"{self.base_url}/v1/videos"
        data = await request_json(self.http, "POST", url, json=body, headers=self.headers)
        return parse(Video, data).report()

    async def fetch_status(self, provider_job_id: str) -> ProviderStatus:
        url = f"{self.base_url}/v1/videos/{provider_job_id}"
        data = await request_json(self.http, "GET", url, headers=self.headers)
        return parse(Video, data).report()

    @asynccontextmanager
    async def content(self, provider_job_id: str, index: int) -> AsyncIterator[Content]:
        if index != 0:
            raise PermanentError(f"an openai video has one output, not {index + 1}")
        url = f"{self.base_url}/v1/videos/{provider_job_id}/content"
        # Should the download redirect to storage, following it is safe: httpx drops the
        # Authorization header when a redirect leaves the API's host.
        async with stream(
            self.http, "GET", url, headers=self.headers, follow_redirects=True
        ) as got:
            yield Content(got.headers.get("content-type", "video/mp4"), got.aiter_bytes())

    async def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> bool:
        return verify_standard_webhook(self.secret, headers, body)

    def parse_webhook(self, body: bytes) -> ProviderStatus:
        try:
            data = strictjson.loads(body)
        except ValueError:
            raise TransientError("openai webhook is not JSON") from None
        return parse(Event, data).report()
