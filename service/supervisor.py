"""Runs `serve`, `web` or `worker` in several processes (`--processes N`, VIDEOHOOKS_PROCESSES).

One Python process runs one event loop on one core; the service's work is shared through the
database (claims, leases, heartbeats), as between separately started workers, so N copies of a
command use N cores with nothing else to coordinate. This supervisor is the process an operator
starts and signals:

- it prepares what must happen once (the schema, the first API key), then starts N children, each
  `videohooks COMMAND` in one process; `web` and `serve` children accept connections on the one
  socket the supervisor listens on (the kernel hands each connection to one of them);
- a child reports itself ready through a pipe; the supervisor announces the service once every
  child is ready;
- SIGTERM or SIGINT is passed to every child, each drains as a single process does, and the
  supervisor exits 0 once all have;
- a child that dies (a crash, an OOM kill) is started again, after a pause that grows while it
  keeps dying young; what it held is freed by its missing heartbeat, as for any dead worker;
- a child exits when the supervisor dies, even by kill -9 (Linux's parent-death signal), so no
  process outlives the service it belonged to.

Counters and histograms from every child are merged by prometheus_client's multiprocess mode (a
directory the supervisor creates and removes), so /metrics on any child, or the supervisor's own
VIDEOHOOKS_METRICS_LISTEN, reports the whole service.

Written by hand because the alternatives do not fit: uvicorn's `--workers` runs the HTTP app only
(not the worker's loops), and gunicorn or a process manager would be a second program to install
and configure for what is one command here.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass

from prometheus_client import multiprocess

from service.metrics import MULTIPROC_ENV

log = logging.getLogger("videohooks.supervisor")

CONFIG_EXIT = 2  # a child that exits with this will not start better the next time
RESTART_PAUSE_S = 1.0
RESTART_PAUSE_MAX_S = 30.0
YOUNG_S = 10.0  # a child that dies younger than this makes the next pause longer
_PR_SET_PDEATHSIG = 1


@dataclass
class Child:
    index: int
    process: asyncio.subprocess.Process
    started_at: float


class StartFailed(Exception):
    """A child exited before it was ready."""

    def __init__(self, child: Child, code: int) -> None:
        super().__init__(f"a process exited with code {code} while starting")
        self.child = child
        self.code = code


def die_with_parent(parent_pid: int) -> None:
    """Called first in a child: the kernel kills it when the supervisor dies (Linux). Elsewhere
    the child lives on, as a separately started worker would, until it is stopped."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # it died before the signal was armed
        os._exit(1)


def report_ready(ready_fd: int) -> None:
    os.write(ready_fd, b"1")
    os.close(ready_fd)


class Supervisor:
    def __init__(self, command: str, count: int, listen: socket.socket | None) -> None:
        self.command = command
        self.count = count
        self.listen = listen
        self.stopping = asyncio.Event()
        self.children: dict[int, Child] = {}
        self.pauses = [RESTART_PAUSE_S] * count
        self.metrics_dir = tempfile.mkdtemp(prefix="videohooks-metrics-")

    def stop(self) -> None:
        self.stopping.set()
        for child in self.children.values():
            with contextlib.suppress(ProcessLookupError):
                child.process.send_signal(signal.SIGTERM)

    async def start_all(self) -> None:
        """Starts every child and waits until each is ready; StartFailed if one exits first
        (unless told to stop meanwhile, which ends a child's start too)."""
        ready = await asyncio.gather(
            *(self._start(index) for index in range(self.count)), return_exceptions=True
        )
        failures = [result for result in ready if isinstance(result, BaseException)]
        if failures:
            stopping = self.stopping.is_set()
            self.stop()
            await self._reap_all()
            if not stopping:
                raise failures[0]

    async def run(self) -> int:
        """Keeps N children running until stopped; 0 when every child stopped cleanly."""
        while self.children:
            waits = {
                asyncio.ensure_future(child.process.wait()): child
                for child in self.children.values()
            }
            stopped = asyncio.ensure_future(self.stopping.wait())
            done, _ = await asyncio.wait([*waits, stopped], return_when=asyncio.FIRST_COMPLETED)
            for future in [*waits, stopped]:
                if future not in done:
                    future.cancel()
            if stopped in done:
                return await self._reap_all()
            for future in done:
                child = waits[future]
                self._forget(child)
                if not await self._restart(child, future.result()):
                    self.stop()
                    await self._reap_all()
                    return CONFIG_EXIT
        return 0

    def close(self) -> None:
        shutil.rmtree(self.metrics_dir, ignore_errors=True)

    async def _restart(self, child: Child, code: int) -> bool:
        """Starts a child again after it died; False when it cannot run as configured."""
        if code == CONFIG_EXIT:
            log.error("a process exited: bad configuration", extra={"pid": child.process.pid})
            return False
        lived = time.monotonic() - child.started_at
        pause = self.pauses[child.index]
        self.pauses[child.index] = (
            min(pause * 2, RESTART_PAUSE_MAX_S) if lived < YOUNG_S else RESTART_PAUSE_S
        )
        log.error(
            "a process died; starting another",
            extra={"pid": child.process.pid, "exit_code": code, "restart_in_s": pause},
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), pause)
        if self.stopping.is_set():
            return True
        try:
            await self._start(child.index)
        except StartFailed as exc:
            return await self._restart(exc.child, exc.code)
        return True

    async def _start(self, index: int) -> None:
        read_end, write_end = os.pipe()
        fds = [write_end]
        args = ["--processes", "1", "--ready-fd", str(write_end)]
        if self.listen is not None:
            fds.append(self.listen.fileno())
            args += ["--listen-fd", str(self.listen.fileno())]
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "service",
                self.command,
                *args,
                "--supervised-by",
                str(os.getpid()),
                pass_fds=fds,
                env=os.environ | {MULTIPROC_ENV: self.metrics_dir},
            )
        finally:
            os.close(write_end)
        child = Child(index, process, time.monotonic())
        self.children[index] = child
        with os.fdopen(read_end, "rb") as ready:
            # The pipe's end is closed without a byte when the child exits before it is ready.
            started = await asyncio.to_thread(ready.read, 1)
        if not started:
            code = await process.wait()
            self._forget(child)
            raise StartFailed(child, code)

    def _forget(self, child: Child) -> None:
        self.children.pop(child.index, None)
        if child.process.pid is not None:
            multiprocess.mark_process_dead(child.process.pid, self.metrics_dir)

    async def _reap_all(self) -> int:
        """Waits for every child to finish draining; 0 when all exited cleanly."""
        codes = await asyncio.gather(*(child.process.wait() for child in self.children.values()))
        for child in list(self.children.values()):
            self._forget(child)
        return 0 if all(code == 0 for code in codes) else 1
