"""`videohooks demo`: the whole path in one command.

Starts the service on a temporary SQLite database with the simulator, a local subscriber that
verifies every delivery with the `standardwebhooks` package, subscribes it, and submits three
jobs: one answered by webhook, one found by polling, one that fails. Prints each event as the
subscriber receives it and exits 0 once all three have arrived.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
import time
from typing import Any

import httpx2 as httpx

from service import server
from service.listen import Listener, describe
from service.settings import Settings

JOBS: dict[str, dict[str, Any]] = {
    "webhook": {"after_s": 2},
    "polled": {"after_s": 3, "webhook": False},
    "failed": {
        "after_s": 2,
        "outcome": "failed",
        "error_message": "the prompt was refused (simulated)",
    },
}
TIMEOUT = 50.0


async def run() -> int:
    with tempfile.TemporaryDirectory(prefix="videohooks-demo-") as folder:
        subscriber = Listener([])
        subscriber_socket = server.bind("127.0.0.1", 0)
        service_socket = server.bind("127.0.0.1", 0)
        service_url = server.local_url(service_socket)
        api_key = "vhk_demo_" + secrets.token_hex(8)
        settings = Settings.from_env(
            {
                **os.environ,
                "VIDEOHOOKS_DATABASE_URL": f"sqlite:///{folder}/demo.db",
                "VIDEOHOOKS_PUBLIC_URL": service_url,
                "VIDEOHOOKS_API_KEYS": api_key,
                "VIDEOHOOKS_ALLOW_PRIVATE_URLS": "true",
                "VIDEOHOOKS_POLL_MIN": "500ms",
                # The "polled" job never gets its webhook; poll it soon after that is clear.
                "VIDEOHOOKS_WEBHOOK_GRACE": "3s",
                "VIDEOHOOKS_RETRY_SCHEDULE": "1s,2s,5s",
            }
        )
        receiver = server.HttpServer(subscriber.app)
        receiving = asyncio.create_task(receiver.serve(sockets=[subscriber_socket]))
        try:
            async with server.Service(settings, service_socket):
                return await _tour(
                    service_url, api_key, subscriber, server.local_url(subscriber_socket)
                )
        finally:
            receiver.should_exit = True
            await receiving


async def _tour(service_url: str, api_key: str, subscriber: Listener, subscriber_url: str) -> int:
    print(f"videohooks demo: service on {service_url}, subscriber on {subscriber_url}")
    async with httpx.AsyncClient(
        base_url=service_url, headers={"authorization": f"Bearer {api_key}"}
    ) as api:
        created = (
            await api.post(
                "/v1/subscriptions", json={"url": subscriber_url + "/", "description": "demo"}
            )
        ).json()
        subscriber.secrets.append(created["secret"])
        print(f"subscribed {created['id']} to {', '.join(created['events'])}")
        labels: dict[str, str] = {}
        for label, simulate in JOBS.items():
            response = await api.post(
                "/v1/videos",
                json={
                    "model": "simulator/default",
                    "prompt": f"a demo of the {label} path",
                    "input": {"simulate": simulate},
                },
            )
            video = response.json()
            labels[video["id"]] = label
            print(
                f"submitted {video['id']} ({label}): "
                f"HTTP {response.status_code}, status {video['status']}"
            )
    deadline = time.monotonic() + TIMEOUT
    verified_all = True
    for _ in JOBS:
        try:
            event, verified = await asyncio.wait_for(
                subscriber.received.get(), deadline - time.monotonic()
            )
        except TimeoutError:
            print(f"demo failed: not every event arrived within {TIMEOUT:g} s")
            return 1
        verified_all &= verified
        label = labels.get(event["data"]["id"], "?")
        print(f"received ({label}) {describe(event, verified)} (by standardwebhooks)")
    print(
        "demo complete: three jobs, three events, every signature verified"
        if verified_all
        else "demo failed: a signature did not verify"
    )
    return 0 if verified_all else 1
