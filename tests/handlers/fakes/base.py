"""The base of every fake provider: a real HTTP server on loopback, built from the provider's
documented payloads, that records each request and answers from a script when the test sets one,
else from its in-memory jobs.

A provider's fake subclasses `FakeProvider` and fills in the abstract parts: its routes, how it
checks credentials, how it reads a submission, and how it puts a job into each normalized status
using the provider's own vocabulary.

Every fake can also answer late: the next `holding` submissions are acted on at once (the job
exists, and is billed) but answered only once `released` is set, long after the client gave up.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from handlers.base import ProviderConfig, Status
from tests.support.servers import serving

FIXTURES = Path(__file__).parents[2] / "fixtures"
API_KEY = "test-provider-key"


def fixture(provider: str, name: str) -> Any:
    """A documented payload from tests/fixtures/<provider>/<name>.json (its `payload` field;
    the file's `source` field says where it was documented)."""
    return json.loads((FIXTURES / provider / f"{name}.json").read_text())["payload"]


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Answer:
    status: int
    body: Any = None  # JSON-encoded unless bytes or str, which are sent as they are
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0

    def response(self) -> Response:
        if isinstance(self.body, bytes | str):
            return Response(
                self.body, self.status, headers=self.headers, media_type="application/json"
            )
        return JSONResponse(self.body, self.status, headers=self.headers)


class FakeProvider:
    name: ClassVar[str]
    # A model id to submit with (what follows "<provider>/" in our model field).
    model: ClassVar[str] = "test-model"
    # Where the prompt lands in the submitted body, as a dotted path.
    prompt_field: ClassVar[str] = "prompt"
    # The normalized statuses the provider's vocabulary can express (a Gemini operation, for
    # one, is running from the moment it is accepted: it is never queued).
    statuses: ClassVar[tuple[Status, ...]] = ("queued", "in_progress", "completed", "failed")

    def __init__(self) -> None:
        self.url = ""
        self.requests: list[Recorded] = []
        self.scripts: dict[str, list[Answer]] = {"submit": [], "status": []}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.holding = 0
        self.released = asyncio.Event()

    # -- for each provider's fake to define ----------------------------------------------

    def routes(self) -> list[Route]:
        raise NotImplementedError

    def authenticated(self, recorded: Recorded) -> bool:
        """Whether the request carried the provider's credential the documented way."""
        raise NotImplementedError

    def submitted(self, recorded: Recorded) -> dict[str, Any]:
        """The fields of a submission as the provider reads them (JSON or multipart)."""
        return dict(recorded.json())

    def set_status(self, job_id: str, status: Status) -> None:
        """Puts the job into `status`, in the provider's own vocabulary and payload shape."""
        raise NotImplementedError

    def set_raw_status(self, job_id: str, raw: str) -> None:
        """Gives the job a status word the provider's documentation does not list."""
        raise NotImplementedError

    def error_body(self, message: str) -> Any:
        """The provider's documented error payload carrying `message`."""
        return {"error": {"message": message}}

    def config(self) -> ProviderConfig:
        return ProviderConfig(api_key=API_KEY, base_url=self.url)

    def env(self) -> dict[str, str]:
        """The VIDEOHOOKS_* variables that point the service at this fake."""
        prefix = f"VIDEOHOOKS_{self.name.upper()}_"
        config = self.config()
        found = {
            prefix + "API_KEY": config.api_key,
            prefix + "BASE_URL": config.base_url,
            prefix + "WEBHOOK_SECRET": config.webhook_secret,
        }
        found |= {prefix + key: value for key, value in config.options.items()}
        return {key: value for key, value in found.items() if value}

    # -- shared ------------------------------------------------------------------------------

    def script(
        self,
        kind: str,
        status: int,
        body: Any = None,
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
    ) -> None:
        """The next `kind` ("submit" or "status") request gets this answer instead."""
        self.scripts[kind].append(Answer(status, body, headers or {}, delay))

    async def record(self, request: Request) -> Recorded:
        recorded = Recorded(
            request.method,
            request.url.path,
            dict(request.query_params),
            {k.lower(): v for k, v in request.headers.items()},
            await request.body(),
        )
        self.requests.append(recorded)
        return recorded

    async def scripted(self, kind: str) -> Response | None:
        if not self.scripts[kind]:
            return None
        answer = self.scripts[kind].pop(0)
        await asyncio.sleep(answer.delay)
        return answer.response()

    def latest(self) -> str:
        """The provider-side id of the job created last."""
        return list(self.jobs)[-1]

    def submissions(self) -> list[Recorded]:
        return [recorded for recorded in self.requests if recorded.method == "POST"]


@asynccontextmanager
async def serve(fake: FakeProvider) -> AsyncIterator[FakeProvider]:
    async with serving(_answering_late(fake, Starlette(routes=fake.routes()))) as url:
        fake.url = url
        try:
            yield fake
        finally:
            fake.released.set()  # held answers end, so the server can stop


def _answering_late(fake: FakeProvider, app: ASGIApp) -> ASGIApp:
    async def late(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or fake.holding == 0:
            await app(scope, receive, send)
            return
        fake.holding -= 1
        answer: list[Any] = []

        async def keep(message: Any) -> None:
            answer.append(message)

        await app(scope, receive, keep)
        await fake.released.wait()
        for message in answer:
            await send(message)  # to a client that has gone: the server drops it

    return late
