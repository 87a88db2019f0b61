"""fal: the queue API, with per-request webhooks signed with Ed25519 keys published as a JWKS.

Documented at https://docs.fal.ai/model-endpoints/queue (submit `POST {base}/{model_id}` →
`{request_id, response_url, status_url, cancel_url}`; status
`GET {base}/{app_id}/requests/{request_id}/status`: IN_QUEUE, IN_PROGRESS, COMPLETED; result
`GET {base}/{app_id}/requests/{request_id}`; `Authorization: Key <key>`),
https://docs.fal.ai/model-endpoints/webhooks (the `fal_webhook` query parameter; a POST of
`{request_id, gateway_request_id, status: OK|ERROR, payload, error}` when the request is done,
retried 10 times over 2 hours; the signature checked below) and https://docs.fal.ai/errors
(errors as `{"detail": [{"loc", "msg", "type"}]}`).

Readings where the docs leave room:
- The app id is the model id's first two segments: a subpath (".../v2/master/text-to-video") is
  used to submit but "not when getting request status or results". Our provider job id is
  "{app_id}/requests/{request_id}", the request's path on the queue, so a poll needs nothing else.
- COMPLETED does not mean succeeded: the result of a failed request answers with an error, which
  is reported as failed with fal's own message.
- `duration` goes as seconds in a string ("5"), the type fal's Kling video models declare;
  models that want another form ("8s") take it through `input`.
- A webhook body names the request_id but not the app; our provider job id ends with it, which is
  how the core matches the two (`names_job`). A verified body is applied as it is: OK with the
  video in `payload`, ERROR with fal's message.

Paying once: fal documents no idempotency key (its request headers:
https://docs.fal.ai/documentation/model-apis/common-parameters), and its request history
(https://fal.ai/docs/platform-apis/v1/models/requests/by-endpoint) lists requests by endpoint and
time, not by a reference of ours. The fal_webhook names the request: reconciliation is
`webhook`, and `adopted_job_id` rebuilds our composite id from the request id it carries.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import math
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx2 as httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel

from handlers import strictjson
from handlers.base import (
    HttpProvider,
    JobError,
    Output,
    PermanentError,
    ProviderConfig,
    ProviderError,
    ProviderStatus,
    Status,
    SubmitRequest,
    TransientError,
    WebhookRejected,
    normalize_status,
)
from handlers.http import message_in, parse, request_json

DEFAULT_BASE_URL = "https://queue.fal.run"
DEFAULT_JWKS_URL = "https://rest.alpha.fal.ai/.well-known/jwks.json"

STATUSES: dict[str, Status] = {
    "in_queue": "queued",
    "in_progress": "in_progress",
    "completed": "completed",
}

# `duration` is not here: it is sent as a string (see the module docstring).
FIELDS = {
    "prompt": "prompt",
    "negative_prompt": "negative_prompt",
    "resolution": "resolution",
    "aspect_ratio": "aspect_ratio",
    "seed": "seed",
    "image_url": "image_url",
}

SIGNATURE_HEADERS = (
    "x-fal-webhook-request-id",
    "x-fal-webhook-user-id",
    "x-fal-webhook-timestamp",
    "x-fal-webhook-signature",
)
TIMESTAMP_TOLERANCE_S = 300
KEYS_TTL_S = 24 * 3600
# A signature no cached key verifies may come from a key fal has just rotated in, or be forged;
# refreshing for it at most this often keeps a flood of forgeries off fal's JWKS URL.
FORCED_REFRESH_INTERVAL_S = 60.0


def app_id(model: str) -> str:
    """The app a model's requests are queued under: its owner and name, without the subpath."""
    return "/".join(model.split("/")[:2])


class Submitted(BaseModel):
    request_id: str


class QueueStatus(BaseModel):
    status: str

    def report(self, provider_job_id: str) -> ProviderStatus:
        return ProviderStatus(
            provider_job_id=provider_job_id,
            status=normalize_status("fal", self.status, STATUSES),
            raw_status=self.status,
        )


class File(BaseModel):
    url: str
    content_type: str | None = None


class Result(BaseModel):
    """A video model's output, e.g. Kling's `{"video": {"url", "content_type", ...}}`."""

    video: File | None = None

    def report(self, provider_job_id: str) -> ProviderStatus:
        if self.video is None:
            return failed(provider_job_id, "fal's result has no video")
        output = Output(url=self.video.url, content_type=self.video.content_type or "video/mp4")
        return ProviderStatus(
            provider_job_id=provider_job_id,
            status="completed",
            outputs=[output],
            raw_status="COMPLETED",
        )


def failed(provider_job_id: str, message: str) -> ProviderStatus:
    return ProviderStatus(
        provider_job_id=provider_job_id,
        status="failed",
        error=JobError(code="generation_failed", message=message),
        raw_status="COMPLETED",
    )


class WebhookBody(BaseModel):
    request_id: str
    status: str  # OK or ERROR
    payload: Any = None
    error: str | None = None


class Jwk(BaseModel):
    kty: str
    crv: str | None = None
    x: str | None = None

    def public_key(self) -> Ed25519PublicKey | None:
        """The key when it is an Ed25519 one (OKP, `x` in unpadded base64url), else None."""
        if self.kty != "OKP" or self.crv != "Ed25519" or self.x is None:
            return None
        try:
            raw = base64.urlsafe_b64decode(self.x + "=" * (-len(self.x) % 4))
            return Ed25519PublicKey.from_public_bytes(raw)
        except ValueError:
            return None


