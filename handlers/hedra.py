"""Hedra: poll only. POST /generations, GET /generations/{id}/status, `X-API-Key`.

Documented at https://www.hedra.com/docs/api-reference/public/generate-asset and
https://www.hedra.com/docs/api-reference/public/get-status (statuses complete, error, processing,
queued, finalizing, pending; progress 0-1).
Our model id is Hedra's `ai_model_id`; duration (seconds) becomes `duration_ms`.

Paying once: Hedra documents no idempotency key. A generation may be created under a
"pre-reserved generation ID", but how an id is reserved is not documented, so none of ours can be
sent; the list of generations (https://www.hedra.com/docs/api-reference/public/list) filters only
by ids, type and creation time. Reconciliation is `none`.
"""

from __future__ import annotations

from pydantic import BaseModel

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

DEFAULT_BASE_URL = "https://api.hedra.com/web-app/public"

STATUSES: dict[str, Status] = {
    "pending": "queued",
    "queued": "queued",
    "processing": "in_progress",
    "finalizing": "in_progress",
    "complete": "completed",
    "error": "failed",
}

FIELDS = {
    "prompt": "generated_video_inputs.text_prompt",
    "resolution": "generated_video_inputs.resolution",
    "aspect_ratio": "generated_video_inputs.aspect_ratio",
    "image_url": "start_keyframe_url",
}


class Created(BaseModel):
    id: str


class Generation(BaseModel):
    id: str
    status: str
    progress: float | None = None
    eta_sec: float | None = None
    error_message: str | None = None
    url: str | None = None
    download_url: str | None = None

    def report(self) -> ProviderStatus:
        status = normalize_status("hedra", self.status, STATUSES)
        report = ProviderStatus(
            provider_job_id=self.id,
            status=status,
            progress=normalize_progress(self.progress, scale=1.0),
            raw_status=self.status,
            eta_s=self.eta_sec,
        )
        if status == "completed":
            url = self.download_url or self.url
            if url is None:
                raise TransientError("hedra reported complete without a URL")
            report.outputs = [Output(url=url, content_type="video/mp4")]
        elif status == "failed":
            message = self.error_message or "hedra reported an error"
            report.error = JobError(code="generation_failed", message=message)
        return report


class Handler(HttpProvider):
    name = "hedra"
    default_base_url = DEFAULT_BASE_URL
    reconciliation = "none"
    auth_header = "x-api-key"
    auth_scheme = ""

    async def submit(self, request: SubmitRequest) -> ProviderStatus:
        body = request.normalized(FIELDS)
        body.setdefault("type", "video")
        body.setdefault("ai_model_id", request.model)
        if request.duration is not None:
            inputs = body.setdefault("generated_video_inputs", {})
            inputs.setdefault("duration_ms", int(request.duration * 1000))
        url = f"{self.base_url}/generations"
        created = parse(
            Created, await request_json(self.http, "POST", url, json=body, headers=self.headers)
        )
        return ProviderStatus(provider_job_id=created.id, status="queued", raw_status="created")

    async def fetch_status(self, provider_job_id: str) -> ProviderStatus:
        url = f"{self.base_url}/generations/{provider_job_id}/status"
        return parse(
            Generation, await request_json(self.http, "GET", url, headers=self.headers)
        ).report()
