"""Veo on the Gemini API, from its documented payloads (tests/fixtures/veo): predictLongRunning,
the operation, and the generated file's download, all behind `x-goog-api-key`."""

from __future__ import annotations

import secrets
from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from handlers.base import Status
from tests.handlers.fakes.base import API_KEY, FakeProvider, Recorded, fixture

MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" * 64
SUFFIX = ":predictLongRunning"


class Fake(FakeProvider):
    name = "veo"
    model = "veo-3.1-generate-preview"
    # An operation runs from its acceptance: there is no queued state.
    statuses: ClassVar[tuple[Status, ...]] = ("in_progress", "completed", "failed")

    def __init__(self) -> None:
        super().__init__()
        self.scripts["content"] = []
        self.files: dict[str, bytes] = {}

    def routes(self) -> list[Route]:
        return [
            Route("/models/{target}", self.predict, methods=["POST"]),
            Route("/models/{model}/operations/{operation}", self.operation, methods=["GET"]),
            Route("/files/{target}", self.download, methods=["GET"]),
        ]

    def authenticated(self, recorded: Recorded) -> bool:
        return recorded.headers.get("x-goog-api-key") == API_KEY

    def submitted(self, recorded: Recorded) -> dict[str, Any]:
        """The instance's fields and the parameters, as one object: what Veo reads."""
        body = recorded.json()
        [instance] = body["instances"]
        return dict(instance) | body.get("parameters", {})

    def error_body(self, message: str) -> Any:
        body = fixture("veo", "error")
        body["error"]["message"] = message
        return body

    async def predict(self, request: Request) -> Response:
        await self.record(request)
        if answer := await self.scripted("submit"):
            return answer
        model, suffix = request.path_params["target"].partition(SUFFIX)[:2]
        if not suffix:
            return JSONResponse(self.error_body("Not found"), 404)
        name = f"models/{model}/operations/{secrets.token_hex(6)}"
        self.jobs[name] = fixture("veo", "operation_started") | {"name": name}
        return JSONResponse(self.jobs[name])

    async def operation(self, request: Request) -> Response:
        await self.record(request)
        if answer := await self.scripted("status"):
            return answer
        params = request.path_params
        operation = self.jobs.get(f"models/{params['model']}/operations/{params['operation']}")
        if operation is None:
            return JSONResponse(self.error_body("Operation not found"), 404)
        return JSONResponse(operation)

    async def download(self, request: Request) -> Response:
        recorded = await self.record(request)
        if answer := await self.scripted("content"):
            return answer
        if not self.authenticated(recorded):
            return JSONResponse(self.error_body("API key not valid"), 403)
        file_id, suffix = request.path_params["target"].partition(":download")[:2]
        if not suffix or recorded.query.get("alt") != "media" or file_id not in self.files:
            return JSONResponse(self.error_body("File not found"), 404)
        return Response(self.files[file_id], media_type="video/mp4")

    def set_status(self, job_id: str, status: Status) -> None:
        name = {"name": job_id}
        if status == "in_progress":
            self.jobs[job_id] = fixture("veo", "operation_started") | name
        elif status == "completed":
            file_id = secrets.token_hex(6)
            self.files[file_id] = MP4
            done = fixture("veo", "operation_done") | name
            [sample] = done["response"]["generateVideoResponse"]["generatedSamples"]
            sample["video"]["uri"] = f"{self.url}/files/{file_id}:download?alt=media"
            self.jobs[job_id] = done
        elif status == "failed":
            self.jobs[job_id] = fixture("veo", "operation_error") | name
        else:
            raise ValueError(f"a Gemini operation is never {status}")

    def set_raw_status(self, job_id: str, raw: str) -> None:
        """A done operation whose response is of a type nobody documented."""
        self.jobs[job_id] = {"name": job_id, "done": True, "response": {"@type": raw}}
