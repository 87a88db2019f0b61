"""Luma's Dream Machine API: video generations with a per-job `callback_url`, which Luma calls
on every state change with the whole generation, unsigned: a callback only makes the worker ask.

Documented at https://docs.lumalabs.ai/docs/video-generation and https://docs.lumalabs.ai/docs/api
(POST https://api.lumalabs.ai/dream-machine/v1/generations, `Authorization: Bearer`; prompt,
aspect_ratio, loop, keyframes.frame0 `{type: "image", url}`), the API reference
https://docs.lumalabs.ai/reference/creategeneration and .../getgeneration (the Generation object:
id, state queued|dreaming|completed|failed, failure_reason, assets.video, request; model ray-2,
ray-flash-2, ray-1-6; resolution 540p-4k; duration "5s"|"9s"; callback_url "a POST request with
Generation object will be sent to the callback URL when the generation is dreaming, completed, or
failed"), https://docs.lumalabs.ai/changelog/callbacks-and-credits-balance (the callback is the
Generation object, sent on every update, retried 3 times unless answered 200; no signature) and
https://docs.lumalabs.ai/docs/errors (request errors, and the failure_reason texts: "Contains
blacklisted words", "Frame moderation failed", "Advanced prompt moderation failed" under
Moderation). The official SDK (github.com/lumalabs/lumaai-python, generated from Luma's OpenAPI
document) has the same shapes.

Paying once: Luma documents no idempotency key and no lookup by a reference of ours, but its
callbacks go to this attempt's receiver URL from the first state change (`dreaming`) and carry the
generation's `id`: `reconciliation` is "webhook" (it needs VIDEOHOOKS_PUBLIC_URL).

Choices where the docs leave room:
- Our receiver URL is always the `callback_url` when there is one, even if `input` names another:
  the callbacks are what reconciles a lost answer.
- `duration` is sent as whole seconds with an "s" ("5s"); `negative_prompt`, `seed` and `size` have
  no Luma field.
- A failure_reason the errors page lists under Moderation fails with `content_filtered`; any other
  with `generation_failed`, the reason as the message.
- `completed` without `assets.video` is taken as a transient glitch, polled again.
- Request errors are read from FastAPI's `{"detail": …}` (the shape Luma's other APIs document).
"""

from __future__ import annotations

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

DEFAULT_BASE_URL = "https://api.lumalabs.ai/dream-machine/v1"

STATUSES: dict[str, Status] = {
    "queued": "queued",
    "dreaming": "in_progress",
    "completed": "completed",
    "failed": "failed",
}

FIELDS = {
    "prompt": "prompt",
    "aspect_ratio": "aspect_ratio",
    "resolution": "resolution",
}

# The failure reasons https://docs.lumalabs.ai/docs/errors lists under "Moderation".
MODERATION = ("contains blacklisted words", "frame moderation failed", "advanced prompt moderation")


class Assets(BaseModel):
    video: str | None = None


class Generation(BaseModel):
    id: str
    state: str
    failure_reason: str | None = None
    assets: Assets | None = None

    def report(self) -> ProviderStatus:
        status = normalize_status("luma", self.state, STATUSES)
        report = ProviderStatus(provider_job_id=self.id, status=status, raw_status=self.state)
        if status == "completed":
            if self.assets is None or self.assets.video is None:
                raise TransientError("luma reported completed without assets.video")
            report.outputs = [Output(url=self.assets.video, content_type="video/mp4")]
        elif status == "failed":
            report.error = self.error()
        return report

    def error(self) -> JobError:
        reason = self.failure_reason or "luma reported the generation failed"
        moderated = reason.lower().startswith(MODERATION)
        return JobError(
            code="content_filtered" if moderated else "generation_failed", message=reason
        )


class Handler(HttpProvider):
    name = "luma"
    default_base_url = DEFAULT_BASE_URL
    webhooks = True
    reconciliation = "webhook"

    async def submit(self, request: SubmitRequest) -> ProviderStatus:
        body = request.normalized(FIELDS)
        body.setdefault("model", request.model)
        if request.duration is not None:
            body.setdefault("duration", f"{round(request.duration)}s")
        if request.image_url is not None:
            body.setdefault("keyframes", {"frame0": {"type": "image", "url": request.image_url}})
        if request.callback_url is not None:
            body["callback_url"] = request.callback_url
        url = f"{self.base_url}/generations"
        data = await request_json(self.http, "POST", url, json=body, headers=self.headers)
        return parse(Generation, data).report()

    async def fetch_status(self, provider_job_id: str) -> ProviderStatus:
        url = f"{self.base_url}/generations/{quote(provider_job_id, safe='')}"
        data = await request_json(self.http, "GET", url, headers=self.headers)
        return parse(Generation, data).report()

    def parse_webhook(self, body: bytes) -> ProviderStatus:
        """What an (unsigned) callback claims: the receiver checks it names this job's generation,
        and the worker then asks Luma instead of believing it."""
        try:
            data = strictjson.loads(body)
        except ValueError:
            raise TransientError("luma callback is not JSON") from None
        return parse(Generation, data).report()
