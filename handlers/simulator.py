"""The simulator: a fake video provider that videohooks serves itself under /simulator, and the
handler that calls it over HTTP exactly as it calls a real provider.

A job is scripted by `input.simulate` (see `Script`). The provider job id carries the script and
the submission time, so any web process can answer a poll for it; only the `poll_errors` counter
and the scheduled webhook live in the process that took the submission (another process answers
its polls without the scripted errors). Webhooks are signed with Standard Webhooks, so a simulator
webhook is trusted once its signature verifies.

Whoever reaches the service reaches the simulator, so it is no open relay: its API answers only
the handler's credential, it calls back only this service's own receiver, and what it remembers
per job is capped (429 beyond the cap).

Submissions honour an `Idempotency-Key` header, as the idempotency keys of Stripe and of the
IETF draft do (https://datatracker.ietf.org/doc/draft-ietf-httpapi-idempotency-key-header/): the
same key answers the video it first created, so the handler's reconciliation is
`idempotency_key`. The keys, like the counters, live in the process that took the submission.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import httpx2 as httpx
from pydantic import BaseModel, Field, ValidationError
from standardwebhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from handlers import strictjson
from handlers.base import (
    HttpProvider,
    JobError,
    Output,
    ProviderStatus,
    SubmitRequest,
    TransientError,
)
from handlers.http import parse, request_json
from handlers.signatures import verify_standard_webhook

log = logging.getLogger("videohooks.simulator")

DEFAULT_BASE_URL = "http://127.0.0.1:8000/simulator"
# Jobs one process remembers (a scheduled webhook, a poll counter): a few hundred bytes each.
MAX_JOBS = 10_000
# How long a finished job's poll counter is kept while there is room.
KEEP_FINISHED_S = 60.0


class Script(BaseModel):
    outcome: Literal["completed", "failed"] = "completed"
    after_s: float = Field(default=2.0, ge=0, le=86_400)
    webhook: bool = True
    duplicates: int = Field(default=0, ge=0, le=100)
    poll_errors: int = Field(default=0, ge=0, le=1000)
    error_message: str = Field(default="simulated failure", max_length=1000)


class SimVideo(BaseModel):
    """The simulator's job object, on polls and in webhooks."""

    id: str
    object: Literal["video"] = "video"
    status: Literal["queued", "in_progress", "completed", "failed"]
    progress: int
    model: str
    created_at: float
    outputs: list[Output] = Field(default_factory=list)
    error: JobError | None = None

    def report(self) -> ProviderStatus:
        return ProviderStatus(
            provider_job_id=self.id,
            status=self.status,
            progress=self.progress,
            outputs=self.outputs,
            error=self.error,
            raw_status=self.status,
        )


class Handler(HttpProvider):
    name = "simulator"
    default_base_url = DEFAULT_BASE_URL
    webhooks = True
    reconciliation = "idempotency_key"

    @property
    def configured(self) -> bool:
        return True

    async def submit(self, request: SubmitRequest) -> ProviderStatus:
        body = {
            "model": request.model,
            "prompt": request.prompt,
            "simulate": request.input.get("simulate", {}),
            "callback_url": request.callback_url,
        }
        headers = self.headers | (
            {"idempotency-key": request.reference} if request.reference else {}
        )
        url = f"{self.base_url}/v1/videos"
        data = await request_json(self.http, "POST", url, json=body, headers=headers)
        return parse(SimVideo, data).report()

    async def fetch_status(self, provider_job_id: str) -> ProviderStatus:
        url = f"{self.base_url}/v1/videos/{provider_job_id}"
        data = await request_json(self.http, "GET", url, headers=self.headers)
        return parse(SimVideo, data).report()

    async def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> bool:
        return verify_standard_webhook(self.secret, headers, body)

    def parse_webhook(self, body: bytes) -> ProviderStatus:
        try:
            data = strictjson.loads(body)
        except ValueError:
            raise TransientError("simulator webhook is not JSON") from None
        return parse(SimVideo, data).report()


@dataclass
class _Tracked:
    """A job this process took: when it ends, and how often it was polled."""

    ends_at: float
    polls: int = 0
    idempotency_key: str | None = None


