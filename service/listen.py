"""`videohooks listen`: a local receiver for development that prints every delivery it gets and
whether its Standard Webhooks signature verified (like `stripe listen`). The demo uses it too."""

from __future__ import annotations

import asyncio
import json
import signal
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service import server

REDELIVER_HINT = (
    "missed an event while this was not running? it is retried on the schedule; "
    "`videohooks redeliver EVT_ID` sends it again now (ids: GET /v1/events)"
)


class Listener:
    """Receives deliveries at any path, verifies each with the `standardwebhooks` package."""

    def __init__(self, secrets: list[str]) -> None:
        self.secrets = secrets
        self.received: asyncio.Queue[tuple[dict[str, Any], bool]] = asyncio.Queue()
        self.app = Starlette(routes=[Route("/{path:path}", self.receive, methods=["POST"])])

    async def receive(self, request: Request) -> Response:
        body = await request.body()
        try:
            event = json.loads(body)
        except ValueError:
            return Response("not JSON", status_code=400)
        await self.received.put((event, self.verifies(body, dict(request.headers))))
        return Response(status_code=204)

    def verifies(self, body: bytes, headers: dict[str, str]) -> bool:
        for secret in self.secrets:
            try:
                Webhook(secret).verify(body, headers)
            except (WebhookVerificationError, ValueError):
                continue
            return True
        return False


def describe(event: dict[str, Any], verified: bool | None) -> str:
    video = event.get("data", {})
    if video.get("outputs"):
        detail = f"output {video['outputs'][0]['url']}"
    else:
        detail = f"error {(video.get('error') or {}).get('message')}"
    check = {True: "signature verified", False: "SIGNATURE DID NOT VERIFY", None: "not checked"}
    return (
        f"{event.get('type')} {event.get('id')} for {video.get('id')}: {check[verified]}; {detail}"
    )


async def run(host: str, port: int, secrets: list[str]) -> int:
    listener = Listener(secrets)
    sock = server.bind(host, port)
    http = server.HttpServer(listener.app)
    serving = asyncio.create_task(http.serve(sockets=[sock]))
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(
            sig, lambda: setattr(http, "should_exit", True)
        )
    print(f"listening on {server.local_url(sock)} (subscribe this URL; Ctrl-C stops)", flush=True)
    # A delivery that failed while nothing listened waits for its next retry (5 minutes, early
    # in the default schedule): say how to have it now.
    print(REDELIVER_HINT, flush=True)
    try:
        while not serving.done():
            getter = asyncio.create_task(listener.received.get())
            await asyncio.wait([getter, serving], return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
                event, verified = getter.result()
                print(describe(event, verified if secrets else None), flush=True)
            else:
                getter.cancel()
    finally:
        http.should_exit = True
        await serving
    return 0
