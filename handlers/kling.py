"""Kling: per-job callbacks (unsigned, on every status change) and the task query.

Documented at https://app.klingai.com/global/dev/document-api/apiReference/commonInfo (base URL
https://api-singapore.klingai.com; `Authorization: Bearer <API token>`, the token a JWT signed HS256
with the secret key whose `iss` is the access key, `exp` 30 minutes and `nbf` 5 seconds from now;
error answers `{code, message, request_id}` with their HTTP statuses: 401 for a token Kling does
not accept, 404 code 1203 for a resource that does not exist, 429 for account and rate limits),
https://app.klingai.com/global/dev/document-api/apiReference/model/textToVideo and
https://app.klingai.com/global/dev/document-api/apiReference/model/imageToVideo (POST
/v1/videos/text2video or /v1/videos/image2video with `model_name`, `prompt`, `negative_prompt`,
`duration` ("5" or "10"), `aspect_ratio` (text to video only), `image` (image to video: a URL or
base64), `callback_url`, `external_task_id`; the answer `{code, message, request_id, data: {task_id,
task_info: {external_task_id}, task_status}}`; GET /v1/videos/{text2video|image2video}/{id}, where
`id` is either the task_id or the external_task_id; statuses submitted, processing, succeed,
failed; `task_status_msg` says why a task failed; `task_result.videos[].url`), and the callback
protocol of the same reference (when `callback_url` is set Kling posts the task, as the query's
`data`, on every status change; nothing signs it).

Readings where the docs leave room:
- Our model id is Kling's `model_name` (kling-v2-1-master, …). A request with `image_url`, or with
  an `image` in `input`, goes to image2video; any other to text2video. Our provider job id is
  "{endpoint}/{task_id}", the task's path under /v1/videos, so a poll needs nothing else.
- `duration` goes as seconds in a string ("5"). `resolution`, `size` and `seed` have no Kling field
  (quality is `mode` std/pro, through `input`); image2video takes no `aspect_ratio`.
- `external_task_id` is always the attempt's reference, whatever `input` says: it is how a
  submission whose answer was lost is found again (`find_submission`), so Kling bills it once.
  A lookup answered 404 means Kling has no such task.
- A callback is never signed, so it is only a reason to query the task.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import quote

import httpx2 as httpx
import jwt
from pydantic import BaseModel, Field

from handlers import strictjson
from handlers.base import (
    HttpProvider,
    JobError,
    Output,
    PermanentError,
    ProviderConfig,
    ProviderStatus,
    Status,
    SubmitRequest,
    TransientError,
    how_to_configure,
    normalize_status,
)
from handlers.http import parse, request_json

DEFAULT_BASE_URL = "https://api-singapore.klingai.com"

STATUSES: dict[str, Status] = {
    "submitted": "queued",
    "processing": "in_progress",
    "succeed": "completed",
    "failed": "failed",
}

TEXT_TO_VIDEO, IMAGE_TO_VIDEO = "text2video", "image2video"

FIELDS: dict[str, dict[str, str]] = {
    TEXT_TO_VIDEO: {
        "prompt": "prompt",
        "negative_prompt": "negative_prompt",
        "aspect_ratio": "aspect_ratio",
    },
    IMAGE_TO_VIDEO: {
        "prompt": "prompt",
        "negative_prompt": "negative_prompt",
        "image_url": "image",
    },
}

# Kling accepts a token for 30 minutes from its issue (the documented example); a new one is made
# this long before that, so no request leaves with a token about to lapse.
TOKEN_LIFETIME_S = 1800
TOKEN_REFRESH_MARGIN_S = 300
# `nbf` a little in the past, as documented, against clocks a few seconds apart.
TOKEN_CLOCK_SKEW_S = 5


class ApiToken:
    """The JWT Kling takes as its API token, signed with PyJWT and kept until it nears expiry."""

    def __init__(
        self, access_key: str, secret_key: str, clock: Callable[[], float] = time.time
    ) -> None:
        self.access_key = access_key
        self.secret_key = secret_key
        self.clock = clock
        self.token = ""
        self.expires_at = 0

    def current(self) -> str:
        now = int(self.clock())
        if now >= self.expires_at - TOKEN_REFRESH_MARGIN_S:
            self.expires_at = now + TOKEN_LIFETIME_S
            not_before = now - TOKEN_CLOCK_SKEW_S
            claims = {"iss": self.access_key, "exp": self.expires_at, "nbf": not_before}
            self.token = jwt.encode(claims, self.secret_key, algorithm="HS256")
        return self.token


class Video(BaseModel):
    url: str


class TaskResult(BaseModel):
    videos: list[Video] = Field(default_factory=list)


class Task(BaseModel):
    """A task as the query's `data` has it, and as a callback posts it."""

    task_id: str
    task_status: str
    task_status_msg: str | None = None
    task_result: TaskResult | None = None

    def report(self, endpoint: str | None) -> ProviderStatus:
        """`endpoint` is None for a callback body, which does not say where the task lives; the
        bare task id still names the job (`names_job`)."""
        status = normalize_status("kling", self.task_status, STATUSES)
        report = ProviderStatus(
            provider_job_id=f"{endpoint}/{self.task_id}" if endpoint else self.task_id,
            status=status,
            raw_status=self.task_status,
        )
        if status == "completed":
            videos = self.task_result.videos if self.task_result else []
            if not videos:
                raise TransientError("kling reported succeed without a video")
            report.outputs = [Output(url=video.url, content_type="video/mp4") for video in videos]
        elif status == "failed":
            message = self.task_status_msg or "kling reported the task failed"
            report.error = JobError(code="generation_failed", message=message)
        return report


