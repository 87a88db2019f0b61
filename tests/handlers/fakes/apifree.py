"""APIFree's video API, from its documented payloads (tests/fixtures/apifree): submissions as JSON
or multipart/form-data, polls, and the OpenAI-style content route the handler downloads the
video from (APIFree's docs do not describe one; see handlers/apifree.py). Errors use the base
fake's OpenAI-style body, as APIFree documents no error body."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from email import policy
from email.parser import BytesParser
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from handlers.base import Status
from tests.handlers.fakes.base import API_KEY, FakeProvider, Recorded, fixture

EXAMPLES: dict[Status, str] = {
    "queued": "video_created",
    "in_progress": "video_in_progress",
    "completed": "video_completed",
    "failed": "video_failed",
}
VIDEO = b"\x00\x00\x00\x18ftypmp42 a rendered video"


@dataclass(frozen=True)
class Upload:
    filename: str
    content_type: str
    data: bytes


def form_fields(content_type: str, body: bytes) -> dict[str, Any]:
    """A multipart/form-data body as the provider reads it: text fields as str, files as Upload.
    Parsed with the standard library's MIME parser, because Starlette's request.form() needs
    python-multipart, which is not installed."""
    head = f"content-type: {content_type}\r\n\r\n".encode()
    message = BytesParser(policy=policy.HTTP).parsebytes(head + body)
    fields: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        data = part.get_payload(decode=True)
        filename = part.get_filename()
        if filename is None:
            fields[name] = data.decode()
        else:
            fields[name] = Upload(filename, part.get_content_type(), data)
    return fields


class Fake(FakeProvider):
    name = "apifree"
    model = "video-model-id"

    def __init__(self) -> None:
        super().__init__()
        self.scripts["content"] = []

    def routes(self) -> list[Route]:
        return [
            Route("/v1/videos", self.create, methods=["POST"]),
            Route("/v1/videos/{task_id}", self.status, methods=["GET"]),
            Route("/v1/videos/{task_id}/content", self.content, methods=["GET"]),
        ]

    def authenticated(self, recorded: Recorded) -> bool:
        return recorded.headers.get("authorization") == f"Bearer {API_KEY}"

    def submitted(self, recorded: Recorded) -> dict[str, Any]:
        content_type = recorded.headers.get("content-type", "")
        if content_type.startswith("multipart/form-data"):
            return form_fields(content_type, recorded.body)
        return dict(recorded.json())

    async def create(self, request: Request) -> Response:
        recorded = await self.record(request)
        if answer := await self.scripted("submit"):
            return answer
        fields = self.submitted(recorded)
        task_id = f"video_{uuid.uuid4().hex[:12]}"
        requested = {key: fields[key] for key in ("model", "seconds", "size") if key in fields}
        self.jobs[task_id] = fixture("apifree", "video_created") | requested | {"id": task_id}
        return JSONResponse(self.jobs[task_id])

    async def status(self, request: Request) -> Response:
        await self.record(request)
        if answer := await self.scripted("status"):
            return answer
        task = self.jobs.get(request.path_params["task_id"])
        return JSONResponse(task) if task else JSONResponse(self.error_body("Task not found"), 404)

    async def content(self, request: Request) -> Response:
        await self.record(request)
        if answer := await self.scripted("content"):
            return answer
        task = self.jobs.get(request.path_params["task_id"])
        if task is None or task["status"] != "completed":
            return JSONResponse(self.error_body("Video is not ready"), 404)
        return Response(VIDEO, media_type="video/mp4")

    def set_status(self, job_id: str, status: Status) -> None:
        self.jobs[job_id] = fixture("apifree", EXAMPLES[status]) | {"id": job_id}

    def set_raw_status(self, job_id: str, raw: str) -> None:
        self.jobs[job_id]["status"] = raw
