"""NanoGPT's video API, from its documented payloads (tests/fixtures/nanogpt). Jobs answer in the
nested shape of the status page's examples; tests put the flat schema shape in by hand."""

from __future__ import annotations

import copy
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from handlers.base import Status
from tests.handlers.fakes.base import API_KEY, FakeProvider, Recorded, fixture

# The documented example each normalized status is shown with, and the word it carries.
EXAMPLES: dict[Status, tuple[str, str]] = {
    "queued": ("status_in_progress", "IN_QUEUE"),
    "in_progress": ("status_in_progress", "IN_PROGRESS"),
    "completed": ("status_completed", "COMPLETED"),
    "failed": ("status_failed", "FAILED"),
}


def status_payload(job_id: str, status: Status) -> dict[str, Any]:
    name, word = EXAMPLES[status]
    payload = copy.deepcopy(fixture("nanogpt", name))
    payload["requestId"] = payload["data"]["requestId"] = job_id
    payload["data"]["status"] = word
    return payload


class Fake(FakeProvider):
    name = "nanogpt"
    model = "veo2-video"

    def routes(self) -> list[Route]:
        return [
            Route("/generate-video", self.create, methods=["POST"]),
            Route("/video/status", self.status, methods=["GET"]),
        ]

    def authenticated(self, recorded: Recorded) -> bool:
        return recorded.headers.get("x-api-key") == API_KEY

    def error_body(self, message: str) -> Any:
        documented = fixture("nanogpt", "error")
        return documented | {"error": documented["error"] | {"message": message}}

    async def create(self, request: Request) -> Response:
        recorded = await self.record(request)
        if answer := await self.scripted("submit"):
            return answer
        job_id = f"vid_{uuid.uuid4().hex[:14]}"
        self.jobs[job_id] = status_payload(job_id, "queued")
        created = fixture("nanogpt", "generate_video_created") | {
            "runId": job_id,
            "id": job_id,
            "model": recorded.json().get("model"),
        }
        return JSONResponse(created)

    async def status(self, request: Request) -> Response:
        await self.record(request)
        if answer := await self.scripted("status"):
            return answer
        job = self.jobs.get(request.query_params.get("requestId", ""))
        return JSONResponse(job) if job else JSONResponse(self.error_body("Job not found"), 404)

    def set_status(self, job_id: str, status: Status) -> None:
        self.jobs[job_id] = status_payload(job_id, status)

    def set_raw_status(self, job_id: str, raw: str) -> None:
        self.jobs[job_id]["data"]["status"] = raw