class Answer(BaseModel):
    data: Task


class Handler(HttpProvider):
    name = "kling"
    default_base_url = DEFAULT_BASE_URL
    webhooks = True
    reconciliation = "lookup"
    credentials = ("ACCESS_KEY", "SECRET_KEY")

    def __init__(self, config: ProviderConfig, http: httpx.AsyncClient) -> None:
        super().__init__(config, http)
        access_key, secret_key = config.options.get("ACCESS_KEY"), config.options.get("SECRET_KEY")
        self.api_token = ApiToken(access_key, secret_key) if access_key and secret_key else None

    @property
    def configured(self) -> bool:
        return self.api_token is not None

    @property
    def headers(self) -> dict[str, str]:
        if self.api_token is None:
            raise PermanentError(f"kling is not configured: set {how_to_configure(self)}")
        return {"authorization": f"Bearer {self.api_token.current()}"}

    async def submit(self, request: SubmitRequest) -> ProviderStatus:
        endpoint = _endpoint(request)
        body = request.normalized(FIELDS[endpoint])
        body.setdefault("model_name", request.model)
        if request.duration is not None:
            body.setdefault("duration", f"{request.duration:g}")
        if request.callback_url is not None:
            body.setdefault("callback_url", request.callback_url)
        if request.reference:
            body["external_task_id"] = request.reference
        url = f"{self.base_url}/v1/videos/{endpoint}"
        data = await request_json(self.http, "POST", url, json=body, headers=self.headers)
        return parse(Answer, data).data.report(endpoint)

    async def fetch_status(self, provider_job_id: str) -> ProviderStatus:
        endpoint, _, task_id = provider_job_id.partition("/")
        return await self._query(endpoint, task_id)

    async def find_submission(self, request: SubmitRequest) -> ProviderStatus | None:
        if not request.reference:
            return None
        try:
            return await self._query(_endpoint(request), request.reference)
        except PermanentError as exc:
            if exc.status == 404:
                return None
            raise

    def adopted_job_id(self, request: SubmitRequest, reported: str) -> str:
        # A callback names the bare task_id; our job id also says which endpoint to ask.
        return f"{_endpoint(request)}/{reported}"

    def parse_webhook(self, body: bytes) -> ProviderStatus:
        try:
            data = strictjson.loads(body)
        except ValueError:
            raise TransientError("kling callback is not JSON") from None
        return parse(Task, data).report(None)

    async def _query(self, endpoint: str, task_id: str) -> ProviderStatus:
        """The task at /v1/videos/{endpoint}/{id}, `id` its task_id or its external_task_id."""
        url = f"{self.base_url}/v1/videos/{endpoint}/{quote(task_id, safe='')}"
        data = await request_json(self.http, "GET", url, headers=self.headers)
        return parse(Answer, data).data.report(endpoint)


def _endpoint(request: SubmitRequest) -> str:
    return IMAGE_TO_VIDEO if request.image_url or "image" in request.input else TEXT_TO_VIDEO