class Jwks(BaseModel):
    keys: list[Jwk]

    def public_keys(self) -> list[Ed25519PublicKey]:
        return [key for jwk in self.keys if (key := jwk.public_key()) is not None]


class SigningKeys:
    """fal's webhook public keys, fetched from its JWKS and cached for a day."""

    def __init__(self, url: str, http: httpx.AsyncClient) -> None:
        self.url = url
        self.http = http
        self.keys: list[Ed25519PublicKey] = []
        self.fetched_at = -math.inf
        self.forced_at = -math.inf
        self.lock = asyncio.Lock()

    async def verify(self, signature: bytes, message: bytes) -> bool:
        """Whether one of fal's keys signed `message`; raises ProviderError when the keys cannot
        be fetched. Fetches them at most once per call: when a day old, or when no cached key
        verifies (fal rotates its keys), the latter at most every FORCED_REFRESH_INTERVAL_S."""
        expired = time.monotonic() - self.fetched_at > KEYS_TTL_S
        if expired:
            await self._refresh(self.fetched_at)
        if self._verifies(signature, message):
            return True
        if expired or time.monotonic() - self.forced_at < FORCED_REFRESH_INTERVAL_S:
            return False
        self.forced_at = time.monotonic()
        await self._refresh(self.fetched_at)
        return self._verifies(signature, message)

    def _verifies(self, signature: bytes, message: bytes) -> bool:
        for key in self.keys:
            try:
                key.verify(signature, message)
            except InvalidSignature:
                continue
            return True
        return False

    async def _refresh(self, seen: float) -> None:
        async with self.lock:
            if self.fetched_at != seen:
                return  # another verification fetched them while this one waited
            # No credential: the key set is public, and the URL may be overridden.
            self.keys = parse(Jwks, await request_json(self.http, "GET", self.url)).public_keys()
            self.fetched_at = time.monotonic()


class Handler(HttpProvider):
    name = "fal"
    default_base_url = DEFAULT_BASE_URL
    webhooks = True
    reconciliation = "webhook"
    auth_scheme = "Key "
    option_names = frozenset({"JWKS_URL"})

    def __init__(self, config: ProviderConfig, http: httpx.AsyncClient) -> None:
        super().__init__(config, http)
        self.signing_keys = SigningKeys(config.options.get("JWKS_URL", DEFAULT_JWKS_URL), http)

    async def submit(self, request: SubmitRequest) -> ProviderStatus:
        body = request.normalized(FIELDS)
        if request.duration is not None:
            body.setdefault("duration", f"{request.duration:g}")
        params = {"fal_webhook": request.callback_url} if request.callback_url else {}
        url = f"{self.base_url}/{quote(request.model, safe='/')}"
        data = await request_json(
            self.http, "POST", url, json=body, params=params, headers=self.headers
        )
        request_id = parse(Submitted, data).request_id
        return ProviderStatus(
            provider_job_id=f"{app_id(request.model)}/requests/{request_id}",
            status="queued",
            raw_status="IN_QUEUE",
        )

    def adopted_job_id(self, request: SubmitRequest, reported: str) -> str:
        return f"{app_id(request.model)}/requests/{reported}"

    async def fetch_status(self, provider_job_id: str) -> ProviderStatus:
        url = f"{self.base_url}/{quote(provider_job_id, safe='/')}"
        data = await request_json(self.http, "GET", f"{url}/status", headers=self.headers)
        report = parse(QueueStatus, data).report(provider_job_id)
        if report.status != "completed":
            return report
        try:
            result = await request_json(self.http, "GET", url, headers=self.headers)
        except PermanentError as exc:
            return failed(provider_job_id, exc.message)
        return parse(Result, result).report(provider_job_id)

    async def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> bool:
        """fal signs every webhook: Ed25519 over "{request_id}\\n{user_id}\\n{timestamp}\\n{sha256
        hex of the body}" with one of the keys of its JWKS, the signature in hex."""
        lowered = {key.lower(): value for key, value in headers.items()}
        missing = [name for name in SIGNATURE_HEADERS if not lowered.get(name)]
        if missing:
            raise WebhookRejected(f"fal webhooks are signed; missing {', '.join(missing)}")
        request_id, user_id, timestamp, signature = (lowered[name] for name in SIGNATURE_HEADERS)
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > TIMESTAMP_TOLERANCE_S:
            raise WebhookRejected("webhook timestamp is not within 5 minutes of now")
        try:
            signature_bytes = bytes.fromhex(signature)
        except ValueError:
            raise WebhookRejected("webhook signature is not hex") from None
        digest = hashlib.sha256(body).hexdigest()
        message = "\n".join((request_id, user_id, timestamp, digest)).encode()
        try:
            verified = await self.signing_keys.verify(signature_bytes, message)
        except ProviderError as exc:
            raise WebhookRejected(f"fal's webhook keys are unavailable: {exc.message}") from None
        if not verified:
            raise WebhookRejected("webhook signature does not verify")
        return True

    def parse_webhook(self, body: bytes) -> ProviderStatus:
        try:
            data = strictjson.loads(body)
        except ValueError:
            raise TransientError("fal webhook is not JSON") from None
        hook = parse(WebhookBody, data)
        if hook.status == "OK":
            return parse(Result, hook.payload or {}).report(hook.request_id)
        # The payload carries the model's own message; `error` is only "Invalid status code: …".
        message = message_in(hook.payload) or hook.error or "fal reported an error"
        return failed(hook.request_id, message)
