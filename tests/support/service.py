"""Starts the service in-process (API under uvicorn on loopback, and the worker) for a test."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2 as httpx

from service.context import Context
from service.server import Service, bind, local_url
from service.settings import Settings
from storage.base import Store

API_KEY = "vhk_test_0123456789"


def fast_env(folder: Path) -> dict[str, str]:
    """Fast timings so that retries, polls and drains happen within a test's patience."""
    return {
        "VIDEOHOOKS_DATABASE_URL": f"sqlite:///{folder}/videohooks.db",
        "VIDEOHOOKS_API_KEYS": API_KEY,
        "VIDEOHOOKS_ALLOW_PRIVATE_URLS": "true",
        "VIDEOHOOKS_POLL_MIN": "100ms",
        "VIDEOHOOKS_POLL_MAX": "1s",
        "VIDEOHOOKS_IDLE_POLL": "50ms",
        "VIDEOHOOKS_RETRY_SCHEDULE": "100ms,200ms,300ms",
        "VIDEOHOOKS_DELIVERY_TIMEOUT": "2s",
        "VIDEOHOOKS_DRAIN_TIMEOUT": "3s",
        "VIDEOHOOKS_WEBHOOK_GRACE": "2s",
        "VIDEOHOOKS_LOG_LEVEL": "WARNING",
    }


@dataclass
class Running:
    service: Service
    api: httpx.AsyncClient

    @property
    def url(self) -> str:
        assert self.service.url is not None
        return self.service.url

    @property
    def context(self) -> Context:
        return self.service.context

    @property
    def store(self) -> Store:
        return self.service.context.store

    async def subscribe(self, url: str, **fields: Any) -> dict[str, Any]:
        response = await self.api.post("/v1/subscriptions", json={"url": url, **fields})
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def submit(self, simulate: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
        body = {"model": "simulator/default", "prompt": "a test", **fields}
        if simulate is not None:
            body["input"] = {"simulate": simulate}
        response = await self.api.post("/v1/videos", json=body)
        assert response.status_code == 202, response.text
        return dict(response.json())

    async def video(self, video_id: str) -> dict[str, Any]:
        return dict((await self.api.get(f"/v1/videos/{video_id}")).json())

    async def events(self) -> list[dict[str, Any]]:
        response = await self.api.get("/v1/events", params={"limit": 100})
        return list(json.loads(response.text)["data"])


@asynccontextmanager
async def running_service(
    env: dict[str, str], public: bool = True, worker: bool = True
) -> AsyncIterator[Running]:
    sock = bind("127.0.0.1", 0)
    env = dict(env)
    if public:
        env["VIDEOHOOKS_PUBLIC_URL"] = local_url(sock)
    async with Service(Settings.from_env(env), sock, worker=worker) as service:
        headers = {"authorization": f"Bearer {API_KEY}"}
        async with httpx.AsyncClient(base_url=local_url(sock), headers=headers) as api:
            yield Running(service, api)
