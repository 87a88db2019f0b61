"""Kling's task API, from its documented payloads (tests/fixtures/kling): both create endpoints,
the task query by task_id or by external_task_id, and Kling's side of the API token: every request's
JWT is decoded with PyJWT and checked as Kling documents it (HS256 with the secret key, `iss` the
access key, `exp` and `nbf` against the fake's own clock, which a test may move), and refused with
Kling's 401 otherwise. The fake keeps each task's `callback_url`; tests post the callbacks, which
Kling does not sign."""

from __future__ import annotations

import random
import time
from typing import Any

import jwt
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from handlers.base import ProviderConfig, Status
from tests.handlers.fakes.base import FakeProvider, Recorded, fixture

ACCESS_KEY = "AkTestKlingAccessKey0123456789ab"
SECRET_KEY = "SkTestKlingSecretKey0123456789abcdef"
ENDPOINTS = ("text2video", "image2video")

WORDS: dict[Status, str] = {
    "queued": "submitted",
    "in_progress": "processing",
    "completed": "succeed",
    "failed": "failed",
}


class Fake(FakeProvider):
    name = "kling"
    model = "kling-v2-1-master"

    def __init__(self) -> None:
        super().__init__()
        self.callbacks: dict[str, str | None] = {}
        # Seconds added to the real time when the fake checks a token's exp and nbf.
        self.clock_offset = 0.0

    def routes(self) -> list[Route]:
        return [
            Route("/v1/videos/{endpoint}", self.create, methods=["POST"]),
            Route("/v1/videos/{endpoint}/{id}", self.query, methods=["GET"]),
        ]

    def authenticated(self, recorded: Recorded) -> bool:
        scheme, _, token = recorded.headers.get("authorization", "").partition(" ")
        if scheme != "Bearer":
            return False
        try:
            claims = jwt.decode(
                token,
                SECRET_KEY,
                algorithms=["HS256"],
                # exp and nbf are checked below, against the fake's clock.
                options={
                    "require": ["iss", "exp", "nbf"],
                    "verify_exp": False,
                    "verify_nbf": False,
                },
            )
        except jwt.InvalidTokenError:
            return False
        now = time.time() + self.clock_offset
        return claims["iss"] == ACCESS_KEY and claims["nbf"] <= now < claims["exp"]

    def error_body(self, message: str) -> Any:
        return fixture("kling", "error") | {"message": message}

    def config(self) -> ProviderConfig:
        return ProviderConfig(
            base_url=self.url, options={"ACCESS_KEY": ACCESS_KEY, "SECRET_KEY": SECRET_KEY}
        )

    async def create(self, request: Request) -> Response:
        recorded = await self.record(request)
        endpoint = request.path_params["endpoint"]
        if endpoint not in ENDPOINTS:
            return JSONResponse(fixture("kling", "not_found"), 404)
        if not self.authenticated(recorded):
            return JSONResponse(fixture("kling", "unauthorized"), 401)
        if answer := await self.scripted("submit"):
            return answer
        body = recorded.json()
        task_id = str(random.randrange(10**17, 10**18))
        created = fixture("kling", "task_created")
        task = created["data"] | {
            "task_id": task_id,
            "task_info": {"external_task_id": body.get("external_task_id", "")},
        }
        self.jobs[task_id] = {"endpoint": endpoint, "task": task}
        self.callbacks[task_id] = body.get("callback_url")
        return JSONResponse(created | {"data": task})

    async def query(self, request: Request) -> Response:
        recorded = await self.record(request)
        if not self.authenticated(recorded):
            return JSONResponse(fixture("kling", "unauthorized"), 401)
        if answer := await self.scripted("status"):
            return answer
        job = self.find(request.path_params["endpoint"], request.path_params["id"])
        if job is None:
            return JSONResponse(fixture("kling", "not_found"), 404)
        return JSONResponse(fixture("kling", "task_succeed") | {"data": job["task"]})

    def find(self, endpoint: str, task_or_external_id: str) -> dict[str, Any] | None:
        """The task under `endpoint` whose task_id or external_task_id is the one given."""
        for task_id, job in self.jobs.items():
            external = job["task"]["task_info"]["external_task_id"]
            if job["endpoint"] == endpoint and task_or_external_id in (task_id, external):
                return dict(job)
        return None

    def set_status(self, job_id: str, status: Status) -> None:
        task = self.jobs[job_id]["task"]
        task["task_status"] = WORDS[status]
        if status == "completed":
            task["task_result"] = fixture("kling", "task_succeed")["data"]["task_result"]
        if status == "failed":
            task["task_status_msg"] = fixture("kling", "task_failed")["data"]["task_status_msg"]

    def set_raw_status(self, job_id: str, raw: str) -> None:
        self.jobs[job_id]["task"]["task_status"] = raw

    def callback(self, job_id: str) -> dict[str, Any]:
        """The body Kling posts to the task's callback_url: the task as it is now (the shape of
        tests/fixtures/kling/callback.json)."""
        return dict(self.jobs[job_id]["task"])

    def forged_completion(self, job_id: str, url: str) -> dict[str, Any]:
        """A callback body claiming the task succeeded with a video at `url`."""
        video = fixture("kling", "callback")["task_result"]["videos"][0] | {"url": url}
        forged = {"task_status": "succeed", "task_result": {"videos": [video]}}
        return self.callback(job_id) | forged

    def polls(self) -> int:
        return sum(1 for recorded in self.requests if recorded.method == "GET")
