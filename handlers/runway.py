"""Runway's task API: poll only. POST /v1/text_to_video or /v1/image_to_video, GET /v1/tasks/{id}.

Documented at https://docs.dev.runwayml.com/api/ (the API reference: `Authorization: Bearer`, the
required `X-Runway-Version: 2024-11-06` header, the create endpoints answering `{id}`, and
GET /v1/tasks/{id} with statuses PENDING, THROTTLED, RUNNING (with `progress` 0-1), SUCCEEDED
(`output`: URLs that expire within 24-48 hours), FAILED (`failure`, `failureCode`) and CANCELLED
("a cancelled or deleted task")), https://docs.dev.runwayml.com/api-details/task-failures (failure
codes: SAFETY.INPUT.* and SAFETY.OUTPUT.* are content moderation, "you should not retry";
INTERNAL.BAD_OUTPUT.* quality or system rejections; INPUT_PREPROCESSING.SAFETY.TEXT and
INPUT_PREPROCESSING.INTERNAL) and https://docs.dev.runwayml.com/api-details/errors (400 carries a
JSON `error` member; 429, 502, 503 and 504 may be retried). The official SDK
(github.com/runwayml/sdk-python, generated from the same OpenAPI document) has the same shapes.

Paying once: Runway documents no idempotency key (its SDK configures no idempotency header), no
way to list tasks and no callback, so `reconciliation` is "none".

Choices where the docs leave room:
- `image_url` chooses image_to_video (as `promptImage`, which Runway fetches itself); without one
  the task is text_to_video.
- Runway's `ratio` is the output's pixel size as "1280:720". Our `size` (or a `resolution`) of
  the form "1280x720" becomes that; otherwise `aspect_ratio` is sent as `ratio` unchanged, so a
  "16:9" is refused by Runway with its own message.
- `duration` is a whole number of seconds: ours is rounded.
- The version header can be overridden with VIDEOHOOKS_RUNWAY_VERSION (a new version can change
  the shapes read here: override only to one the docs say is compatible).
- A failure code with a SAFETY part fails with `content_filtered`; CANCELLED with `cancelled`;
  any other failure with `generation_failed`. The message is Runway's `failure` and its code.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from pydantic import BaseModel, Field

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

DEFAULT_BASE_URL = "https://api.dev.runwayml.com"
DEFAULT_VERSION = "2024-11-06"

STATUSES: dict[str, Status] = {
    "pending": "queued",
    "throttled": "queued",
    "running": "in_progress",
    "succeeded": "completed",
    "failed": "failed",
    "cancelled": "failed",
}

FIELDS = {
    "prompt": "promptText",
    "negative_prompt": "negativePrompt",
    "seed": "seed",
    "image_url": "promptImage",
}

# Our error code for a failure the provider's content moderation caused.
FILTERED = "content_filtered"

DIMENSIONS = re.compile(r"(\d+)x(\d+)")


class Created(BaseModel):
    id: str


class Task(BaseModel):
    id: str
    status: str
    progress: float | None = None
    output: list[str] = Field(default_factory=list)
    failure: str | None = None
    failureCode: str | None = None

    def report(self) -> ProviderStatus:
        status = normalize_status("runway", self.status, STATUSES)
        report = ProviderStatus(
            provider_job_id=self.id,
            status=status,
            progress=normalize_progress(self.progress, scale=1.0),
            raw_status=self.status,
        )
        if status == "completed":
            if not self.output:
                raise TransientError("runway reported SUCCEEDED without output")
            report.outputs = [Output(url=url, content_type="video/mp4") for url in self.output]
        elif status == "failed":
            report.error = self.error()
        return report

    def error(self) -> JobError:
        if self.status.lower() == "cancelled":
            return JobError(code="cancelled", message="the task was cancelled or deleted")
        code = self.failureCode or ""
        message = self.failure or "runway reported the task failed"
        if code:
            message = f"{message} ({code})"
        filtered = "SAFETY" in code.upper().split(".")
        return JobError(code=FILTERED if filtered else "generation_failed", message=message)


class Handler(HttpProvider):
    name = "runway"
    default_base_url = DEFAULT_BASE_URL
    option_names = frozenset({"VERSION"})

    @property
    def headers(self) -> dict[str, str]:
        version = self.config.options.get("VERSION", DEFAULT_VERSION)
        return super().headers | {"x-runway-version": version}

    async def submit(self, request: SubmitRequest) -> ProviderStatus:
        body = request.normalized(FIELDS)
        body.setdefault("model", request.model)
        if request.duration is not None:
            body.setdefault("duration", round(request.duration))
        if (ratio := _ratio(request)) is not None:
            body.setdefault("ratio", ratio)
        endpoint = "image_to_video" if "promptImage" in body else "text_to_video"
        url = f"{self.base_url}/v1/{endpoint}"
        data = await request_json(self.http, "POST", url, json=body, headers=self.headers)
        created = parse(Created, data)
        return ProviderStatus(provider_job_id=created.id, status="queued", raw_status="created")

    async def fetch_status(self, provider_job_id: str) -> ProviderStatus:
        url = f"{self.base_url}/v1/tasks/{quote(provider_job_id, safe='')}"
        data = await request_json(self.http, "GET", url, headers=self.headers)
        return parse(Task, data).report()


def _ratio(request: SubmitRequest) -> str | None:
    for value in (request.size, request.resolution):
        if value and (match := DIMENSIONS.fullmatch(value)):
            return f"{match[1]}:{match[2]}"
    return request.aspect_ratio
