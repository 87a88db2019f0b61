"""OpenAI's Videos API, from its documented payloads (tests/fixtures/openai): create, retrieve,
the authenticated MP4 download, and the thin project webhook body."""

from __future__ import annotations

import base64
import secrets
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from handlers.base import ProviderConfig, Status
from tests.handlers.fakes.base import API_KEY, FakeProvider, Recorded, fixture

WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"openai-project-webhook-secret!!").decode()
MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" * 64

PROGRESS: dict[Status, int] = {"queued": 0, "in_progress": 33, "completed": 100, "failed": 33}


class Fake(FakeProvider):
    name = "openai"
    model = "sora-2"

    def __init__(self) -> None:
        super().__init__()
        self.scripts["content"] = []

    def routes(self) -> list[Route]:
        return [
            Route("/v1/videos", self.create, methods=["POST"]),
            Route("/v1/videos/{video_id}", self.retrieve, methods=["GET"]),
            Route("/v1/videos/{video_id}/content", self.download, methods=["GET"]),
        ]

    def authenticated(self, recorded: Recorded) -> bool:
        return recorded.headers.get("authorization") == f"Bearer {API_KEY}"

    def error_body(self, message: str) -> Any:
        # The OpenAI error object, as the SDKs' APIError reads it.
        return {"error": {"message": message, "type": "invalid_request_error", "param": None}}

    def config(self) -> ProviderConfig:
        return ProviderConfig(api_key=API_KEY, base_url=self.url, webhook_secret=WEBHOOK_SECRET)

    async def create(self, request: Request) -> Response:
        recorded = await self.record(request)
        if answer := await self.scripted("submit"):
            return answer
        submitted = recorded.json()
        video = fixture("openai", "video_object") | fixture("openai", "video_created")
        video |= {
            "id": f"video_{secrets.token_hex(24)}",
            "model": submitted.get("model", "sora-2"),
            "prompt": submitted.get("prompt"),
            "completed_at": None,
            "expires_at": None,
            "error": None,
            "remixed_from_video_id": None,
        }
        self.jobs[video["id"]] = video
        return JSONResponse(video)

    async def retrieve(self, request: Request) -> Response:
        await self.record(request)
        if answer := await self.scripted("status"):
            return answer
        video = self.jobs.get(request.path_params["video_id"])
        return JSONResponse(video) if video else self.not_found()

    async def download(self, request: Request) -> Response:
        recorded = await self.record(request)
        if answer := await self.scripted("content"):
            return answer
        if not self.authenticated(recorded):
            return JSONResponse(self.error_body("Incorrect API key provided"), 401)
        video = self.jobs.get(request.path_params["video_id"])
        if video is None:
            return self.not_found()
        if video["status"] != "completed":
            return JSONResponse(self.error_body("Video is not ready yet"), 400)
        return Response(MP4, media_type="video/mp4")

    def not_found(self) -> Response:
        return JSONResponse(self.error_body("Video not found"), 404)

    def set_status(self, job_id: str, status: Status) -> None:
        video = self.jobs[job_id]
        video |= {"status": status, "progress": PROGRESS[status]}
        if status in ("completed", "failed"):
            video["completed_at"] = video["created_at"] + 120
        if status == "failed":
            # The reference lists no error codes; this one is illustrative.
            video["error"] = {
                "code": "moderation_blocked",
                "message": "Your request was blocked by our moderation system.",
            }

    def set_raw_status(self, job_id: str, raw: str) -> None:
        self.jobs[job_id]["status"] = raw

    def webhook(self, job_id: str, event_type: str = "video.completed") -> dict[str, Any]:
        """The project webhook OpenAI sends when the video ends (unsigned: tests sign it)."""
        event = fixture("openai", "webhook_video_completed")
        return event | {
            "id": f"evt_{secrets.token_hex(12)}",
            "type": event_type,
            "data": {"id": job_id},
        }
