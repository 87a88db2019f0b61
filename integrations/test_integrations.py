"""The Zapier app and the n8n nodes (`integrations/`) against a real `videohooks serve`: each
integration's own test suite (`npm test`, Node's test runner) runs with the service it needs,
started here on loopback, and must pass."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

from service.server import bind
from tests.support.service import API_KEY, fast_env

INTEGRATIONS = Path(__file__).resolve().parent

NPM = shutil.which("node") and shutil.which("npm")
if not NPM and os.environ.get("VIDEOHOOKS_REQUIRE_NODE") == "1":
    raise RuntimeError("VIDEOHOOKS_REQUIRE_NODE=1 but node or npm is not on PATH")
pytestmark = pytest.mark.skipif(
    not NPM, reason="integration tests NOT RUN: node and npm are not on PATH"
)

# Written into node_modules after an install: which package-lock.json it installed.
INSTALLED_STAMP = INTEGRATIONS / "node_modules" / ".videohooks-lock-sha256"


def run(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    """Runs a command in its own process group, so that a failing or interrupted test leaves none
    of its children (npm starts node, node starts tsc) behind."""
    process = subprocess.Popen(
        args,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return process.returncode, output.decode(errors="replace")


def node_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("VIDEOHOOKS_")}
    # Zapier's SDK sends its logs to Zapier when given a logging token; nothing leaves here.
    env.pop("LOGGING_TOKEN", None)
    # CI=true: unattended, so n8n's CLI prints its result instead of animating a spinner.
    return env | {"CI": "true", "npm_config_update_notifier": "false"} | extra


@pytest.fixture(scope="module")
def installed() -> None:
    """`npm ci` once for both integrations (an npm workspace), and only when node_modules is
    missing or was installed from another package-lock.json."""
    lock = hashlib.sha256((INTEGRATIONS / "package-lock.json").read_bytes()).hexdigest()
    if INSTALLED_STAMP.exists() and INSTALLED_STAMP.read_text() == lock:
        return
    # Install scripts stay off: the only ones in the tree are a pnpm-only guard in n8n's lint
    # plugin and a native sandbox n8n-workflow builds for expressions, which nothing here runs.
    args = [str(NPM), "ci", "--ignore-scripts", "--no-audit", "--no-fund"]
    code, output = run(args, INTEGRATIONS, node_env())
    assert code == 0, f"npm ci failed:\n{output}"
    INSTALLED_STAMP.write_text(lock)


@pytest.fixture
def service_url(tmp_path: Path) -> Iterator[str]:
    """A fresh `videohooks serve` for each integration: the Zapier suite needs one where no
    video has failed yet."""
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    sock.close()
    url = f"http://127.0.0.1:{port}"
    env = {key: value for key, value in os.environ.items() if not key.startswith("VIDEOHOOKS_")}
    env |= fast_env(tmp_path) | {"VIDEOHOOKS_PUBLIC_URL": url}
    with (tmp_path / "serve.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "service", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        while not ready(url):
            assert process.poll() is None, (tmp_path / "serve.log").read_text()
            time.sleep(0.05)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, (tmp_path / "serve.log").read_text()


def ready(url: str) -> bool:
    try:
        return httpx.get(url + "/readyz").status_code == 200
    except httpx.TransportError:
        return False


@pytest.mark.parametrize("integration", ["zapier", "n8n"])
def test_the_integration_passes_its_tests_against_a_real_service(
    integration: str, installed: None, service_url: str
) -> None:
    code, output = run(
        [str(NPM), "test"],
        INTEGRATIONS / integration,
        node_env(VIDEOHOOKS_URL=service_url, VIDEOHOOKS_API_KEY=API_KEY),
    )
    assert code == 0, f"npm test in integrations/{integration} failed:\n{output}"
