"""MiniMax's video API, from its documented payloads (tests/fixtures/minimax): task creation, the
task query, the files API that gives a finished task's download URL, and that URL itself.

MiniMax's side of the callback check: when a task is created with a `callback_url`, the fake first
POSTs `{"challenge": …}` there and waits (3 s at most, as documented) for the same value back,
before it answers the creation. What MiniMax does when the echo does not come is not documented;
the fake refuses the creation with `base_resp` 2013 (invalid params). Tests post the status
callbacks, which MiniMax does not sign."""

from __future__ import annotations

import random
import secrets
from typing import Any

import httpx2 as httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from handlers.base import Status
from tests.handlers.fakes.base import API_KEY, FakeProvider, Recorded, fixture

# The first bytes of an MP4 (its ftyp box): what the download URL serves.
VIDEO_BYTES = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00isommp42"
CHALLENGE_TIMEOUT_S = 3.0

WORDS: dict[Status, str] = {
    "queued": "Queueing",
    "in_progress": "Processing",
    "completed": "Success",
    "failed": "Fail",
}


class Fake(FakeProvider):
    name = "minimax"
    model = "MiniMax-Hailuo-02"

    def __init__(self) -> None:
        super().__init__()
        self.scripts |= {"retrieve": [], "download": []}
        self.callbacks: dict[str, str | None] = {}
        # Each challenge sent, and what the callback URL answered to it (None: no answer).
        self.challenges: list[tuple[str, Any]] = []

    def routes(self) -> list[Route]:
        return [
            Route("/v1/video_generation", self.create, methods=["POST"]),
            Route("/v1/query/video_generation", self.query, methods=["GET"]),
            Route("/v1/files/retrieve", self.retrieve, methods=["GET"]),
            Route("/download/{file_id}/output_aigc.mp4", self.download, methods=["GET"]),
        ]

    def authenticated(self, recorded: Recorded) -> bool:
        return recorded.headers.get("authorization") == f"Bearer {API_KEY}"

    def error_body(self, message: str) -> Any:
        body = fixture("minimax", "error")
        body["base_resp"]["status_msg"] = message
        return body

    # -- the API ------------------------------------------------------------------------------

    async def create(self, request: Request) -> Response:
        recorded = await self.record(request)
        if not self.authenticated(recorded):
            return JSONResponse(fixture("minimax", "unauthorized"))
        if answer := await self.scripted("submit"):
            return answer
        callback_url = recorded.json().get("callback_url")
        if callback_url and not await self.challenge(callback_url):
            return JSONResponse(self.error_body("invalid params, callback_url failed verification"))
        task_id = str(random.randrange(10**14, 10**15))
        self.jobs[task_id] = {"task_id": task_id, "status": "Queueing", "base_resp": _ok()}
        self.callbacks[task_id] = callback_url
        return JSONResponse(fixture("minimax", "task_created") | {"task_id": task_id})

    async def challenge(self, url: str) -> bool:
        """Sends the documented check to `url`; True when the same challenge came back in time."""
        value = secrets.token_hex(12)
        body = fixture("minimax", "callback_challenge") | {"challenge": value}
        answered: Any = None
        try:
            async with httpx.AsyncClient(timeout=CHALLENGE_TIMEOUT_S) as client:
                response = await client.post(url, json=body)
            answered = response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            pass
        self.challenges.append((value, answered))
        return answered == {"challenge": value}

    async def query(self, request: Request) -> Response:
        recorded = await self.record(request)
        if not self.authenticated(recorded):
            return JSONResponse(fixture("minimax", "unauthorized"))
        if answer := await self.scripted("status"):
            return answer
        task = self.jobs.get(recorded.query.get("task_id", ""))
        return JSONResponse(task if task else self.error_body("invalid params, task not found"))

    async def retrieve(self, request: Request) -> Response:
        recorded = await self.record(request)
        if not self.authenticated(recorded):
            return JSONResponse(fixture("minimax", "unauthorized"))
        if answer := await self.scripted("retrieve"):
            return answer
        file_id = recorded.query.get("file_id", "")
        if not any(task.get("file_id") == file_id for task in self.jobs.values()):
            return JSONResponse(self.error_body("invalid params, file not found"))
        retrieved = fixture("minimax", "file_retrieved")
        retrieved["file"] |= {
            "file_id": int(file_id),
            "download_url": f"{self.url}/download/{file_id}/output_aigc.mp4",
        }
        return JSONResponse(retrieved)

    async def download(self, request: Request) -> Response:
        await self.record(request)
        if answer := await self.scripted("download"):
            return answer
        return Response(VIDEO_BYTES, media_type="video/mp4")

    # -- test controls --------------------------------------------------------------------------

    def set_status(self, job_id: str, status: Status) -> None:
        task = self.jobs[job_id]
        task["status"] = WORDS[status]
        if status == "completed":
            success = fixture("minimax", "task_success")
            task |= {
                "file_id": str(random.randrange(10**14, 10**15)),
                "video_width": success["video_width"],
                "video_height": success["video_height"],
                "base_resp": _ok(),
            }
        if status == "failed":
            task["base_resp"] = fixture("minimax", "task_fail")["base_resp"]

    def set_raw_status(self, job_id: str, raw: str) -> None:
        self.jobs[job_id]["status"] = raw

    def callback(self, job_id: str) -> dict[str, Any]:
        """The body MiniMax posts on a status change: the task as the query answers it, its
        status in the callback's lower case (tests/fixtures/minimax/callback.json)."""
        task = dict(self.jobs[job_id])
        return task | {"status": task["status"].lower()}

    def forged_completion(self, job_id: str, url: str) -> dict[str, Any]:
        """A callback claiming success, with a file of someone else's and a URL for good measure."""
        forged = fixture("minimax", "callback") | {"task_id": job_id, "download_url": url}
        return dict(forged)

    def polls(self) -> int:
        return sum(1 for recorded in self.requests if recorded.path == "/v1/query/video_generation")

    def downloads(self) -> list[Recorded]:
        return [recorded for recorded in self.requests if recorded.path.startswith("/download/")]


def _ok() -> dict[str, Any]:
    return dict(fixture("minimax", "task_created")["base_resp"])
