"""Runway's task API, from its documented payloads (tests/fixtures/runway): the two create
endpoints and GET /v1/tasks/{id}, behind a Bearer key and the version header."""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from handlers.base import Status
from tests.handlers.fakes.base import API_KEY, FakeProvider, Recorded, fixture

VERSION = "2024-11-06"

FIXTURES: dict[Status, str] = {
    "queued": "task_pending",
    "in_progress": "task_running",
    "completed": "task_succeeded",
    "failed": "task_failed",
}


class Fake(FakeProvider):
    name = "runway"
    model = "gen4_turbo"
    prompt_field = "promptText"

    def routes(self) -> list[Route]:
        return [
            Route("/v1/text_to_video", self.create, methods=["POST"]),
            Route("/v1/image_to_video", self.create, methods=["POST"]),
            Route("/v1/tasks/{task_id}", self.task, methods=["GET"]),
        ]

    def authenticated(self, recorded: Recorded) -> bool:
        return (
            recorded.headers.get("authorization") == f"Bearer {API_KEY}"
            and recorded.headers.get("x-runway-version") == VERSION
        )

    def error_body(self, message: str) -> Any:
        return fixture("runway", "error") | {"error": message}

    async def create(self, request: Request) -> Response:
        await self.record(request)
        if answer := await self.scripted("submit"):
            return answer
        task_id = str(uuid.uuid4())
        self.jobs[task_id] = fixture("runway", "task_pending") | {"id": task_id}
        return JSONResponse(fixture("runway", "task_created") | {"id": task_id})

    async def task(self, request: Request) -> Response:
        await self.record(request)
        if answer := await self.scripted("status"):
            return answer
        task = self.jobs.get(request.path_params["task_id"])
        if task is None:
            return JSONResponse(self.error_body("Task not found"), 404)
        return JSONResponse(task)

    def set_status(self, job_id: str, status: Status) -> None:
        self.jobs[job_id] = fixture("runway", FIXTURES[status]) | {"id": job_id}
        if status == "completed":
            self.jobs[job_id]["output"] = [f"https://cdn.runway.example/{job_id}.mp4"]

    def set_raw_status(self, job_id: str, raw: str) -> None:
        self.jobs[job_id]["status"] = raw
