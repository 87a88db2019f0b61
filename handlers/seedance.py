"""Seedance on BytePlus ModelArk: content-generation tasks, per-job callbacks that nothing signs.

Documented at https://docs.byteplus.com/en/docs/ModelArk/1520757 (POST
{base}/contents/generations/tasks with `model`, `content` — a `text` item and `image_url` items
with a `role` such as `first_frame` —, `callback_url`, and the output settings `resolution`,
`ratio`, `duration`, `seed`, …, answered `{"id": "cgt-…"}`; once `callback_url` is set ModelArk
posts the task there, shaped as the query answers it, whenever its status changes, and retries a
terminal one three times when it is not acknowledged within 5 seconds),
https://docs.byteplus.com/en/docs/ModelArk/1521309 (GET {base}/contents/generations/tasks/{id}:
`status` queued, running, cancelled, succeeded, failed, expired; `content.video_url` once it
succeeded, cleared after 24 hours; `error {code, message}` when it failed; tasks of the last 7 days
only), https://docs.byteplus.com/en/docs/ModelArk/1521675 (the task list, filtered by status, task
ids or model) and https://docs.byteplus.com/en/docs/ModelArk/1299023 (errors as `{"error": {code,
message, param, type}}` with their HTTP statuses). `Authorization: Bearer <ARK API key>`.

Readings where the docs leave room:
- The prompt is the `content` list's `text` item, the image its `image_url` item with the role
  `first_frame`; `input.content` replaces the whole list (images as reference frames, a last frame,
  …). The output settings go as body fields, not as `--rs`-style text commands.
- `duration` is whole seconds (rounded); `aspect_ratio` is ModelArk's `ratio`. `negative_prompt`
  and `size` have no ModelArk field.
- `cancelled` and `expired` (not started within `execution_expires_after`) fail with those codes.
- A callback is never signed, so it is only a reason to query the task. ModelArk takes no
  idempotency key and keeps no client reference that the task list can filter on: only a callback
  to the attempt's receiver URL can tell which task a lost submission created.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from pydantic import BaseModel

from handlers import strictjson
from handlers.base import (
    HttpProvider,
    JobError,
    Output,
    ProviderStatus,
    Status,
    SubmitRequest,
    TransientError,
    normalize_status,
)
from handlers.http import parse, request_json

DEFAULT_BASE_URL = "https://ark.ap-southeast.bytepluses.com/api/v3"

STATUSES: dict[str, Status] = {
    "queued": "queued",
    "running": "in_progress",
    "succeeded": "completed",
    "failed": "failed",
    "cancelled": "failed",
    "expired": "failed",
}

# Our error code for each way a task ends without a video.
ERROR_CODES = {"failed": "generation_failed", "cancelled": "cancelled", "expired": "expired"}

FIELDS = {"resolution": "resolution", "aspect_ratio": "ratio", "seed": "seed"}


class Created(BaseModel):
    id: str


class TaskContent(BaseModel):
    video_url: str | None = None


class TaskError(BaseModel):
    code: str = ""
    message: str = ""


class Task(BaseModel):
    """A task as the query answers it, and as a callback posts it."""

    id: str
    status: str
    content: TaskContent | None = None
    error: TaskError | None = None

    def report(self) -> ProviderStatus:
        status = normalize_status("seedance", self.status, STATUSES)
        report = ProviderStatus(provider_job_id=self.id, status=status, raw_status=self.status)
        if status == "completed":
            url = self.content.video_url if self.content else None
            if not url:
                raise TransientError("seedance reported succeeded without content.video_url")
            report.outputs = [Output(url=url, content_type="video/mp4")]
        elif status == "failed":
            word = self.status.lower()
            message = self.error.message if self.error and self.error.message else None
            report.error = JobError(
                code=ERROR_CODES[word], message=message or f"seedance reported the task {word}"
            )
        return report


class Handler(HttpProvider):
    name = "seedance"
    default_base_url = DEFAULT_BASE_URL
    webhooks = True
    reconciliation = "webhook"

    async def submit(self, request: SubmitRequest) -> ProviderStatus:
        body = request.normalized(FIELDS)
        body.setdefault("model", request.model)
        body.setdefault("content", _content(request))
        if request.duration is not None:
            body.setdefault("duration", round(request.duration))
        if request.callback_url is not None:
            body.setdefault("callback_url", request.callback_url)
        url = f"{self.base_url}/contents/generations/tasks"
        data = await request_json(self.http, "POST", url, json=body, headers=self.headers)
        created = parse(Created, data)
        return ProviderStatus(provider_job_id=created.id, status="queued", raw_status="created")

    async def fetch_status(self, provider_job_id: str) -> ProviderStatus:
        url = f"{self.base_url}/contents/generations/tasks/{quote(provider_job_id, safe='')}"
        data = await request_json(self.http, "GET", url, headers=self.headers)
        return parse(Task, data).report()

    def parse_webhook(self, body: bytes) -> ProviderStatus:
        try:
            data = strictjson.loads(body)
        except ValueError:
            raise TransientError("seedance callback is not JSON") from None
        return parse(Task, data).report()


def _content(request: SubmitRequest) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    if request.prompt is not None:
        items.append({"type": "text", "text": request.prompt})
    if request.image_url is not None:
        items.append(
            {"type": "image_url", "image_url": {"url": request.image_url}, "role": "first_frame"}
        )
    return items
