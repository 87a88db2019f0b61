"""The README's curl walk-through, run as written (its commands marked
`<!-- walkthrough: NAME -->`, on free ports instead of 8000 and 9000) and run twice: every run
makes a new job, and an Idempotency-Key replay says it is one."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
from pathlib import Path

import pytest

from tests.support.processes import Process
from tests.support.servers import free_port

pytestmark = pytest.mark.usefixtures("processes_reaped")

README = Path(__file__).parents[1] / "README.md"
BLOCK = re.compile(r"<!-- walkthrough: (\w+) -->\n```sh\n(.*?)```", re.S)


class Walkthrough:
    def __init__(self, service_port: int, listen_port: int) -> None:
        self.blocks = dict(BLOCK.findall(README.read_text()))
        self.service_port = service_port
        self.listen_port = listen_port

    def command(self, name: str) -> str:
        return (
            self.blocks[name]
            .replace("127.0.0.1:8000", f"127.0.0.1:{self.service_port}")
            .replace("--port 9000", f"--port {self.listen_port}")
            .replace("127.0.0.1:9000", f"127.0.0.1:{self.listen_port}")
        )

    async def sh(self, name: str, key: str) -> str:
        shell = await asyncio.create_subprocess_exec(
            "bash",
            "-ec",
            self.command(name),
            env=os.environ | {"KEY": key},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(shell.communicate(), 60)
        assert shell.returncode == 0, err.decode()
        return out.decode()


def answer(raw: str) -> tuple[int, dict[str, str], dict]:
    """Status, headers and JSON body of `curl -si` output."""
    head, _, body = raw.replace("\r\n", "\n").partition("\n\n")
    status_line, *lines = head.splitlines()
    headers = dict(line.lower().split(": ", 1) for line in lines)
    return int(status_line.split()[1]), headers, json.loads(body)


async def test_the_readme_walk_through_works_when_run_twice(tmp_path):
    walk = Walkthrough(free_port(), free_port())
    assert set(walk.blocks) == {"subscribe", "listen", "submit", "replay"}
    # As the README starts it: a public URL and private subscriber URLs allowed.
    env = {
        "VIDEOHOOKS_PUBLIC_URL": f"http://127.0.0.1:{walk.service_port}",
        "VIDEOHOOKS_ALLOW_PRIVATE_URLS": "true",
    }
    serve = await Process.start(["serve", "--port", str(walk.service_port)], env, tmp_path)
    listen = None
    try:
        key = (await serve.expect(r"API key \(shown once; only its hash is stored\): (\S+)"))[1]
        await serve.url()
        subscription = json.loads(await walk.sh("subscribe", key))
        assert subscription["url"] == f"http://127.0.0.1:{walk.listen_port}/hooks"

        listen_args = shlex.split(walk.command("listen").replace("whsec_…", subscription["secret"]))
        assert listen_args[0] == ".venv/bin/videohooks"
        listen = await Process.start(listen_args[1:], {}, tmp_path)
        await listen.url()

        videos = [json.loads(await walk.sh("submit", key)) for _ in range(2)]
        assert videos[0]["id"] != videos[1]["id"]  # the second run is a job of its own
        assert [video["status"] for video in videos] == ["queued", "queued"]
        delivered = set()
        while len(delivered) < 2:
            line = await listen.expect(r"^video\.completed evt_\S+ for (vid_\S+): (.*?);")
            assert line[2] == "signature verified"
            delivered.add(line[1])
        assert delivered == {video["id"] for video in videos}

        first, again = [answer(await walk.sh("replay", key)) for _ in range(2)]
        assert first[0] == 202 and "idempotent-replayed" not in first[1]
        assert again[0] == 200 and again[1]["idempotent-replayed"] == "true"
        assert again[2]["id"] == first[2]["id"]
    finally:
        if listen is not None:
            await listen.stop()
        assert await serve.stop() == 0
