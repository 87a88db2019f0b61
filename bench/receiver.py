"""A minimal recording receiver for the benchmarks: answers every POST with 200 at once and
records (webhook-id, path, arrival time); GET /receipts returns them, GET /count their number.
Run as its own process so it does not share a core's time with the sender it measures."""

from __future__ import annotations

import json
import sys
import time

import uvicorn

receipts: list[tuple[str, str, float]] = []


async def app(scope, receive, send):  # type: ignore[no-untyped-def]
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    if scope["method"] == "POST":
        message_id = dict(scope["headers"]).get(b"webhook-id", b"").decode()
        receipts.append((message_id, scope["path"], time.time()))
        body = b"ok"
    elif scope["path"] == "/count":
        body = str(len(receipts)).encode()
    else:
        body = json.dumps(receipts).encode()
        receipts.clear()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
