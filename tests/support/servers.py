"""Runs ASGI apps under uvicorn on 127.0.0.1, in the test's own event loop, on a free port."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.types import ASGIApp

from service.server import HttpServer, bind, local_url


@asynccontextmanager
async def serving(app: ASGIApp, port: int = 0) -> AsyncIterator[str]:
    sock = bind("127.0.0.1", port)
    server = HttpServer(app)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            await task
        await asyncio.sleep(0.005)
    try:
        yield local_url(sock)
    finally:
        server.should_exit = True
        await task
        sock.close()


async def eventually(check, timeout: float = 10.0, interval: float = 0.02):  # type: ignore[no-untyped-def]
    """Awaits `check()` until it returns something truthy; fails after `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)


def free_port() -> int:
    """A port nothing listens on now, for a process that must be told its port in advance."""
    sock = bind("127.0.0.1", 0)
    try:
        return int(sock.getsockname()[1])
    finally:
        sock.close()
