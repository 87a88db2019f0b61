"""docs/receiving.md cannot rot: each of its snippets (marked `<!-- snippet: NAME -->`) is run
against real deliveries from a running service — the Python ones in-process, the Node.js one
with `node` and the `standardwebhooks` package from npm — and must accept them and refuse them
tampered; each example payload (`<!-- example: TYPE -->`) must match the OpenAPI document's
schema for its type."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from standardwebhooks import Webhook

from service.api.openapi import document
from service.server import bind
from tests.support.servers import eventually
from tests.support.service import Running, running_service
from tests.support.subscriber import Received, Subscriber, recording_subscriber

ROOT = Path(__file__).parents[1]
RECEIVING = ROOT / "docs" / "receiving.md"
# The npm package the Node.js snippet imports, pinned by a committed lockfile.
NPM_FOLDER = Path(__file__).parent / "receiving"
MARKED = re.compile(r"<!-- (snippet|example): ([\w.-]+) -->\n```\w+\n(.*?)```", re.S)

NODE = shutil.which("node") and shutil.which("npm")
NODE_NOT_RUN = "Node.js snippet NOT RUN: node and npm are not on PATH"
if not NODE and os.environ.get("VIDEOHOOKS_REQUIRE_NODE") == "1":
    raise RuntimeError("VIDEOHOOKS_REQUIRE_NODE=1 but node or npm is not on PATH")


def marked(kind: str) -> dict[str, str]:
    return {
        name: code for found, name, code in MARKED.findall(RECEIVING.read_text()) if found == kind
    }


def run_python(name: str, secret: str | None = None) -> dict[str, Any]:
    """Runs a Python snippet as its own module, with WEBHOOK_SECRET set; its names, to call."""
    namespace: dict[str, Any] = {"__name__": f"receiving_{name}"}
    with pytest.MonkeyPatch.context() as patch:
        if secret is not None:
            patch.setenv("WEBHOOK_SECRET", secret)
        exec(compile(marked("snippet")[name], f"{RECEIVING}:{name}", "exec"), namespace)
    return namespace


@dataclass
class Delivered:
    """A running service, a subscription, and what its receiver got."""

    svc: Running
    subscription: dict[str, Any]
    subscriber: Subscriber

    @property
    def secret(self) -> str:
        return str(self.subscription["secret"])


@contextlib.asynccontextmanager
async def a_real_delivery(env: dict[str, str], **simulate: Any) -> AsyncIterator[Delivered]:
    """A simulator job's event, delivered to a subscription by the service."""
    async with recording_subscriber() as subscriber, running_service(env) as svc:
        subscription = await svc.subscribe(subscriber.url + "/webhooks")
        await svc.submit({"after_s": 0.1, **simulate})
        await eventually(lambda: subscriber.received)
        yield Delivered(svc, subscription, subscriber)


def tampered(received: Received) -> bytes:
    body = received.body.replace(b'"progress":', b'"progress":1', 1)
    assert body != received.body
    return body


def test_the_page_marks_its_three_snippets_and_three_examples():
    assert set(marked("snippet")) == {"node", "python", "hmac"}
    assert set(marked("example")) == set(document()["webhooks"])


def test_each_example_payload_matches_its_schema_in_the_openapi_document():
    openapi = document()
    for event_type, text in marked("example").items():
        content = openapi["webhooks"][event_type]["post"]["requestBody"]["content"]
        schema = {"components": openapi["components"]} | content["application/json"]["schema"]
        example = json.loads(text)
        assert example["type"] == event_type
        errors = [error.message for error in Draft202012Validator(schema).iter_errors(example)]
        assert not errors, (event_type, errors)


async def test_the_python_snippet_accepts_a_real_delivery_once_and_refuses_it_tampered(env, capsys):
    async with a_real_delivery(env) as delivered:
        [received] = delivered.subscriber.received
        receive = run_python("python", delivered.secret)["receive"]
        event = received.event
        assert receive(received.body, received.headers) == 204
        printed = capsys.readouterr().out.splitlines()
        assert printed == [
            f"video.completed {event['id']}: verified",
            f"video {event['data']['id']} is ready: {event['data']['outputs'][0]['url']}",
        ]
        # The same delivery again (a retry): accepted, not handled twice.
        assert receive(received.body, received.headers) == 204
        assert capsys.readouterr().out == f"{event['id']}: already handled\n"
        assert receive(tampered(received), received.headers) == 400
        assert capsys.readouterr().out.startswith("refused: ")
        other = run_python("python", "whsec_" + "c2VjcmV0LW9mLXNvbWVib2R5LWVsc2UtMDAwMA==")
        assert other["receive"](received.body, received.headers) == 400


async def test_the_python_snippet_reports_a_failed_video(env, capsys):
    async with a_real_delivery(env, outcome="failed", error_message="too dark") as delivered:
        [received] = delivered.subscriber.received
        receive = run_python("python", delivered.secret)["receive"]
        assert receive(received.body, received.headers) == 204
        lines = capsys.readouterr().out.splitlines()
        assert lines[-1] == f"video {received.event['data']['id']} failed: too dark"


