"""Runs the processes of the Procfile (and `serve`, both in one): the HTTP API under uvicorn, the
worker, or both, stopping them together on SIGTERM or SIGINT after draining."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys
from collections.abc import Callable, Generator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from types import TracebackType

import prometheus_client
import uvicorn
from starlette.types import ASGIApp

from service import metrics
from service.api_keys import new_api_key
from service.app import create_app
from service.context import Context, running
from service.settings import Settings
from service.supervisor import CONFIG_EXIT, StartFailed, Supervisor, die_with_parent, report_ready
from service.worker import Worker

SIMULATOR_WARNING = (
    "warning: the simulator provider is on and this service has a public URL; "
    "set VIDEOHOOKS_SIMULATOR=false in production"
)


KEEP_ALIVE_S = 75
BACKLOG = 2048  # uvicorn's own default


class HttpServer(uvicorn.Server):
    """uvicorn without its own signal handling: the process installs one handler that stops the
    API and the worker together (uvicorn's would re-raise SIGTERM once the API has stopped and
    kill the process before the worker drains)."""

    def __init__(self, app: ASGIApp) -> None:
        config = uvicorn.Config(
            app,
            log_config=None,
            access_log=False,
            lifespan="off",
            # Longer than the idle timeout of the load balancers in front (60 s is common): an
            # idle connection is then always closed by the client side first, never by us while
            # a request is on its way in (which the client sees as a reset, and may not retry).
            timeout_keep_alive=KEEP_ALIVE_S,
        )
        super().__init__(config)

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def local_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class Service:
    """The API (when given a listening socket) and/or the worker, sharing one context."""

    def __init__(
        self, settings: Settings, listen: socket.socket | None = None, worker: bool = True
    ) -> None:
        self.settings = settings
        self.socket = listen
        self.url = local_url(listen) if listen is not None else None
        self.with_worker = worker
        self.context: Context
        self.worker: Worker | None = None
        self.http: HttpServer | None = None
        self._stack = AsyncExitStack()
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Service:
        self.context = await self._stack.enter_async_context(running(self.settings, self.url))
        if self.socket is not None:
            self.http = HttpServer(create_app(self.context))
            self._tasks.append(asyncio.create_task(self.http.serve(sockets=[self.socket])))
        if self.with_worker:
            self.worker = Worker(self.context)
            self._tasks.append(asyncio.create_task(self.worker.run()))
        while self.http is not None and not self.http.started:
            if self._tasks[0].done():
                await self._tasks[0]  # raises why the API could not start
            await asyncio.sleep(0.01)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._stack.aclose()
        if self.socket is not None:
            self.socket.close()

    def stop(self) -> None:
        if hasattr(self, "context"):
            self.context.stopping.set()
        if self.http is not None:
            self.http.should_exit = True
        if self.worker is not None:
            self.worker.stop()

    async def wait(self) -> list[BaseException]:
        """Until one part ends (a stop, or a crash, which then stops the others); the failures."""
        await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
        self.stop()
        results = await asyncio.gather(*self._tasks, return_exceptions=True)
        return [result for result in results if isinstance(result, BaseException)]


async def announce_api_key(context: Context, say: Callable[[str], None]) -> None:
    if context.settings.api_keys:
        say("API keys: from VIDEOHOOKS_API_KEYS")
        return
    key, record = new_api_key("generated at first start")
    if await context.store.add_first_api_key(record):
        say(f"API key (shown once; only its hash is stored): {key}")
    else:
        say("API key: generated at first start (create another with `videohooks api-key create`)")


@dataclass(frozen=True)
class Launch:
    """What the CLI asks of `run`: the command (serve, web, worker), where to listen, and in
    how many processes; a supervised child also gets the socket and pipe its supervisor passes."""

    command: str
    host: str | None = None
    port: int = 0
    processes: int = 1
    listen_fd: int | None = None
    ready_fd: int | None = None
    supervised_by: int | None = None

    @property
    def worker(self) -> bool:
        return self.command != "web"

    @property
    def listens(self) -> bool:
        return self.command != "worker"


async def run(settings: Settings, launch: Launch) -> int:
    """The CLI's process: runs until SIGTERM or SIGINT, then drains and exits 0. With more than
    one process it supervises that many children (service/supervisor.py)."""
    if launch.supervised_by is not None:
        die_with_parent(launch.supervised_by)
        return await _serve(settings, launch)
    if launch.processes > 1:
        return await _supervise(settings, launch)
    return await _serve(settings, launch)


def _socket(launch: Launch) -> socket.socket | None:
    if launch.listen_fd is not None:
        return socket.socket(fileno=launch.listen_fd)
    if launch.listens:
        assert launch.host is not None
        return bind(launch.host, launch.port)
    return None


async def _serve(settings: Settings, launch: Launch) -> int:
    async with Service(settings, _socket(launch), launch.worker) as service:
        # Handlers before anything is announced: who reads the announcement may stop us at once
        # (and stdout may be unbuffered).
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, service.stop)
        if launch.ready_fd is not None:
            report_ready(launch.ready_fd)  # the supervisor announces the service
        else:
            worker_id = service.worker.id if service.worker is not None else None
            await _announce(service.context, launch, 1, worker_id)
            _serve_metrics(settings, launch, metrics.registry())
        sys.stdout.flush()
        failures = await service.wait()
    for failure in failures:
        print(f"videohooks: {type(failure).__name__}: {failure}", file=sys.stderr)
    return 1 if failures else 0


async def _supervise(settings: Settings, launch: Launch) -> int:
    listen = _socket(launch)
    if listen is not None:
        listen.listen(BACKLOG)  # connections wait in the queue while the children start
    supervisor = Supervisor(launch.command, launch.processes, listen)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, supervisor.stop)
    try:
        # What must happen once, before the children race for it: the schema, the stored keys,
        # the first API key.
        url = local_url(listen) if listen is not None else None
        async with running(settings, url) as context:
            await supervisor.start_all()
            if supervisor.stopping.is_set():
                return await supervisor.run()
            await _announce(context, launch, launch.processes)
        _serve_metrics(settings, launch, metrics.registry(supervisor.metrics_dir))
        sys.stdout.flush()
        return await supervisor.run()
    except StartFailed as exc:
        print(f"videohooks: {exc}", file=sys.stderr)
        return exc.code if exc.code == CONFIG_EXIT else 1
    finally:
        supervisor.close()
        if listen is not None:
            listen.close()


def _serve_metrics(
    settings: Settings, launch: Launch, registry: prometheus_client.CollectorRegistry
) -> None:
    """A worker has no HTTP API: its metrics get a port of their own when one is configured."""
    if not launch.listens and settings.metrics_listen is not None:
        host, port = settings.metrics_listen
        prometheus_client.start_http_server(port, addr=host, registry=registry)


async def _announce(
    context: Context, launch: Launch, processes: int, worker_id: str | None = None
) -> None:
    settings = context.settings
    details = f"database {settings.database_url}"
    if processes > 1:
        details += f", {processes} processes"
    if launch.listens:
        await announce_api_key(context, print)
        role = "serving" if launch.worker else "API"
        print(f"videohooks {role} on {context.self_url} ({details})")
        if settings.simulator and settings.public_url is not None:
            print(SIMULATOR_WARNING)
    elif worker_id is not None:
        print(f"videohooks worker {worker_id} ({details})")
    else:
        print(f"videohooks workers ({details})")
