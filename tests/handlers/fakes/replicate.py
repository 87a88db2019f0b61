"""Replicate's predictions API, from its documented payloads (tests/fixtures/replicate): official
model and version predictions, the prediction as GET and the webhook both return it."""

from __future__ import annotations

import base64
import secrets
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from handlers.base import ProviderConfig, Status
from tests.handlers.fakes.base import API_KEY, FakeProvider, Recorded, fixture

WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"replicate-default-webhook-secret").decode()

WORDS: dict[Status, str] = {
    "queued": "starting",
    "in_progress": "processing",
    "completed": "succeeded",
    "failed": "failed",
}


class Fake(FakeProvider):
    name = "replicate"
    model = "google/veo-3"

    def routes(self) -> list[Route]:
        return [
            Route("/v1/models/{owner}/{name}/predictions", self.create, methods=["POST"]),
            Route("/v1/predictions", self.create, methods=["POST"]),
            Route("/v1/predictions/{prediction_id}", self.retrieve, methods=["GET"]),
        ]

    def authenticated(self, recorded: Recorded) -> bool:
        return recorded.headers.get("authorization") == f"Bearer {API_KEY}"

    def submitted(self, recorded: Recorded) -> dict[str, Any]:
        return dict(recorded.json()["input"])  # the model's own fields live inside `input`

    def error_body(self, message: str) -> Any:
        # Replicate answers errors as RFC 7807 problem details (replicate-python's ReplicateError).
        return {"title": "Invalid input", "detail": message, "status": 422}

    def config(self) -> ProviderConfig:
        return ProviderConfig(api_key=API_KEY, base_url=self.url, webhook_secret=WEBHOOK_SECRET)

    async def create(self, request: Request) -> Response:
        recorded = await self.record(request)
        if answer := await self.scripted("submit"):
            return answer
        submitted = recorded.json()
        prediction_id = secrets.token_hex(13)
        model = (
            f"{request.path_params['owner']}/{request.path_params['name']}"
            if "owner" in request.path_params
            else "owner/versioned-model"
        )
        prediction = fixture("replicate", "prediction") | {
            "id": prediction_id,
            "model": model,
            "version": submitted.get("version", "hidden"),
            "input": submitted["input"],
            "logs": "",
            "output": None,
            "status": "starting",
            "started_at": None,
            "completed_at": None,
            "metrics": {},
            "urls": {
                "cancel": f"{self.url}/v1/predictions/{prediction_id}/cancel",
                "get": f"{self.url}/v1/predictions/{prediction_id}",
            },
        }
        self.jobs[prediction_id] = prediction
        return JSONResponse(prediction, 201)

    async def retrieve(self, request: Request) -> Response:
        await self.record(request)
        if answer := await self.scripted("status"):
            return answer
        prediction = self.jobs.get(request.path_params["prediction_id"])
        if prediction is None:
            return JSONResponse({"title": "Not found", "detail": "Not found.", "status": 404}, 404)
        return JSONResponse(prediction)

    def set_status(self, job_id: str, status: Status) -> None:
        self.set_raw_status(job_id, WORDS[status])
        prediction = self.jobs[job_id]
        if status == "completed":
            # google/veo-3's documented output schema: one URI string.
            prediction["output"] = f"https://replicate.delivery/xezq/{job_id}/output.mp4"
        if status == "failed":
            prediction["error"] = "CUDA out of memory. Tried to allocate 2.00 GiB"

    def set_raw_status(self, job_id: str, raw: str) -> None:
        self.jobs[job_id]["status"] = raw

    def webhook_url(self) -> str | None:
        """The callback URL the latest submission handed over, if any."""
        return self.submissions()[-1].json().get("webhook")
