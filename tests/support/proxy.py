"""A round-robin HTTP proxy on loopback: spreads requests over several upstream servers (as a
load balancer in front of several `videohooks web` processes would) and counts where they went."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx2 as httpx
from starlette.requests import Request
from starlette.responses import Response

from tests.support.servers import serving


@dataclass
class Proxy:
    upstreams: list[str]
    url: str = ""
    sent: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._next = itertools.cycle(self.upstreams)
        self._client = httpx.AsyncClient(timeout=30)

    async def __call__(self, scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        upstream = next(self._next)
        self.sent[upstream] += 1
        answer = await self._client.request(
            request.method,
            upstream + request.url.path,
            params=request.query_params,
            content=await request.body(),
            headers={k: v for k, v in request.headers.items() if k.lower() != "host"},
        )
        headers = {
            k: v
            for k, v in answer.headers.items()
            if k.lower() not in ("content-length", "transfer-encoding", "content-encoding")
        }
        await Response(answer.content, answer.status_code, headers=headers)(scope, receive, send)


@asynccontextmanager
async def round_robin(upstreams: list[str]) -> AsyncIterator[Proxy]:
    proxy = Proxy(upstreams)
    async with serving(proxy) as url:
        proxy.url = url
        try:
            yield proxy
        finally:
            await proxy._client.aclose()
