"""OpenRouter's video API: per-job webhooks to `callback_url`, signed with HMAC-SHA256.

POST /v1/videos, GET /v1/videos/{id}, GET /v1/videos/{id}/content?index=N, Bearer auth, under
https://openrouter.ai/api. Documented at
https://openrouter.ai/docs/guides/overview/multimodal/video-generation (request parameters, poll
response, job statuses, webhook payloads, signature),
https://openrouter.ai/docs/api/api-reference/video-generation/poll-video-generation-status
(statuses pending, in_progress, completed, failed, cancelled, expired) and
https://openrouter.ai/docs/cookbook/video-generation/video-generation-webhooks.

Webhooks come once a job is terminal: `{type: "video.generation.<status>", created_at,
data: {id, status, generation_id, model, unsigned_urls, usage, error}}`, with
`X-OpenRouter-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>,<raw body>")>` when the
workspace has a signing secret. The docs spell out the comma separator ("joined with a comma").

Readings where the docs are silent or disagree:
- Outputs: both the poll response and the webhook carry `unsigned_urls`, which point at the
  content endpoint and need our API key. Events never carry them: each becomes
  `Output.via_content(index)` and `content()` streams it from the content endpoint of our own
  base URL (never from a URL taken from a payload, so the key only goes where it is configured).
- `queued` is not in OpenRouter's status list but in the OpenAI-shaped reference we were given;
  it is kept as a synonym of `pending`.
- `duration` is an integer: our seconds are rounded. `negative_prompt` has no field of its own
  (only per-provider passthrough in `provider.options`), so it is not mapped.

Paying once: no idempotency key and no list of jobs are documented (the video API is submit,
poll and content: https://openrouter.ai/docs/api/api-reference/videos). The job's callback_url
is: the webhook on this attempt's receiver URL names the job, which is adopted (re-fetched first
when the workspace signs nothing). Reconciliation is `webhook`.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, Field

from handlers import strictjson
from handlers.base import (
    Content,
    HttpProvider,
    JobError,
    Output,
    ProviderStatus,
    Status,
    SubmitRequest,
    TransientError,
    WebhookRejected,
    normalize_status,
)
from handlers.http import parse, request_json, stream

DEFAULT_BASE_URL = "https://openrouter.ai/api"
SIGNATURE_HEADER = "x-openrouter-signature"
TOLERANCE_S = 300

STATUSES: dict[str, Status] = {
    "pending": "queued",
    "queued": "queued",
    "in_progress": "in_progress",
    "completed": "completed",
    "failed": "failed",
    "cancelled": "failed",
    "expired": "failed",
}

# Our error code for each terminal failure word; the message is OpenRouter's `error`.
ERROR_CODES = {"failed": "generation_failed", "cancelled": "cancelled", "expired": "expired"}

FIELDS = {
    "prompt": "prompt",
    "resolution": "resolution",
    "aspect_ratio": "aspect_ratio",
    "size": "size",
    "seed": "seed",
}


class VideoJob(BaseModel):
    """A job as GET /v1/videos/{id} answers it, and as the `data` of a webhook."""

    id: str
    status: str
    unsigned_urls: list[str] = Field(default_factory=list)
    error: str | None = None

    def report(self) -> ProviderStatus:
        status = normalize_status("openrouter", self.status, STATUSES)
        report = ProviderStatus(provider_job_id=self.id, status=status, raw_status=self.status)
        if status == "completed":
            if not self.unsigned_urls:
                raise TransientError("openrouter reported completed without unsigned_urls")
            report.outputs = [Output.via_content(index) for index in range(len(self.unsigned_urls))]
        elif status == "failed":
            word = self.status.lower()
            message = self.error or f"openrouter reported the job {word}"
            report.error = JobError(code=ERROR_CODES[word], message=message)
        return report


class WebhookEvent(BaseModel):
    """The envelope; its `type` only repeats `data.status`."""

    data: VideoJob


class Handler(HttpProvider):
    name = "openrouter"
    default_base_url = DEFAULT_BASE_URL
    webhooks = True
    reconciliation = "webhook"

    async def submit(self, request: SubmitRequest) -> ProviderStatus:
        body = request.normalized(FIELDS)
        for name, value in self._extra_fields(request).items():
            body.setdefault(name, value)
        url = f"{self.base_url}/v1/videos"
        data = await request_json(self.http, "POST", url, json=body, headers=self.headers)
        return parse(VideoJob, data).report()

    async def fetch_status(self, provider_job_id: str) -> ProviderStatus:
        url = self._job_url(provider_job_id)
        return parse(
            VideoJob, await request_json(self.http, "GET", url, headers=self.headers)
        ).report()

    @asynccontextmanager
    async def content(self, provider_job_id: str, index: int) -> AsyncIterator[Content]:
        """Streams output `index` from the authenticated content endpoint."""
        url = f"{self._job_url(provider_job_id)}/content"
        # A redirect to storage is followed; httpx drops the key if it leaves the host.
        async with stream(
            self.http,
            "GET",
            url,
            params={"index": index},
            headers=self.headers,
            follow_redirects=True,
        ) as got:
            yield Content(got.headers.get("content-type", "video/mp4"), got.aiter_bytes())

    async def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> bool:
        """True when `X-OpenRouter-Signature` verifies against the configured secret; False when
        no secret is configured (the body is then only a reason to re-fetch)."""
        if not self.secret:
            return False
        header = {key.lower(): value for key, value in headers.items()}.get(SIGNATURE_HEADER)
        if header is None:
            raise WebhookRejected("webhook signature: missing X-OpenRouter-Signature")
        timestamp, signatures = _parse_signature(header)
        if abs(time.time() - timestamp) > TOLERANCE_S:
            raise WebhookRejected("webhook signature: timestamp outside the tolerance")
        signed = f"{timestamp},".encode() + body
        expected = hmac.new(self.secret.encode(), signed, hashlib.sha256).hexdigest()
        if not any(hmac.compare_digest(expected.encode(), sig.encode()) for sig in signatures):
            raise WebhookRejected("webhook signature: no signature matches")
        return True

    def parse_webhook(self, body: bytes) -> ProviderStatus:
        try:
            data = strictjson.loads(body)
        except ValueError:
            raise TransientError("openrouter webhook is not JSON") from None
        return parse(WebhookEvent, data).data.report()

    def _job_url(self, provider_job_id: str) -> str:
        return f"{self.base_url}/v1/videos/{quote(provider_job_id, safe='')}"

    @staticmethod
    def _extra_fields(request: SubmitRequest) -> dict[str, Any]:
        """The documented fields our names cannot express one to one; `input` wins over them."""
        fields: dict[str, Any] = {"model": request.model}
        if request.duration is not None:
            fields["duration"] = round(request.duration)
        if request.image_url is not None:
            fields["frame_images"] = [
                {
                    "type": "image_url",
                    "image_url": {"url": request.image_url},
                    "frame_type": "first_frame",
                }
            ]
        if request.metadata:
            fields["metadata"] = request.metadata
        if request.callback_url is not None:
            fields["callback_url"] = request.callback_url
        return fields


def _parse_signature(header: str) -> tuple[int, list[str]]:
    """`t=<unix seconds>,v1=<hex>`; several v1 values are accepted (a secret being rotated)."""
    pairs = [part.strip().partition("=") for part in header.split(",")]
    timestamps = [value for key, _, value in pairs if key == "t"]
    signatures = [value for key, _, value in pairs if key == "v1"]
    if len(timestamps) != 1 or not signatures:
        raise WebhookRejected("webhook signature: malformed X-OpenRouter-Signature")
    try:
        return int(timestamps[0]), signatures
    except ValueError:
        raise WebhookRejected("webhook signature: malformed timestamp") from None
