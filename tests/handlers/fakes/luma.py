"""Luma's Dream Machine API, from its documented payloads (tests/fixtures/luma): creating and
getting generations, and the callback Luma posts (the whole generation, unsigned) to the
`callback_url` a submission named, which `notify` sends as Luma would."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx2 as httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from handlers.base import Status
from tests.handlers.fakes.base import API_KEY, FakeProvider, Recorded, fixture

FIXTURES: dict[Status, str] = {
    "queued": "generation_queued",
    "in_progress": "generation_dreaming",
    "completed": "generation_completed",
    "failed": "generation_failed",
}


class Fake(FakeProvider):
    name = "luma"
    model = "ray-2"

    def __init__(self) -> None:
        super().__init__()
        self.callbacks: dict[str, str | None] = {}
        # Seconds between creating a generation and answering: an answer the caller gives up on.
        self.answer_delay = 0.0

    def routes(self) -> list[Route]:
        return [
            Route("/generations", self.create, methods=["POST"]),
            Route("/generations/{generation_id}", self.generation, methods=["GET"]),
        ]

    def authenticated(self, recorded: Recorded) -> bool:
        return recorded.headers.get("authorization") == f"Bearer {API_KEY}"

    def error_body(self, message: str) -> Any:
        return fixture("luma", "error") | {"detail": message}

    async def create(self, request: Request) -> Response:
        recorded = await self.record(request)
        if answer := await self.scripted("submit"):
            return answer
        sent = recorded.json()
        generation_id = str(uuid.uuid4())
        generation = fixture("luma", "generation_queued") | {"id": generation_id}
        generation["request"] = sent | {"generation_type": "video"}
        self.jobs[generation_id] = generation
        self.callbacks[generation_id] = sent.get("callback_url")
        await asyncio.sleep(self.answer_delay)
        return JSONResponse(generation, 201)

    async def generation(self, request: Request) -> Response:
        await self.record(request)
        if answer := await self.scripted("status"):
            return answer
        generation = self.jobs.get(request.path_params["generation_id"])
        if generation is None:
            return JSONResponse(self.error_body("Generation not found"), 404)
        return JSONResponse(generation)

    def set_status(self, job_id: str, status: Status) -> None:
        documented = fixture("luma", FIXTURES[status])
        generation = self.jobs[job_id]
        generation |= {key: documented[key] for key in ("state", "failure_reason", "assets")}
        if status == "completed":
            generation["assets"] = documented["assets"] | {
                "video": f"https://storage.cdn-luma.example/{job_id}/video.mp4"
            }

    def set_raw_status(self, job_id: str, raw: str) -> None:
        self.jobs[job_id]["state"] = raw

    async def notify(self, job_id: str) -> int:
        """Posts the generation as it now is to its callback URL, as Luma does on a change of
        state: no signature, JSON body. Answers the status code the receiver gave."""
        url = self.callbacks[job_id]
        assert url is not None, "the submission named no callback_url"
        body = json.dumps(self.jobs[job_id]).encode()
        async with httpx.AsyncClient() as client:
            answer = await client.post(
                url, content=body, headers={"content-type": "application/json"}
            )
        return answer.status_code