class SimulatorServer:
    """The fake provider's HTTP API, mounted by the service at /simulator.

    `api_keys` are the credentials its /v1 routes accept (the handler sends the first);
    `own_receiver` tells whether a callback URL is this service's receiver for a simulator job;
    at most `max_jobs` jobs are remembered at once."""

    def __init__(
        self,
        api_keys: Collection[str],
        webhook_secret: str,
        public_base_url: str,
        own_receiver: Callable[[str], bool],
        max_jobs: int = MAX_JOBS,
    ) -> None:
        self.api_keys = [key.encode() for key in api_keys]
        self.signer = Webhook(webhook_secret)
        self.public_base_url = public_base_url.rstrip("/")
        self.own_receiver = own_receiver
        self.max_jobs = max_jobs
        self.jobs: dict[str, _Tracked] = {}
        # Idempotency-Key → the video it created, for as long as that job is remembered.
        self.by_key: dict[str, str] = {}
        self.pending: set[asyncio.Task[None]] = set()
        self._http: httpx.AsyncClient | None = None
        self.app = Starlette(
            routes=[
                Route("/v1/videos", self.create, methods=["POST"]),
                Route("/v1/videos/{video_id}", self.retrieve, methods=["GET"]),
                Route("/files/{video_id}.mp4", self.file, methods=["GET"]),
            ]
        )

    @property
    def poll_counts(self) -> dict[str, int]:
        """Polls per job, for the jobs this process took and still remembers."""
        return {video_id: job.polls for video_id, job in self.jobs.items() if job.polls}

    async def aclose(self) -> None:
        for task in list(self.pending):
            task.cancel()
        await asyncio.gather(*self.pending, return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()

    async def create(self, request: Request) -> Response:
        if not self._authorized(request):
            return _unauthorized()
        try:
            payload = strictjson.loads(await request.body())
            script = Script.model_validate(payload.get("simulate") or {})
            model = str(payload.get("model") or "default")
        except (ValueError, AttributeError, ValidationError) as exc:
            message = str(exc).splitlines()[0] if str(exc) else "invalid request"
            return _error(400, "invalid_request", f"invalid simulate: {message}")
        key = request.headers.get("idempotency-key")
        if key is not None and key in self.by_key:
            return JSONResponse(self._video(self.by_key[key]).model_dump(mode="json"))
        callback_url = payload.get("callback_url")
        if callback_url and not (isinstance(callback_url, str) and self.own_receiver(callback_url)):
            message = "the simulator calls back only this service's own receiver"
            details = [{"field": "callback_url", "message": message}]
            return _error(422, "invalid_request", f"callback_url: {message}", details)
        if not self._room():
            return _error(
                429,
                "rate_limited",
                f"the simulator holds {self.max_jobs} unfinished jobs, its limit; retry later",
                {"limit": self.max_jobs},
                {"retry-after": "5"},
            )
        now = time.time()
        video_id = _encode_id(model, now, script)
        self.jobs[video_id] = _Tracked(ends_at=now + script.after_s, idempotency_key=key)
        if key is not None:
            self.by_key[key] = video_id
        if callback_url and script.webhook:
            task = asyncio.create_task(self._send_webhooks(video_id, callback_url, script))
            self.pending.add(task)
            task.add_done_callback(self.pending.discard)
        return JSONResponse(self._video(video_id).model_dump(mode="json"), status_code=200)

    async def retrieve(self, request: Request) -> Response:
        if not self._authorized(request):
            return _unauthorized()
        video_id = request.path_params["video_id"]
        try:
            _, _, script = _decode_id(video_id)
        except ValueError:
            return _error(404, "not_found", "no such video")
        # Only jobs this process took are counted: a forged or foreign id adds nothing.
        job = self.jobs.get(video_id)
        if job is not None:
            job.polls += 1
            if job.polls <= script.poll_errors:
                return _error(503, "unavailable", "simulated outage", headers={"retry-after": "1"})
        return JSONResponse(self._video(video_id).model_dump(mode="json"))

    def _authorized(self, request: Request) -> bool:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        offered = key.strip().encode("latin-1")
        return scheme.lower() == "bearer" and any(
            hmac.compare_digest(offered, known) for known in self.api_keys
        )

    def _room(self) -> bool:
        """Whether another job may be remembered, forgetting long-finished ones when full."""
        if len(self.jobs) < self.max_jobs:
            return True
        cutoff = time.time() - KEEP_FINISHED_S
        for video_id in [video_id for video_id, job in self.jobs.items() if job.ends_at < cutoff]:
            forgotten = self.jobs.pop(video_id)
            if forgotten.idempotency_key is not None:
                del self.by_key[forgotten.idempotency_key]
        return len(self.jobs) < self.max_jobs

    async def file(self, request: Request) -> Response:
        return Response(b"\x00\x00\x00\x18ftypmp42", media_type="video/mp4")

    def _video(self, video_id: str, elapsed: float | None = None) -> SimVideo:
        model, created_at, script = _decode_id(video_id)
        if elapsed is None:
            elapsed = time.time() - created_at
        video = SimVideo(
            id=video_id, status="queued", progress=0, model=model, created_at=created_at
        )
        if elapsed >= script.after_s:
            video.progress = 100
            video.status = script.outcome
            if script.outcome == "completed":
                url = f"{self.public_base_url}/files/{video_id}.mp4"
                video.outputs = [Output(url=url, content_type="video/mp4")]
            else:
                video.error = JobError(code="generation_failed", message=script.error_message)
        elif elapsed >= script.after_s * 0.05:
            video.status = "in_progress"
            # Rounded, as providers' fractions are (normalize_progress): an estimate made from it
            # is early as often as late.
            video.progress = min(99, round(100 * elapsed / script.after_s))
        return video

    async def _send_webhooks(self, video_id: str, url: str, script: Script) -> None:
        _, created_at, _ = _decode_id(video_id)
        await asyncio.sleep(max(0.0, created_at + script.after_s - time.time()))
        body = json.dumps(self._video(video_id, elapsed=script.after_s).model_dump(mode="json"))
        message_id = f"msg_{secrets.token_hex(8)}"
        copies = [self._send_one(url, message_id, body) for _ in range(1 + script.duplicates)]
        await asyncio.gather(*copies)

    async def _send_one(self, url: str, message_id: str, body: str) -> None:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=10.0)
        for attempt in range(3):
            now = time.time()
            headers = {
                "webhook-id": message_id,
                "webhook-timestamp": str(int(now)),
                "webhook-signature": self.signer.sign(
                    message_id, datetime.fromtimestamp(now, UTC), body
                ),
                "content-type": "application/json",
            }
            try:
                response = await self._http.post(url, content=body, headers=headers)
                if response.is_success:
                    return
                log.info("simulator webhook refused", extra={"status": response.status_code})
            except httpx.TransportError as exc:
                log.info("simulator webhook failed", extra={"error": type(exc).__name__})
            await asyncio.sleep(0.5 * 2**attempt)


def _error(
    status: int,
    code: str,
    message: str,
    details: object = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "details": details}}
    return JSONResponse(body, status_code=status, headers=headers)


def _unauthorized() -> JSONResponse:
    message = "the simulator needs its credential: Authorization: Bearer <key>"
    return _error(401, "unauthorized", message, headers={"www-authenticate": "Bearer"})


def _encode_id(model: str, created_at: float, script: Script) -> str:
    state = {
        "m": model,
        "t": round(created_at, 3),
        "n": secrets.token_hex(3),
        "s": script.model_dump(exclude_defaults=True),
    }
    raw = json.dumps(state, separators=(",", ":")).encode()
    return "sim_" + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_id(video_id: str) -> tuple[str, float, Script]:
    if not video_id.startswith("sim_"):
        raise ValueError("not a simulator id")
    raw = video_id.removeprefix("sim_")
    try:
        state = strictjson.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        return str(state["m"]), float(state["t"]), Script.model_validate(state["s"])
    except (ValueError, KeyError, TypeError, ValidationError):
        raise ValueError("not a simulator id") from None
