"""A Bifrost gateway's video API, from its documented payloads (tests/fixtures/bifrost)."""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from handlers.base import Status
from tests.handlers.fakes.base import API_KEY, FakeProvider, Recorded, fixture

PROGRESS: dict[Status, int] = {"queued": 0, "in_progress": 40, "completed": 100, "failed": 40}


class Fake(FakeProvider):
    name = "bifrost"
    model = "openai/sora-2"

    def __init__(self) -> None:
        super().__init__()
        # The undecoded request paths of polls: job ids must arrive percent-encoded.
        self.raw_paths: list[bytes] = []

    def routes(self) -> list[Route]:
        return [
            Route("/v1/videos", self.create, methods=["POST"]),
            # `path`: a job id may hold an encoded "/" (Gemini operation names), decoded here.
            Route("/v1/videos/{video_id:path}", self.retrieve, methods=["GET"]),
        ]

    def authenticated(self, recorded: Recorded) -> bool:
        return recorded.headers.get("authorization") == f"Bearer {API_KEY}"

    def error_body(self, message: str) -> Any:
        body = fixture("bifrost", "error")
        body["error"]["message"] = message
        return body

    async def create(self, request: Request) -> Response:
        recorded = await self.record(request)
        if answer := await self.scripted("submit"):
            return answer
        submitted = recorded.json()
        provider, _, model = str(submitted.get("model", "")).partition("/")
        video_id = f"video_{uuid.uuid4().hex[:12]}:{provider}"
        video = fixture("bifrost", "video_created") | {
            "id": video_id,
            "model": model,
            "prompt": submitted.get("prompt"),
        }
        self.jobs[video_id] = video
        return JSONResponse(video)

    async def retrieve(self, request: Request) -> Response:
        await self.record(request)
        self.raw_paths.append(request.scope["raw_path"])
        if answer := await self.scripted("status"):
            return answer
        video = self.jobs.get(request.path_params["video_id"])
        if video is None:
            return JSONResponse(self.error_body("video not found"), 404)
        return JSONResponse(video)

    def set_status(self, job_id: str, status: Status) -> None:
        video = self.jobs[job_id]
        video |= {"status": status, "progress": PROGRESS[status]}
        if status == "completed":
            video |= {"videos": fixture("bifrost", "video_completed")["videos"]}
        if status == "failed":
            video |= {"error": fixture("bifrost", "video_failed")["error"]}

    def set_raw_status(self, job_id: str, raw: str) -> None:
        self.jobs[job_id]["status"] = raw
