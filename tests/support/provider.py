"""A fake provider speaking the simulator's HTTP API, scripted by the test and recording every
request, for behaviour the real simulator does not script (submission failures, slow answers,
concurrency). Point VIDEOHOOKS_SIMULATOR_BASE_URL at it."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.servers import serving


@dataclass
class Answer:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class FakeProvider:
    url: str = ""
    submit_answers: list[Answer] = field(default_factory=list)
    status_answers: list[Answer] = field(default_factory=list)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str, float]] = field(default_factory=list)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    delay: float = 0.0
    in_flight: int = 0
    max_in_flight: int = 0

    async def create(self, request: Request) -> Response:
        return await self._answer(request, self.submit_answers, self._new_job)

    async def retrieve(self, request: Request) -> Response:
        video_id = request.path_params["video_id"]
        return await self._answer(request, self.status_answers, lambda _: self.jobs.get(video_id))

    async def _answer(self, request: Request, script: list[Answer], default: Any) -> Response:
        self.requests.append((request.method, request.url.path, time.time()))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
            if script:
                answer = script.pop(0)
                await asyncio.sleep(answer.delay)
                if isinstance(answer.body, str):
                    return Response(answer.body, answer.status, headers=answer.headers)
                return JSONResponse(answer.body, answer.status, headers=answer.headers)
            body = default(await request.body())
            return JSONResponse(body) if body else JSONResponse({"error": "no such job"}, 404)
        finally:
            self.in_flight -= 1

    def _new_job(self, body: bytes) -> dict[str, Any]:
        self.bodies.append(json.loads(body))
        job_id = f"fake_{len(self.jobs) + 1}"
        self.jobs[job_id] = {
            "id": job_id,
            "status": "queued",
            "progress": 0,
            "model": "default",
            "created_at": time.time(),
        }
        return self.jobs[job_id]

    def finish(self, job_id: str, status: str = "completed") -> None:
        job = self.jobs[job_id]
        job |= {"status": status, "progress": 100}
        if status == "completed":
            job["outputs"] = [
                {"url": f"https://cdn.example/{job_id}.mp4", "content_type": "video/mp4"}
            ]
        else:
            job["error"] = {"code": "generation_failed", "message": "the fake provider failed"}

    def count(self, method: str) -> int:
        return sum(1 for request in self.requests if request[0] == method)


@asynccontextmanager
async def fake_provider() -> AsyncIterator[FakeProvider]:
    provider = FakeProvider()
    app = Starlette(
        routes=[
            Route("/v1/videos", provider.create, methods=["POST"]),
            Route("/v1/videos/{video_id}", provider.retrieve, methods=["GET"]),
        ]
    )
    async with serving(app) as url:
        provider.url = url
        yield provider
