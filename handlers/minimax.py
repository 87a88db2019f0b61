"""MiniMax (Hailuo): per-job callbacks after a challenge, unsigned; the video served by videohooks.

Documented at https://platform.minimax.io/docs/api-reference/video-generation-t2v and
https://platform.minimax.io/docs/api-reference/video-generation-i2v (POST /v1/video_generation
with `model`, `prompt`, `duration` (integer seconds), `resolution` (720P, 768P, 1080P, …),
`first_frame_image`, `callback_url` → `{task_id, base_resp}`; once `callback_url` is set MiniMax
first POSTs a body with a `challenge` field there, which must be echoed back within 3 seconds, then
posts the task, shaped as the query answers it, whenever its status changes),
https://platform.minimax.io/docs/api-reference/video-generation-query (GET
/v1/query/video_generation?task_id=…: statuses Preparing, Queueing, Processing, Success, Fail;
`file_id` once it succeeded; `base_resp.status_code` 1026 or 1027 when the input or the output
was found sensitive), https://platform.minimax.io/docs/api-reference/video-generation-download
(GET /v1/files/retrieve?file_id=… → `{file: {download_url, …}}`) and
https://platform.minimax.io/docs/api-reference/errorcode (every answer carries `base_resp
{status_code, status_msg}`, 0 meaning success, usually with HTTP 200: 1000, 1001, 1024 and 1033
ask to retry later, 1002 and 1039 are rate limits, the others are refusals: 1004 the key, 1008 the
balance, 2013 the parameters, …). `Authorization: Bearer <key>`.

Readings where the docs leave room:
- An answer without what was asked for (a task id, a status, a file) is a refusal explained by its
  `base_resp`. A query that has a status reports the task, and a `Fail`'s `status_msg` (when
  non-zero) says why; callbacks spell the words in lower case ("success", "failed").
- 1000, 1001, 1024 and 1033 say nothing about whether the request was acted on: for a submission
  they are uncertain. 1002 and 1039 turned it away: safe to send again.
- The finished task gives only a `file_id`. The video is served through videohooks' content
  endpoint (`Output.via_content`), and `content()` resolves the file's `download_url` when it is
  downloaded, never earlier: events and the stored job keep a URL that does not expire, and the
  API key stays on the API. The download URL itself is fetched without the key.
- `resolution` is sent upper-cased ("1080p" → "1080P"), MiniMax's spelling; `duration` as whole
  seconds. `negative_prompt`, `aspect_ratio`, `size` and `seed` have no MiniMax field.
- A callback is never signed, so it is only a reason to query the task. Nothing identifies a
  submission but the task id in its answer (no idempotency key, no client reference); only a
  callback to the attempt's receiver URL can tell which task a lost submission created.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, NoReturn
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict

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
    UncertainError,
    normalize_status,
)
from handlers.http import fetch, parse, request_json

DEFAULT_BASE_URL = "https://api.minimax.io"

STATUSES: dict[str, Status] = {
    "preparing": "queued",
    "queueing": "queued",
    "processing": "in_progress",
    "success": "completed",
    "fail": "failed",
    "failed": "failed",
}

FIELDS = {"prompt": "prompt", "image_url": "first_frame_image"}

# base_resp codes that ask to try again: rate limits turned the request away; the others may
# have come after it was acted on.
RATE_LIMITED = frozenset({1002, 1039})
RETRY_LATER = frozenset({1000, 1001, 1024, 1033})

RESOLUTION = re.compile(r"\d+p")


class BaseResp(BaseModel):
    status_code: int = 0
    status_msg: str = ""


class Answer(BaseModel):
    # MiniMax's ids are digit strings in its examples, integers in its schema.
    model_config = ConfigDict(coerce_numbers_to_str=True)
    base_resp: BaseResp | None = None


class Created(Answer):
    task_id: str = ""


class Task(Answer):
    """A task as the query answers it, and as a callback posts it."""

    task_id: str = ""
    status: str = ""
    file_id: str | None = None

    def report(self) -> ProviderStatus:
        status = normalize_status("minimax", self.status, STATUSES)
        report = ProviderStatus(provider_job_id=self.task_id, status=status, raw_status=self.status)
        if status == "completed":
            if not self.file_id:
                raise TransientError("minimax reported success without a file_id")
            report.outputs = [Output.via_content(0, "video/mp4")]
        elif status == "failed":
            reason = self.base_resp if self.base_resp and self.base_resp.status_code else None
            message = reason.status_msg if reason else "minimax reported the task failed"
            report.error = JobError(code="generation_failed", message=message)
        return report


class File(BaseModel):
    download_url: str


class Retrieved(Answer):
    file: File | None = None


class Handler(HttpProvider):
    name = "minimax"
    default_base_url = DEFAULT_BASE_URL
    webhooks = True
    reconciliation = "webhook"

    async def submit(self, request: SubmitRequest) -> ProviderStatus:
        body = request.normalized(FIELDS)
        body.setdefault("model", request.model)
        if request.duration is not None:
            body.setdefault("duration", round(request.duration))
        if request.resolution is not None and RESOLUTION.fullmatch(request.resolution.lower()):
            body.setdefault("resolution", request.resolution.upper())
        if request.callback_url is not None:
            body.setdefault("callback_url", request.callback_url)
        created = parse(Created, await self._call("POST", "/v1/video_generation", json=body))
        if not created.task_id:
            _refused(created.base_resp, "a task_id")
        return ProviderStatus(
            provider_job_id=created.task_id, status="queued", raw_status="created"
        )

    async def fetch_status(self, provider_job_id: str) -> ProviderStatus:
        return (await self._task(provider_job_id)).report()

    @asynccontextmanager
    async def content(self, provider_job_id: str, index: int) -> AsyncIterator[Content]:
        """Streams the task's video: its file_id from the query, the file's current download URL
        from the files API, then the file from that URL (which needs no key, so none is sent)."""
        if index != 0:
            raise PermanentError(f"a minimax task has one video, not {index + 1}")
        task = await self._task(provider_job_id)
        if not task.file_id:
            raise PermanentError(f"minimax task {provider_job_id} has no file ({task.status})")
        data = await self._call("GET", "/v1/files/retrieve", params={"file_id": task.file_id})
        retrieved = parse(Retrieved, data)
        if retrieved.file is None:
            _refused(retrieved.base_resp, "the file")
        url = retrieved.file.download_url
        if urlsplit(url).scheme not in ("http", "https"):
            raise TransientError(f"minimax gave a download_url that is not http(s): {url[:100]!r}")
        # A URL from MiniMax's payload: fetched through the egress guard, like any user URL.
        async with fetch(self.egress, url) as got:
            yield Content(got.headers.get("content-type", "video/mp4"), got.aiter_bytes())

    def handshake(self, body: bytes) -> dict[str, Any] | None:
        """MiniMax's check of a callback URL: `{"challenge": …}`, answered with the same value."""
        try:
            data = strictjson.loads(body)
        except ValueError:
            return None
        if isinstance(data, dict) and data.get("challenge") is not None:
            return {"challenge": data["challenge"]}
        return None

    def parse_webhook(self, body: bytes) -> ProviderStatus:
        try:
            data = strictjson.loads(body)
        except ValueError:
            raise TransientError("minimax callback is not JSON") from None
        task = parse(Task, data)
        if not task.task_id or not task.status:
            raise TransientError("minimax callback names no task and status")
        return task.report()

    async def _task(self, task_id: str) -> Task:
        data = await self._call("GET", "/v1/query/video_generation", params={"task_id": task_id})
        task = parse(Task, data)
        if not task.status:
            _refused(task.base_resp, "a task status")
        return task.model_copy(update={"task_id": task.task_id or task_id})

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        url = f"{self.base_url}{path}"
        return await request_json(self.http, method, url, headers=self.headers, **kwargs)


def _refused(base_resp: BaseResp | None, missing: str) -> NoReturn:
    """Raises what an answer without `missing` means, by its base_resp code."""
    if base_resp is None or base_resp.status_code == 0:
        raise TransientError(f"minimax answered without {missing}")
    code = base_resp.status_code
    message = f"{base_resp.status_msg or 'error'} (minimax status_code {code})"
    if code in RATE_LIMITED:
        raise TransientError(message)
    if code in RETRY_LATER:
        raise UncertainError(message)
    raise PermanentError(message)
