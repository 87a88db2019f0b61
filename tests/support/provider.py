"""A fake provider speaking the simulator's HTTP API, scripted by the test and recording every
request, for behaviour the real simulator does not script (submission failures, slow answers,
concurrency). Point VIDEOHOOKS_SIMULATOR_BASE_URL at it.

Like the simulator, it honours an `Idempotency-Key` header (the same key answers the job it first
created). It can also answer late: the next `holding` submissions create their job (and bill it)
at once, but are answered only once `released` is set, long after the client gave up. And it
lists the job a key created (`GET /v1/videos?reference=<key>`), for handlers that look
submissions up."""

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
    # The Idempotency-Key of each submission, in order ("" without one).
    keys: list[str] = field(default_factory=list)
    delay: float = 0.0
    in_flight: int = 0
    max_in_flight: int = 0
    idempotent: bool = True
    holding: int = 0
    released: asyncio.Event = field(default_factory=asyncio.Event)
    created: dict[str, str] = field(default_factory=dict)

    async def create(self, request: Request) -> Response:
        return await self._answer(request, self.submit_answers, self._submitted)

    async def retrieve(self, request: Request) -> Response:
        video_id = request.path_params["video_id"]
        return await self._answer(request, self.status_answers, lambda: self.jobs.get(video_id))

    async def lookup(self, request: Request) -> Response:
        self.requests.append((request.method, request.url.path, time.time()))
        job_id = self.created.get(request.query_params.get("reference", ""))
        return JSONResponse({"data": [self.jobs[job_id]] if job_id else []})

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
            body = default(request) if request.method == "POST" else default()
            if asyncio.iscoroutine(body):
                body = await body
            return JSONResponse(body) if body else JSONResponse({"error": "no such job"}, 404)
        finally:
            self.in_flight -= 1

    async def _submitted(self, request: Request) -> dict[str, Any]:
        self.bodies.append(json.loads(await request.body()))
        key = request.headers.get("idempotency-key", "")
        self.keys.append(key)
        if self.idempotent and key in self.created:
            return self.jobs[self.created[key]]
        job = self._new_job()
        if key:
            self.created[key] = job["id"]
        if self.holding:
            self.holding -= 1
            await self.released.wait()
        return job

    def _new_job(self) -> dict[str, Any]:
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
async def fake_provider(port: int = 0) -> AsyncIterator[FakeProvider]:
    provider = FakeProvider()
    app = Starlette(
        routes=[
            Route("/v1/videos", provider.create, methods=["POST"]),
            Route("/v1/videos", provider.lookup, methods=["GET"]),
            Route("/v1/videos/{video_id}", provider.retrieve, methods=["GET"]),
        ]
    )
    async with serving(app, port) as url:
        provider.url = url
        try:
            yield provider
        finally:
            provider.released.set()  # held answers end, so the server can stop
