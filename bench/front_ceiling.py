"""The front door's ceiling for bench/e2e.py: the least a `POST /v1/videos` can cost on this
machine, served as videohooks serves it (starlette under uvicorn, uvloop and httptools): read the
JSON body, answer 202 with a video-sized JSON body. No authentication, validation or storage."""

from __future__ import annotations

import json
import sys
import time
import uuid

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def create(request: Request) -> Response:
    payload = json.loads(await request.body())
    video_id = f"vid_{uuid.uuid4().hex}"
    now = time.time()
    video = {
        "id": video_id,
        "object": "video",
        "status": "queued",
        "model": payload.get("model"),
        "provider": "simulator",
        "provider_job_id": None,
        "progress": 0,
        "outputs": [],
        "error": None,
        "metadata": payload.get("metadata", {}),
        "callback_url": None,
        "attempts": [{"provider": "simulator", "model": payload.get("model"), "error": None}],
        "created_at": int(now),
        "updated_at": int(now),
        "completed_at": None,
    }
    return Response(
        json.dumps(video),
        status_code=202,
        media_type="application/json",
        headers={"location": f"/v1/videos/{video_id}"},
    )


async def ready(request: Request) -> Response:
    return Response("ok")


app = Starlette(routes=[Route("/v1/videos", create, methods=["POST"]), Route("/readyz", ready)])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
