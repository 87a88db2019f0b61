"""What the fuzzers share: a `videohooks` process on loopback with its log in a file, and the
tracebacks that log holds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2 as httpx

from handlers import handler_class, implemented
from tests.support.service import API_KEY

# Every provider configured (so that every model id the schema allows is accepted), its API at a
# loopback port where nothing listens: a `web` process never calls it anyway.
PROVIDERS = tuple(name for name in implemented() if name != "simulator")


def fuzz_env(folder: Path, **settings: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("VIDEOHOOKS_")}
    env |= {
        "VIDEOHOOKS_DATABASE_URL": f"sqlite:///{folder}/fuzz.db",
        "VIDEOHOOKS_API_KEYS": API_KEY,
        "VIDEOHOOKS_LOG_FORMAT": "json",
        "VIDEOHOOKS_LOG_LEVEL": "WARNING",
    }
    for name in PROVIDERS:
        for credential in handler_class(name).credentials:
            env[f"VIDEOHOOKS_{name.upper()}_{credential}"] = "fuzz"
        env[f"VIDEOHOOKS_{name.upper()}_BASE_URL"] = "http://127.0.0.1:9"
    return env | {f"VIDEOHOOKS_{key.upper()}": value for key, value in settings.items()}


@contextmanager
def videohooks(command: str, env: dict[str, str], log: Path, port: int) -> Iterator[str]:
    """`videohooks <command>` on 127.0.0.1:<port> until the block ends; yields its URL. The
    process is stopped (killed if it will not stop) however the block ends."""
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "service", command, "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    while process.poll() is None:
        try:
            if httpx.get(url + "/readyz").status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError(f"videohooks exited with {process.returncode} before it was ready")


def tracebacks(log: Path) -> list[str]:
    """The exceptions a JSON log recorded (and any line that is not JSON, such as a traceback
    printed by something that bypassed logging)."""
    found = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            found.append(line)
            continue
        if "exc" in entry or entry.get("level") in ("error", "critical"):
            found.append(f"{entry.get('msg')}: {entry.get('exc', '')}")
    return found
