"""BytePlus ModelArk's content-generation tasks (Seedance), from the documented payloads
(tests/fixtures/seedance): task creation and the task query under /api/v3. The fake keeps each
task's `callback_url`; tests post the callbacks, which ModelArk does not sign."""

from __future__ import annotations

import secrets
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from handlers.base import ProviderConfig, Status
from tests.handlers.fakes.base import API_KEY, FakeProvider, Recorded, fixture

TASKS = "/api/v3/contents/generations/tasks"

WORDS: dict[Status, str] = {
    "queued": "queued",
    "in_progress": "running",
    "completed": "succeeded",
    "failed": "failed",
}


class Fake(FakeProvider):
    name = "seedance"
    model = "seedance-1-0-pro-250528"
    prompt_field = "content.0.text"

    def __init__(self) -> None:
        super().__init__()
        self.callbacks: dict[str, str | None] = {}

    def routes(self) -> list[Route]:
        return [
            Route(TASKS, self.create, methods=["POST"]),
            Route(TASKS + "/{task_id}", self.query, methods=["GET"]),
        ]

    def authenticated(self, recorded: Recorded) -> bool:
        return recorded.headers.get("authorization") == f"Bearer {API_KEY}"

    def error_body(self, message: str) -> Any:
        body = fixture("seedance", "error")
        body["error"]["message"] = message
        return body

    def config(self) -> ProviderConfig:
        return ProviderConfig(api_key=API_KEY, base_url=f"{self.url}/api/v3")

    async def create(self, request: Request) -> Response:
        recorded = await self.record(request)
        if not self.authenticated(recorded):
            return JSONResponse(fixture("seedance", "unauthorized"), 401)
        if answer := await self.scripted("submit"):
            return answer
        body = recorded.json()
        task_id = f"cgt-{time.strftime('%Y%m%d%H%M%S')}-{secrets.token_hex(3)}"
        now = int(time.time())
        self.jobs[task_id] = {
            "id": task_id,
            "model": body.get("model"),
            "status": "queued",
            "created_at": now,
            "updated_at": now,
        }
        self.callbacks[task_id] = body.get("callback_url")
        return JSONResponse(fixture("seedance", "task_created") | {"id": task_id})

    async def query(self, request: Request) -> Response:
        recorded = await self.record(request)
        if not self.authenticated(recorded):
            return JSONResponse(fixture("seedance", "unauthorized"), 401)
        if answer := await self.scripted("status"):
            return answer
        task = self.jobs.get(request.path_params["task_id"])
        if task is None:
            return JSONResponse(self.error_body("The specified task is not found."), 404)
        return JSONResponse(task)

    def set_status(self, job_id: str, status: Status) -> None:
        task = self.jobs[job_id]
        task["status"] = WORDS[status]
        if status == "completed":
            succeeded = fixture("seedance", "task_succeeded")
            task |= {key: succeeded[key] for key in ("content", "seed", "resolution", "ratio")}
        if status == "failed":
            task["error"] = fixture("seedance", "task_failed")["error"]

    def set_raw_status(self, job_id: str, raw: str) -> None:
        self.jobs[job_id]["status"] = raw

    def callback(self, job_id: str) -> dict[str, Any]:
        """The body ModelArk posts on a status change: the task as the query answers it."""
        return dict(self.jobs[job_id])

    def forged_completion(self, job_id: str, url: str) -> dict[str, Any]:
        """A callback body claiming the task succeeded with a video at `url`."""
        return self.callback(job_id) | {"status": "succeeded", "content": {"video_url": url}}

    def polls(self) -> int:
        return sum(1 for recorded in self.requests if recorded.method == "GET")
