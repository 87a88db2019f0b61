"""Which workers are alive. Each worker refreshes a row of its own every few seconds; the claims
of a worker that stopped are given back at once rather than when their leases lapse (minutes,
for a job being submitted), so that a crash delays its work by seconds. procrastinate keeps
workers' heartbeats for the same reason.

A worker is taken for stopped when its heartbeat is older than SILENT_AFTER, or, on the same host,
as soon as its process is gone: a restarted `videohooks serve` releases what its killed
predecessor held before it claims anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from pathlib import Path

from storage.base import CHANNELS, Store

log = logging.getLogger("videohooks.worker")

HEARTBEAT_INTERVAL = 5.0
# Six missed beats: a worker busy enough to be late by seconds is not declared dead.
SILENT_AFTER = 30.0


def host_key() -> str:
    """This machine, and the process namespace in it: pids are only comparable within one (two
    containers of one host may both run a pid 7)."""
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return socket.gethostname()
    return f"{socket.gethostname()}/{namespace}"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    try:
        # A zombie (killed, not yet reaped by its parent) runs no code.
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


class Heartbeat:
    def __init__(self, store: Store, worker_id: str) -> None:
        self.store = store
        self.worker_id = worker_id
        self.host = host_key()

    async def beat(self) -> list[str]:
        """Refreshes this worker's row and gives back the claims of workers that stopped; their
        ids."""
        now = time.time()
        await self.store.heartbeat(self.worker_id, self.host, os.getpid(), now)
        dead = [
            worker
            for worker, pid in await self.store.workers_on_host(self.host)
            if worker != self.worker_id and not alive(pid)
        ]
        gone = await self.store.reap_workers(now - SILENT_AFTER, dead)
        if gone:
            exited = [worker for worker in gone if worker in dead]
            silent = [worker for worker in gone if worker not in dead]
            log.warning(
                "gave back the claims of stopped workers",
                extra={"exited": exited, "silent": silent},
            )
            for channel in CHANNELS:
                self.store.notify(channel)
        return gone

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), HEARTBEAT_INTERVAL)
            if stopping.is_set():
                return
            try:
                await self.beat()
            except Exception:
                log.exception("heartbeat failed")