async def test_the_plain_hmac_snippet_accepts_real_deliveries_and_nothing_else(env):
    verify = run_python("hmac")["verify"]
    async with a_real_delivery(env) as delivered:
        svc, subscription, subscriber = delivered.svc, delivered.subscription, delivered.subscriber
        [received] = subscriber.received
        headers = received.headers

        def check(body: bytes, secret: str = delivered.secret, **changed: str) -> bool:
            values = headers | changed
            return verify(
                secret,
                body,
                values["webhook-id"],
                values["webhook-timestamp"],
                values["webhook-signature"],
            )

        assert check(received.body)
        assert not check(tampered(received))
        assert not check(received.body, "whsec_" + "c2VjcmV0LW9mLXNvbWVib2R5LWVsc2UtMDAwMA==")
        assert not check(received.body, **{"webhook-id": "evt_another"})
        assert not check(received.body, **{"webhook-timestamp": "soon"})

        # Rotating: both secrets sign, and either verifies the next delivery.
        rotated = (
            await svc.api.post(f"/v1/subscriptions/{subscription['id']}/rotate-secret")
        ).json()
        await svc.submit({"after_s": 0.1})
        await eventually(lambda: len(subscriber.received) == 2)
        during = subscriber.received[1]
        assert len(during.headers["webhook-signature"].split(" ")) == 2
        for secret in (subscription["secret"], rotated["secret"]):
            assert verify(secret, during.body, *_signature_headers(during.headers))

    # The tolerance: a genuine signature made six minutes ago is refused, one of a minute ago not.
    for age, accepted in ((360, False), (60, True)):
        at = int(time.time()) - age
        text = received.body.decode()
        signature = Webhook(subscription["secret"]).sign(
            received.event["id"], datetime.fromtimestamp(at, UTC), text
        )
        assert (
            check(received.body, **{"webhook-timestamp": str(at), "webhook-signature": signature})
            is accepted
        )


def _signature_headers(headers: dict[str, str]) -> tuple[str, str, str]:
    return headers["webhook-id"], headers["webhook-timestamp"], headers["webhook-signature"]


@pytest.fixture(scope="module")
def node_modules() -> Path:
    """`npm ci` from the committed lockfile, once, when node_modules is missing."""
    if not NODE:
        pytest.skip(NODE_NOT_RUN)
    installed = NPM_FOLDER / "node_modules"
    if not (installed / "standardwebhooks" / "package.json").exists():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"], cwd=NPM_FOLDER, check=True, timeout=300
        )
    return installed


class NodeReceiver:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []

    async def expect(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        """Reads its output until a line matches."""
        assert self.process.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                raw = await self.process.stdout.readline()
                if not raw:
                    raise AssertionError(f"node exited before {pattern!r}: {self.lines}")
                self.lines.append(raw.decode().rstrip())
                if match := re.search(pattern, self.lines[-1]):
                    return match


@contextlib.asynccontextmanager
async def node_receiver(
    folder: Path, modules: Path, secret: str, port: int
) -> AsyncIterator[NodeReceiver]:
    folder.mkdir()
    (folder / "node_modules").symlink_to(modules)
    (folder / "receiver.mjs").write_text(marked("snippet")["node"])
    process = await asyncio.create_subprocess_exec(
        "node",
        "receiver.mjs",
        cwd=folder,
        env=os.environ | {"WEBHOOK_SECRET": secret, "PORT": str(port)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        receiver = NodeReceiver(process)
        await receiver.expect(rf"listening on port {port}")
        yield receiver
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


async def test_the_node_snippet_accepts_real_deliveries_once_and_refuses_them_tampered(
    env, tmp_path, node_modules
):
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    sock.close()
    async with running_service(env) as svc:
        subscription = await svc.subscribe(f"http://127.0.0.1:{port}/webhooks")
        async with node_receiver(
            tmp_path / "node", node_modules, subscription["secret"], port
        ) as receiver:
            video = await svc.submit({"after_s": 0.1})
            event_id = (await receiver.expect(r"^video\.completed (evt_\w+): verified$")).group(1)
            await receiver.expect(rf"^video {video['id']} is ready: http")
            [delivery] = (
                await svc.api.get("/v1/deliveries", params={"subscription_id": subscription["id"]})
            ).json()["data"]
            await eventually(lambda: _succeeded(svc, delivery["id"]))

            # Sent again by the service: the same webhook-id, accepted and not handled twice.
            await svc.api.post(f"/v1/events/{event_id}/redeliver")
            await receiver.expect(rf"^{event_id}: already handled$")

            # The event exactly as the service sends it, signed as it signs, then altered.
            payload = (await svc.api.get(f"/v1/events/{event_id}")).text
            now = datetime.now(UTC)
            headers = {
                "webhook-id": event_id,
                "webhook-timestamp": str(int(now.timestamp())),
                "webhook-signature": Webhook(subscription["secret"]).sign(event_id, now, payload),
                "content-type": "application/json",
            }
            altered = payload.replace('"progress":100', '"progress":99')
            assert altered != payload
            refused = await svc.api.post(
                f"http://127.0.0.1:{port}/webhooks", content=altered, headers=headers
            )
            assert refused.status_code == 400
            await receiver.expect(r"^refused: No matching signature found$")

            # A video that failed is reported as such.
            failed = await svc.submit({"after_s": 0.1, "outcome": "failed", "error_message": "no"})
            await receiver.expect(rf"^video {failed['id']} failed: no$")


async def _succeeded(svc, delivery_id: str) -> bool:
    found = (await svc.api.get("/v1/deliveries", params={"limit": 100})).json()["data"]
    return any(d["id"] == delivery_id and d["status"] == "succeeded" for d in found)
