"""NanoGPT: poll only. POST /generate-video, GET /video/status?requestId=…, `x-api-key`.

Documented at https://docs.nano-gpt.com/api-reference/endpoint/video-generation (request fields;
the answer `{runId, id, model, status: "pending"}` where runId and id are the same `vid_…` job id;
intermediate states queued, processing, generating, delivering; "surface the error.message") and
https://docs.nano-gpt.com/api-reference/endpoint/video-status-unified (the status endpoint;
base URL https://nano-gpt.com/api; `x-api-key`, Bearer also accepted).

The status page contradicts itself, so both of its shapes are read:
- its response examples and code samples nest the job under `data`: `data.status` (IN_QUEUE,
  IN_PROGRESS, COMPLETED, FAILED, CANCELED), `data.output.video.url`, `data.error`;
- its OpenAPI schema is flat: `status` (queued, processing, completed, failed, cancelled,
  unknown), `videoUrl`, `error`, `progress` (0-100), `estimatedTimeRemaining` (seconds).
`error` is a string in both, but an object with `message` on the generation page: both are read.
A cancelled job is failed (it never completes); `unknown` is in progress, never terminal.
Our duration becomes NanoGPT's `duration`, seconds as a string; image_url becomes `imageUrl`, or
`imageDataUrl` for a data: URL. Model ids pass through: `nanogpt/veo2-video` → "veo2-video".

Paying once: NanoGPT documents no idempotency key, and a job can be looked up only by the id its
submission answers (the status endpoint above), not by a reference of ours. Its job webhooks
(https://docs.nano-gpt.com/api-reference/miscellaneous/webhooks) refuse a callback_url until the
account has a signing secret, and this handler polls. Reconciliation is `none`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, model_validator

from handlers.base import (
    HttpProvider,
    JobError,
    Output,
    ProviderStatus,
    Status,
    SubmitRequest,
    TransientError,
    normalize_progress,
    normalize_status,
)
from handlers.http import parse, request_json

DEFAULT_BASE_URL = "https://nano-gpt.com/api"

STATUSES: dict[str, Status] = {
    "pending": "queued",
    "queued": "queued",
    "in_queue": "queued",
    "processing": "in_progress",
    "generating": "in_progress",
    "delivering": "in_progress",
    "in_progress": "in_progress",
    "unknown": "in_progress",
    "completed": "completed",
    "failed": "failed",
    "canceled": "failed",
    "cancelled": "failed",
}

FIELDS = {
    "prompt": "prompt",
    "negative_prompt": "negative_prompt",
    "aspect_ratio": "aspect_ratio",
    "resolution": "resolution",
    "size": "size",
    "seed": "seed",
}


class Created(BaseModel):
    runId: str
    # Always "pending" as documented; not required, so an accepted job is never resubmitted
    # over a missing acknowledgement word.
    status: str = "pending"


class ErrorDetail(BaseModel):
    message: str


class VideoFile(BaseModel):
    url: str


class Result(BaseModel):
    video: VideoFile


class VideoStatus(BaseModel):
    status: str
    output: Result | None = None
    videoUrl: str | None = None
    error: str | ErrorDetail | None = None
    progress: float | None = None
    estimatedTimeRemaining: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _unwrap(cls, data: Any) -> Any:
        # The documented examples nest the job under `data`; the documented schema does not.
        if isinstance(data, dict) and isinstance(data.get("data"), dict):
            return data["data"]
        return data

    def report(self, provider_job_id: str) -> ProviderStatus:
        status = normalize_status("nanogpt", self.status, STATUSES)
        report = ProviderStatus(
            provider_job_id=provider_job_id,
            status=status,
            progress=normalize_progress(self.progress),
            raw_status=self.status,
            eta_s=self.estimatedTimeRemaining,
        )
        if status == "completed":
            url = self.output.video.url if self.output else self.videoUrl
            if url is None:
                raise TransientError("nanogpt reported completion without a video URL")
            report.outputs = [Output(url=url, content_type="video/mp4")]
        elif status == "failed":
            report.error = JobError(code="generation_failed", message=self.error_message())
        return report

    def error_message(self) -> str:
        if isinstance(self.error, ErrorDetail):
            return self.error.message
        return self.error or f"nanogpt reported {self.status}"


class Handler(HttpProvider):
    name = "nanogpt"
    default_base_url = DEFAULT_BASE_URL
    reconciliation = "none"
    auth_header = "x-api-key"
    auth_scheme = ""

    async def submit(self, request: SubmitRequest) -> ProviderStatus:
        body = request.normalized(FIELDS)
        body.setdefault("model", request.model)
        if request.duration is not None:
            body.setdefault("duration", f"{request.duration:g}")
        if request.image_url is not None:
            image_field = "imageDataUrl" if request.image_url.startswith("data:") else "imageUrl"
            body.setdefault(image_field, request.image_url)
        url = f"{self.base_url}/generate-video"
        created = parse(
            Created, await request_json(self.http, "POST", url, json=body, headers=self.headers)
        )
        return ProviderStatus(
            provider_job_id=created.runId,
            status=normalize_status("nanogpt", created.status, STATUSES),
            raw_status=created.status,
        )

    async def fetch_status(self, provider_job_id: str) -> ProviderStatus:
        data = await request_json(
            self.http,
            "GET",
            f"{self.base_url}/video/status",
            params={"requestId": provider_job_id},
            headers=self.headers,
        )
        return parse(VideoStatus, data).report(provider_job_id)
