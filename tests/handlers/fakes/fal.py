"""fal's queue API, from its documented payloads (tests/fixtures/fal), and fal's side of webhook
signing: Ed25519 private keys generated here with `cryptography`, their public halves served as
fal's JWKS, and webhook bodies signed the way fal's documentation describes, independently of the
handler's verifier."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from handlers.base import ProviderConfig, Status
from tests.handlers.fakes.base import API_KEY, FakeProvider, Recorded, fixture

JWKS_PATH = "/.well-known/jwks.json"
USER_ID = "d8c4f5a2-5b7e-4c1a-9e3f-2a6b1c0d9e87"

WORDS: dict[Status, str] = {
    "queued": "IN_QUEUE",
    "in_progress": "IN_PROGRESS",
    "completed": "COMPLETED",
    "failed": "COMPLETED",  # a failed request is completed; its result is the error
}
STATUS_FIXTURES = {
    "IN_QUEUE": "status_in_queue",
    "IN_PROGRESS": "status_in_progress",
    "COMPLETED": "status_completed",
}


class Fake(FakeProvider):
    name = "fal"
    model = "fal-ai/kling-video/v2/master/text-to-video"
    app = "fal-ai/kling-video"

    def __init__(self) -> None:
        super().__init__()
        self.scripts["result"] = []
        self.signing_keys = [Ed25519PrivateKey.generate()]
        # The fal_webhook URL each request was submitted with, by request_id.
        self.callbacks: dict[str, str] = {}

    def routes(self) -> list[Route]:
        return [
            Route(JWKS_PATH, self.jwks, methods=["GET"]),
            Route("/{app:path}/requests/{request_id}/status", self.status, methods=["GET"]),
            Route("/{app:path}/requests/{request_id}", self.result, methods=["GET"]),
            Route("/{model:path}", self.submit, methods=["POST"]),
        ]

    def authenticated(self, recorded: Recorded) -> bool:
        return recorded.headers.get("authorization") == f"Key {API_KEY}"

    def error_body(self, message: str) -> Any:
        return {"detail": [{"loc": ["body", "prompt"], "msg": message, "type": "value_error"}]}

    def config(self) -> ProviderConfig:
        jwks_url = self.url + JWKS_PATH
        return ProviderConfig(api_key=API_KEY, base_url=self.url, options={"JWKS_URL": jwks_url})

    # -- the queue API ---------------------------------------------------------------------

    async def submit(self, request: Request) -> Response:
        recorded = await self.record(request)
        if answer := await self.scripted("submit"):
            return answer
        request_id = str(uuid.uuid4())
        # Status and result live under the app: the model id without its subpath.
        app = "/".join(request.path_params["model"].split("/")[:2])
        path = f"{self.url}/{app}/requests/{request_id}"
        if "fal_webhook" in recorded.query:
            self.callbacks[request_id] = recorded.query["fal_webhook"]
        self.jobs[request_id] = {"app": app, "status": {}, "result": None}
        self.set_status(request_id, "queued")
        submitted = fixture("fal", "queue_submitted") | {
            "request_id": request_id,
            "response_url": path,
            "status_url": f"{path}/status",
            "cancel_url": f"{path}/cancel",
        }
        return JSONResponse(submitted)

    async def status(self, request: Request) -> Response:
        await self.record(request)
        if answer := await self.scripted("status"):
            return answer
        job = self._job(request)
        return JSONResponse(job["status"]) if job else _not_found()

    async def result(self, request: Request) -> Response:
        await self.record(request)
        if answer := await self.scripted("result"):
            return answer
        job = self._job(request)
        if job is None or job["result"] is None:
            return _not_found()
        code, body = job["result"]
        return JSONResponse(body, code)

    async def jwks(self, request: Request) -> Response:
        await self.record(request)
        template = fixture("fal", "jwks")["keys"][0]
        keys = [template | {"x": _base64url(key)} for key in self.signing_keys]
        return JSONResponse({"keys": keys})

    def _job(self, request: Request) -> dict[str, Any] | None:
        job = self.jobs.get(request.path_params["request_id"])
        return job if job and job["app"] == request.path_params["app"] else None

    def set_status(self, job_id: str, status: Status) -> None:
        job = self.jobs[job_id]
        word = WORDS[status]
        response_url = f"{self.url}/{job['app']}/requests/{job_id}"
        job["status"] = fixture("fal", STATUS_FIXTURES[word]) | {"response_url": response_url}
        job["result"] = {
            "completed": (200, fixture("fal", "result_video")),
            "failed": (422, fixture("fal", "result_error")),
        }.get(status)

    def set_raw_status(self, job_id: str, raw: str) -> None:
        self.jobs[job_id]["status"]["status"] = raw

    # -- fal's webhooks ----------------------------------------------------------------------

    def webhook(
        self, request_id: str, key: Ed25519PrivateKey | None = None, at: float | None = None
    ) -> tuple[bytes, dict[str, str]]:
        """The webhook fal POSTs when the (completed or failed) request is done, signed."""
        code, result = self.jobs[request_id]["result"]
        template = fixture("fal", "webhook_ok" if code == 200 else "webhook_error")
        body = template | {
            "request_id": request_id,
            "gateway_request_id": request_id,
            "payload": result,
        }
        raw = json.dumps(body).encode()
        return raw, self.sign(request_id, raw, key, at)

    def sign(
        self,
        request_id: str,
        body: bytes,
        key: Ed25519PrivateKey | None = None,
        at: float | None = None,
    ) -> dict[str, str]:
        """fal's signature headers: Ed25519 over request id, user id, timestamp and the body's
        SHA-256, one per line, by `key` (default: fal's current key)."""
        timestamp = str(int(time.time() if at is None else at))
        message = "\n".join((request_id, USER_ID, timestamp, hashlib.sha256(body).hexdigest()))
        signature = (key or self.signing_keys[-1]).sign(message.encode())
        return {
            "x-fal-webhook-request-id": request_id,
            "x-fal-webhook-user-id": USER_ID,
            "x-fal-webhook-timestamp": timestamp,
            "x-fal-webhook-signature": signature.hex(),
            "content-type": "application/json",
        }

    def rotate(self) -> None:
        """fal replaces its signing key; its JWKS serves only the new one."""
        self.signing_keys = [Ed25519PrivateKey.generate()]

    def jwks_fetches(self) -> int:
        return sum(1 for recorded in self.requests if recorded.path == JWKS_PATH)

    def polls(self, request_id: str) -> int:
        suffix = f"/requests/{request_id}/status"
        return sum(1 for recorded in self.requests if recorded.path.endswith(suffix))


def _base64url(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _not_found() -> Response:
    return JSONResponse({"detail": "Not Found"}, 404)
