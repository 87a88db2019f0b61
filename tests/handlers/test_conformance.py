"""What every provider handler must do, checked against each provider's fake over real HTTP.

A provider joins this suite by adding tests/handlers/fakes/<provider>.py; its own test module
covers what is particular to it (field names, status table, webhook signatures).
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import socket
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from handlers import handler_class
from handlers.base import PermanentError, Provider, SubmitRequest, TransientError
from tests.handlers.fakes.base import FakeProvider, serve
from tests.support.servers import eventually
from tests.support.service import running_service
from tests.support.subscriber import recording_subscriber

PROVIDERS = sorted(
    path.stem
    for path in (Path(__file__).parent / "fakes").glob("*.py")
    if path.stem not in ("__init__", "base")
)


def dig(data: Any, dotted: str) -> Any:
    """The value at a dotted path; a number indexes a list ("content.0.text")."""
    for part in dotted.split("."):
        data = data[int(part)] if isinstance(data, list) else data[part]
    return data


def nest(dotted: str, value: Any) -> dict[str, Any]:
    """The object that has `value` at the dotted path; a list for a number (in `input`, a list
    replaces the provider's whole list)."""
    *parents, leaf = dotted.split(".")
    nested: Any = {leaf: value}
    for parent in reversed(parents):
        nested = [*[{}] * int(parent), nested] if parent.isdigit() else {parent: nested}
    return dict(nested)


@pytest.fixture(params=PROVIDERS)
def provider(request) -> str:
    return str(request.param)


@pytest.fixture
async def fake(provider: str):
    module = importlib.import_module(f"tests.handlers.fakes.{provider}")
    async with serve(module.Fake()) as running:
        yield running


@pytest.fixture
async def handler(fake: FakeProvider):
    async with httpx.AsyncClient(timeout=httpx.Timeout(1.0)) as http:
        yield handler_class(fake.name)(fake.config(), http)


def a_request(fake: FakeProvider, **fields: Any) -> SubmitRequest:
    return SubmitRequest(
        job_id="vid_conformance", model=fake.model, **({"prompt": "a red fox"} | fields)
    )


async def test_submit_sends_the_credential_and_merges_input(fake, handler: Provider):
    report = await handler.submit(a_request(fake, input={"custom_option": "on"}))
    [recorded] = fake.submissions()
    assert fake.authenticated(recorded)
    fields = fake.submitted(recorded)
    assert dig(fields, fake.prompt_field) == "a red fox"
    assert fields["custom_option"] == "on"
    assert report.provider_job_id
    assert report.status in ("queued", "in_progress")


async def test_input_wins_over_the_normalized_fields(fake, handler: Provider):
    await handler.submit(
        a_request(fake, prompt="normalized", input=nest(fake.prompt_field, "from input"))
    )
    assert dig(fake.submitted(fake.submissions()[0]), fake.prompt_field) == "from input"


async def test_a_rejection_is_permanent_and_carries_the_providers_message(fake, handler: Provider):
    fake.script("submit", 400, fake.error_body("the prompt is not allowed"))
    with pytest.raises(PermanentError) as raised:
        await handler.submit(a_request(fake))
    assert "the prompt is not allowed" in raised.value.message


# Bodies Python's json module crashes on or lets through although they are not JSON; every
# handler reads provider answers and webhooks with handlers/strictjson.py, which refuses them.
HOSTILE_JSON = {
    "deep nesting": b"[" * 100_000,
    "nesting past the limit": b"[" * 100 + b"]" * 100,
    "NaN": b'{"id": "abc", "status": "completed", "progress": NaN}',
    "Infinity": b'{"id": "abc", "status": "completed", "eta": -Infinity}',
    "a 5,000-digit integer": b'{"id": "abc", "n": 1' + b"0" * 5000 + b"}",
    "a number beyond a double": b'{"id": "abc", "n": 1e400}',
    "a lone surrogate": b'{"id": "\\ud800", "status": "completed"}',
    "U+0000": b'{"id": "a\\u0000b", "status": "completed"}',
    "invalid UTF-8": b'{"id": "\xff\xfe"}',
}

TRANSIENT = {
    "server error": dict(status=500, body={"error": {"message": "internal"}}),
    "bad gateway": dict(status=502, body="<html>bad gateway</html>"),
    "rate limited": dict(
        status=429, body={"error": {"message": "slow down"}}, headers={"retry-after": "7"}
    ),
    "timeout": dict(status=200, body={}, delay=1.5),
    "malformed JSON": dict(status=200, body="{not json"),
    "truncated JSON": dict(status=200, body='{"id": "abc", "sta'),
    "wrong shape": dict(status=200, body=["unexpected"]),
    **{
        f"hostile JSON: {name}": dict(status=200, body=body.decode(errors="surrogateescape"))
        for name, body in HOSTILE_JSON.items()
        if name != "invalid UTF-8"
    },
}


@pytest.mark.parametrize("case", TRANSIENT)
async def test_transient_failures_on_submit_and_status(fake, handler: Provider, case):
    fake.script("submit", **TRANSIENT[case])
    with pytest.raises(TransientError) as raised:
        await handler.submit(a_request(fake))
    if case == "rate limited":
        assert raised.value.retry_after == 7
    report = await handler.submit(a_request(fake))
    fake.script("status", **TRANSIENT[case])
    with pytest.raises(TransientError):
        await handler.fetch_status(report.provider_job_id)


@pytest.mark.parametrize("body", HOSTILE_JSON.values(), ids=list(HOSTILE_JSON))
async def test_a_hostile_webhook_body_is_unreadable_not_a_crash(handler: Provider, body):
    with pytest.raises(TransientError):
        handler.parse_webhook(body)


def a_closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_a_provider_that_cannot_be_reached_is_transient(fake, provider: str):
    config = dataclasses.replace(fake.config(), base_url=f"http://127.0.0.1:{a_closed_port()}")
    async with httpx.AsyncClient(timeout=httpx.Timeout(1.0)) as http:
        unreachable = handler_class(provider)(config, http)
        with pytest.raises(TransientError):
            await unreachable.submit(a_request(fake))
        with pytest.raises(TransientError):
            await unreachable.fetch_status("job-that-was-submitted-before")
    assert fake.submissions() == []


async def test_every_normalized_status_round_trips(fake, handler: Provider):
    report = await handler.submit(a_request(fake))
    for status in fake.statuses:
        fake.set_status(fake.latest(), status)
        seen = await handler.fetch_status(report.provider_job_id)
        assert seen.status == status
        assert seen.progress is None or 0 <= seen.progress <= 100
        if status == "completed":
            assert seen.outputs and all(output.content_type for output in seen.outputs)
        if status == "failed":
            assert seen.error is not None and seen.error.message


async def test_an_unknown_status_is_in_progress_and_logged(fake, handler: Provider, caplog):
    report = await handler.submit(a_request(fake))
    fake.set_raw_status(fake.latest(), "warp_speed")
    with caplog.at_level(logging.WARNING, logger="videohooks"):
        seen = await handler.fetch_status(report.provider_job_id)
    assert seen.status == "in_progress"
    assert any("warp_speed" in str(vars(record)) for record in caplog.records)


async def test_a_job_runs_through_the_service(fake, env):
    env |= fake.env()
    async with recording_subscriber() as subscriber, running_service(env, public=False) as svc:
        await svc.subscribe(subscriber.url)
        video = await svc.submit(model=f"{fake.name}/{fake.model}", input={})
        await eventually(lambda: fake.jobs)
        fake.set_status(fake.latest(), "completed")
        await eventually(lambda: subscriber.received, timeout=15)
        event = subscriber.received[0].event
        assert event["type"] == "video.completed"
        assert event["data"]["id"] == video["id"] and event["data"]["provider"] == fake.name
        assert event["data"]["outputs"]


# Providers that document no way to reconcile a submission that may have reached them unanswered
# (the others are shown reconciling in tests/test_paying_once.py).
UNRECONCILABLE = [name for name in PROVIDERS if handler_class(name).reconciliation == "none"]


@pytest.mark.parametrize("provider", UNRECONCILABLE)
async def test_a_late_answer_is_never_sent_again_and_fails_as_uncertain(fake, env):
    env |= fake.env() | {"VIDEOHOOKS_PROVIDER_TIMEOUT": "1s", "VIDEOHOOKS_SUBMIT_RECONCILE": "1s"}
    fake.holding = 1  # accepted at once, answered only after the client gave up
    async with running_service(env, public=False) as svc:
        video = await svc.submit(model=f"{fake.name}/{fake.model}", input={})
        await eventually(lambda: _failed(svc, video["id"]), timeout=60)
        failed = await svc.video(video["id"])
    assert failed["error"]["code"] == "submission_uncertain", failed["error"]
    assert len(fake.submissions()) == 1 and len(fake.jobs) == 1


async def _failed(svc, video_id: str) -> bool:
    return (await svc.video(video_id))["status"] == "failed"
