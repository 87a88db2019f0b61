"""A recording subscriber: receives deliveries, verifies them with the `standardwebhooks`
package (independently of our signing code), and answers as the test scripts it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.support.servers import serving


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    verified: bool

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class Subscriber:
    url: str = ""
    secrets: list[str] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    # Status codes to answer, in order; then `default_status`.
    script: list[int] = field(default_factory=list)
    default_status: int = 200
    delay: float = 0.0
    # Seconds to wait before answering, in order; then `delay`.
    delays: list[float] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    body: str = "recorded"
    # Set at teardown so that delayed answers end at once instead of holding the server.
    released: asyncio.Event = field(default_factory=asyncio.Event)

    async def receive(self, request: Request) -> Response:
        body = await request.body()
        headers = dict(request.headers)
        verified = any(self._verifies(secret, body, headers) for secret in self.secrets)
        self.received.append(Received(request.url.path, headers, body, time.time(), verified))
        delay = self.delays.pop(0) if self.delays else self.delay
        if delay:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.released.wait(), delay)
        status = self.script.pop(0) if self.script else self.default_status
        extra = {"location": self.url + "/elsewhere"} if 300 <= status < 400 else {}
        return Response(self.body, status_code=status, headers=self.headers | extra)

    @staticmethod
    def _verifies(secret: str, body: bytes, headers: dict[str, str]) -> bool:
        try:
            Webhook(secret).verify(body, headers)
        except WebhookVerificationError:
            return False
        return True

    def events(self) -> list[dict[str, Any]]:
        return [item.event for item in self.received]

    def event_ids(self) -> set[str]:
        return {item.event["id"] for item in self.received}


@asynccontextmanager
async def recording_subscriber(**options: Any) -> AsyncIterator[Subscriber]:
    subscriber = Subscriber(**options)
    app = Starlette(routes=[Route("/{path:path}", subscriber.receive, methods=["POST"])])
    async with serving(app) as url:
        subscriber.url = url
        try:
            yield subscriber
        finally:
            subscriber.released.set()
