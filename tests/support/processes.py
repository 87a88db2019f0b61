"""Runs `videohooks` commands as real processes, as an operator would. No process outlives the
test that started it, whether it passed or not: `started` kills its process when its block ends,
and tests/conftest.py kills any other still running when the test ends (`kill_leftovers`)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import ClassVar


class Process:
    started: ClassVar[list[Process]] = []

    def __init__(self, proc: asyncio.subprocess.Process, log: Path) -> None:
        self.proc = proc
        self.log = log
        self.lines: list[str] = []
        Process.started.append(self)

    @classmethod
    async def start(cls, args: list[str], env: dict[str, str], cwd: Path) -> Process:
        full_env = {
            key: value for key, value in os.environ.items() if not key.startswith("VIDEOHOOKS_")
        }
        # One process unless a test asks for more (tests/test_supervisor.py does).
        full_env |= {"VIDEOHOOKS_LOG_FORMAT": "json", "VIDEOHOOKS_PROCESSES": "1"} | env
        # stderr (the logs) goes to a file so that a chatty process never blocks on a full pipe.
        log = cwd / f"{args[0]}-{len(list(cwd.glob('*.log')))}.log"
        with log.open("wb") as stderr:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "service",
                *args,
                env=full_env,
                cwd=cwd,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
            )
        return cls(proc, log)

    async def expect(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        """Reads stdout until a line matches `pattern`."""
        assert self.proc.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                raw = await self.proc.stdout.readline()
                if not raw:
                    raise AssertionError(
                        f"exited before printing {pattern!r}: {await self.stderr()}"
                    )
                line = raw.decode().rstrip()
                self.lines.append(line)
                if match := re.search(pattern, line):
                    return match

    async def url(self) -> str:
        return (await self.expect(r"on (http://\S+)")).group(1)

    def signal(self, sig: signal.Signals = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)

    async def exit_code(self, timeout: float = 30.0) -> int:
        async with asyncio.timeout(timeout):
            return await self.proc.wait()

    async def stderr(self) -> str:
        return self.log.read_text()

    async def stop(self) -> int:
        if self.proc.returncode is None:
            self.signal()
        return await self.exit_code()

    async def kill(self) -> None:
        """Kills the process if it still runs, and reaps it."""
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        await self.proc.wait()


def kill_leftovers() -> None:
    """Kills every process a test started that still runs (its loop reaps it, or init does)."""
    while Process.started:
        process = Process.started.pop()
        if process.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.proc.kill()


@asynccontextmanager
async def started(args: list[str], env: dict[str, str], cwd: Path) -> AsyncIterator[Process]:
    process = await Process.start(args, env, cwd)
    try:
        yield process
    finally:
        await process.kill()
