"""Workers' heartbeats: the claims of a worker whose heartbeat stopped, or whose process is gone,
are given back without waiting for their leases."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from service.heartbeat import SILENT_AFTER, Heartbeat, alive, host_key
from tests.support.databases import BACKENDS


def a_finished_process() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
async def test_a_beat_forgets_silent_workers_and_exited_neighbours(store):
    now, host = time.time(), host_key()
    exited = a_finished_process()
    await store.heartbeat("exited", host, exited, now)
    await store.heartbeat("neighbour", host, os.getppid(), now)  # alive, on this host
    await store.heartbeat("elsewhere", "another-host", exited, now)  # pids elsewhere mean nothing
    await store.heartbeat("silent", "another-host", 7, now - SILENT_AFTER - 1)
    assert not alive(exited) and alive(os.getppid())
    assert sorted(await Heartbeat(store, "me").beat()) == ["exited", "silent"]
    assert sorted(await store.workers_on_host(host)) == sorted(
        [("neighbour", os.getppid()), ("me", os.getpid())]
    )
    assert await store.workers_on_host("another-host") == [("elsewhere", exited)]


def test_a_killed_process_not_yet_reaped_is_not_alive():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        child.kill()
        # Killed, a zombie until its parent reaps it: it runs no code, holds nothing.
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
        assert not alive(child.pid)
    finally:
        child.wait()
