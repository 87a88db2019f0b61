"""OpenRouter's video API, from its documented payloads (tests/fixtures/openrouter): submission,
polling, the authenticated content endpoint, and the bodies of its terminal-state webhooks. The
fake keeps the `callback_url` each submission handed it; tests sign and post the webhooks."""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from handlers.base import ProviderConfig, Status
from tests.handlers.fakes.base import API_KEY, FakeProvider, Recorded, fixture

WEBHOOK_SECRET = "openrouter-workspace-signing-secret"
# The first bytes of an MP4 (its ftyp box): what the content endpoint streams.
VIDEO_BYTES = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00isommp42"

WORDS: dict[Status, str] = {
    "queued": "pending",
    "in_progress": "in_progress",
    "completed": "completed",
    "failed": "failed",
}


class Fake(FakeProvider):
    name = "openrouter"
    model = "google/veo-3.1"

    def __init__(self) -> None:
        super().__init__()
        self.scripts["content"] = []
        self.callbacks: dict[str, str | None] = {}

    def routes(self) -> list[Route]:
        return [
            Route("/v1/videos", self.create, methods=["POST"]),
            Route("/v1/videos/{job_id}", self.poll, methods=["GET"]),
            Route("/v1/videos/{job_id}/content", self.content, methods=["GET"]),
        ]

    def authenticated(self, recorded: Recorded) -> bool:
        return recorded.headers.get("authorization") == f"Bearer {API_KEY}"

    def error_body(self, message: str) -> Any:
        body = fixture("openrouter", "error")
        body["error"]["message"] = message
        return body

    def config(self) -> ProviderConfig:
        return ProviderConfig(api_key=API_KEY, base_url=self.url, webhook_secret=WEBHOOK_SECRET)

    async def create(self, request: Request) -> Response:
        recorded = await self.record(request)
        if answer := await self.scripted("submit"):
            return answer
        job_id = uuid.uuid4().hex[:20]
        submitted = fixture("openrouter", "video_submitted") | {
            "id": job_id,
            "polling_url": f"{self.url}/v1/videos/{job_id}",
        }
        self.jobs[job_id] = dict(submitted)
        self.callbacks[job_id] = recorded.json().get("callback_url")
        return JSONResponse(submitted, 202)

    async def poll(self, request: Request) -> Response:
        await self.record(request)
        if answer := await self.scripted("status"):
            return answer
        job = self.jobs.get(request.path_params["job_id"])
        return JSONResponse(job) if job else JSONResponse(self.error_body("Not found"), 404)

    async def content(self, request: Request) -> Response:
        recorded = await self.record(request)
        if answer := await self.scripted("content"):
            return answer
        if not self.authenticated(recorded):
            return JSONResponse(self.error_body("No auth credentials found"), 401)
        job = self.jobs.get(request.path_params["job_id"])
        index = int(recorded.query.get("index", "0"))
        if job is None or index >= len(job.get("unsigned_urls", [])):
            return JSONResponse(self.error_body("Not found"), 404)
        return Response(VIDEO_BYTES, media_type="video/mp4")

    def set_status(self, job_id: str, status: Status) -> None:
        job = self.jobs[job_id]
        job["status"] = WORDS[status]
        if status == "completed":
            completed = fixture("openrouter", "video_completed")
            job |= {
                "generation_id": completed["generation_id"],
                "unsigned_urls": [f"{self.url}/v1/videos/{job_id}/content?index=0"],
                "usage": completed["usage"],
            }
        if status == "failed":
            job["error"] = fixture("openrouter", "webhook_failed")["data"]["error"]

    def set_raw_status(self, job_id: str, raw: str) -> None:
        self.jobs[job_id]["status"] = raw

    def webhook(self, job_id: str, word: str) -> dict[str, Any]:
        """The documented webhook body for the job reaching terminal status `word` (completed,
        failed, cancelled, expired). The job itself is left as it is."""
        event = fixture("openrouter", f"webhook_{word}")
        event["data"]["id"] = job_id
        if "unsigned_urls" in event["data"]:
            event["data"]["unsigned_urls"] = [f"{self.url}/v1/videos/{job_id}/content?index=0"]
        return dict(event)
