"""Hedra's public generations API, from its documented payloads (tests/fixtures/hedra)."""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from handlers.base import Status
from tests.handlers.fakes.base import API_KEY, FakeProvider, Recorded, fixture

WORDS: dict[Status, str] = {
    "queued": "queued",
    "in_progress": "processing",
    "completed": "complete",
    "failed": "error",
}


class Fake(FakeProvider):
    name = "hedra"
    model = "d1dd37a3-e39a-4854-a298-6510289f9cf2"
    prompt_field = "generated_video_inputs.text_prompt"

    def routes(self) -> list[Route]:
        return [
            Route("/generations", self.create, methods=["POST"]),
            Route("/generations/{generation_id}/status", self.status, methods=["GET"]),
        ]

    def authenticated(self, recorded: Recorded) -> bool:
        return recorded.headers.get("x-api-key") == API_KEY

    def error_body(self, message: str) -> Any:
        return {"detail": message}  # FastAPI's shape, which Hedra's API answers with

    async def create(self, request: Request) -> Response:
        recorded = await self.record(request)
        if answer := await self.scripted("submit"):
            return answer
        generation_id = str(uuid.uuid4())
        created = fixture("hedra", "generation_created") | recorded.json() | {"id": generation_id}
        status = fixture("hedra", "generation_status") | {
            "id": generation_id,
            "status": "queued",
            "progress": 0,
            "url": None,
            "download_url": None,
        }
        self.jobs[generation_id] = status
        return JSONResponse(created)

    async def status(self, request: Request) -> Response:
        await self.record(request)
        if answer := await self.scripted("status"):
            return answer
        job = self.jobs.get(request.path_params["generation_id"])
        return JSONResponse(job) if job else JSONResponse({"detail": "Not Found"}, 404)

    def set_status(self, job_id: str, status: Status) -> None:
        job = self.jobs[job_id]
        job["status"] = WORDS[status]
        job["progress"] = {"queued": 0, "in_progress": 0.4, "completed": 1, "failed": 0.4}[status]
        if status == "completed":
            job["download_url"] = f"https://cdn.hedra.example/{job_id}.mp4"
        if status == "failed":
            job["error_message"] = "The image could not be animated"

    def set_raw_status(self, job_id: str, raw: str) -> None:
        self.jobs[job_id]["status"] = raw
