"""Replicate's predictions API: a per-job webhook on completion, Standard Webhooks signed.

Documented at https://replicate.com/docs/reference/http (POST /v1/models/{owner}/{name}/predictions
for official models, POST /v1/predictions with `version` for a model version, GET
/v1/predictions/{id}; `Authorization: Bearer`; `webhook` and `webhook_events_filter`),
https://replicate.com/docs/topics/predictions/lifecycle (statuses starting, processing, succeeded,
failed, canceled, aborted), https://replicate.com/docs/topics/webhooks/receive-webhook (the body is
the prediction as GET returns it) and https://replicate.com/docs/topics/webhooks/verify-webhook
(webhook-id, webhook-timestamp, webhook-signature with the account's `whsec_` signing secret).

Choices where the docs leave room:
- Our model id is `owner/name` for an official model or `owner/name:version` for a version.
- Inputs are model-specific: our fields go inside `input` under the names Replicate's video models
  commonly use (google/veo-3: prompt, negative_prompt, duration, aspect_ratio, resolution, seed,
  image), and our `input` is merged over them.
- Progress is not reported (only in logs, which are not parsed).
- `output` is a file URL or a list of them; the content type comes from the extension. A
  prediction that succeeded without any file URL fails with `no_output` instead of never ending.
- `canceled` fails with code `cancelled`; `aborted` (deadline passed before it started), `timeout`.

Paying once: Replicate documents no idempotency key, and predictions carry no reference of ours to
list them by (https://replicate.com/docs/reference/http#predictions.list). The prediction's webhook
names it, and its `start` event comes "immediately on prediction start"
(https://replicate.com/changelog/2023-02-10-improved-webhook-events-and-event-filtering), so an
uncertain submission is adopted within seconds. Reconciliation is `webhook`.
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel

from handlers import strictjson
from handlers.base import (
    HttpProvider,
    JobError,
    Output,
    PermanentError,
    ProviderStatus,
    Status,
    SubmitRequest,
    TransientError,
    normalize_status,
)
from handlers.http import parse, request_json
from handlers.signatures import verify_standard_webhook

DEFAULT_BASE_URL = "https://api.replicate.com"

STATUSES: dict[str, Status] = {
    "starting": "queued",
    "processing": "in_progress",
    "succeeded": "completed",
    "failed": "failed",
    "canceled": "failed",
    "aborted": "failed",
}

# Our error code for each way a prediction ends without output.
ERROR_CODES = {"failed": "generation_failed", "canceled": "cancelled", "aborted": "timeout"}
ERROR_MESSAGES = {
    "failed": "replicate reported the prediction failed",
    "canceled": "the prediction was canceled",
    "aborted": "the prediction exceeded its deadline before it started",
}

MODEL = re.compile(r"(?P<owner>[^/:]+)/(?P<name>[^/:]+)(?::(?P<version>[^/:]+))?")

FIELDS = {
    "prompt": "prompt",
    "negative_prompt": "negative_prompt",
    "aspect_ratio": "aspect_ratio",
    "resolution": "resolution",
    "seed": "seed",
    "image_url": "image",
}


class Prediction(BaseModel):
    id: str
    status: str
    # Model-specific: a file URL, a list of them, or (for non-file models) any JSON value.
    output: Any = None
    error: str | None = None

    def report(self) -> ProviderStatus:
        status = normalize_status("replicate", self.status, STATUSES)
        report = ProviderStatus(provider_job_id=self.id, status=status, raw_status=self.status)
        if status == "completed":
            report.outputs = [Output(url=url, content_type=_content_type(url)) for url in self.urls]
            if not report.outputs:
                report.status = "failed"
                message = "replicate's prediction succeeded without a file URL in its output"
                report.error = JobError(code="no_output", message=message)
        elif status == "failed":
            word = self.status.lower()
            message = self.error or ERROR_MESSAGES[word]
            report.error = JobError(code=ERROR_CODES[word], message=message)
        return report

    @property
    def urls(self) -> list[str]:
        found = self.output if isinstance(self.output, list) else [self.output]
        return [item for item in found if isinstance(item, str) and _is_url(item)]


class Handler(HttpProvider):
    name = "replicate"
    default_base_url = DEFAULT_BASE_URL
    webhooks = True
    reconciliation = "webhook"

    async def submit(self, request: SubmitRequest) -> ProviderStatus:
        url, body = self._endpoint(request.model)
        inputs = request.normalized(FIELDS)
        if request.duration is not None:
            # Video models take whole seconds as an integer; 5.0 would fail their schema.
            duration = request.duration
            inputs.setdefault("duration", int(duration) if duration.is_integer() else duration)
        body["input"] = inputs
        if request.callback_url:
            body["webhook"] = request.callback_url
            body["webhook_events_filter"] = ["start", "completed"]
        data = await request_json(self.http, "POST", url, json=body, headers=self.headers)
        return parse(Prediction, data).report()

    async def fetch_status(self, provider_job_id: str) -> ProviderStatus:
        url = f"{self.base_url}/v1/predictions/{provider_job_id}"
        data = await request_json(self.http, "GET", url, headers=self.headers)
        return parse(Prediction, data).report()

    async def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> bool:
        return verify_standard_webhook(self.secret, headers, body)

    def parse_webhook(self, body: bytes) -> ProviderStatus:
        try:
            data = strictjson.loads(body)
        except ValueError:
            raise TransientError("replicate webhook is not JSON") from None
        return parse(Prediction, data).report()

    def _endpoint(self, model: str) -> tuple[str, dict[str, Any]]:
        """Where to create the prediction, and the body's model part: `owner/name` runs the
        official model, `owner/name:version` runs that version."""
        match = MODEL.fullmatch(model)
        if match is None:
            raise PermanentError(
                f"replicate model must be owner/name or owner/name:version, not {model!r}"
            )
        if match["version"]:
            return f"{self.base_url}/v1/predictions", {"version": match["version"]}
        return f"{self.base_url}/v1/models/{match['owner']}/{match['name']}/predictions", {}


def _is_url(value: str) -> bool:
    return urlsplit(value).scheme in ("http", "https")


def _content_type(url: str) -> str:
    guessed, _ = mimetypes.guess_type(urlsplit(url).path)
    return guessed or "application/octet-stream"
