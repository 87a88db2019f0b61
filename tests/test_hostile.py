"""Hostile input gets a 4xx in the contract's error shape, never a 5xx, and nothing is stored:
each case found by hand, on the routes it was found on (tests/test_hostile_fuzz.py generates
more)."""

from __future__ import annotations

import base64
import time

import httpx2 as httpx
import pytest

from tests.support.databases import BACKENDS
from tests.support.servers import eventually
from tests.support.service import running_service
from tests.support.subscriber import recording_subscriber

DEEP = b"[" * 100_000
HUGE_INTEGER = b'{"model": "simulator/default", "input": {"a": 1' + b"0" * 5000 + b"}}"


def video(fragment: str) -> bytes:
    return f'{{"model": "simulator/default", {fragment}}}'.encode()


# (body, status, error code, the field the details name)
BODIES = [
    (DEEP, 422, "invalid_request", "body"),
    (
        video('"input": ' + "[" * 100 + "]" * 100),
        422,
        "invalid_request",
        "input." + "0." * 63 + "0",
    ),
    (HUGE_INTEGER, 422, "invalid_request", "input.a"),
    (video('"input": {"n": 1e400}'), 422, "invalid_request", "input.n"),
    (video('"duration": 1e400'), 422, "invalid_request", "duration"),
    (video('"seed": 1e30'), 422, "invalid_request", "seed"),
    (video('"duration": NaN'), 422, "invalid_request", "duration"),
    (video('"input": {"x": NaN}'), 422, "invalid_request", "input.x"),
    (video('"input": {"x": [Infinity]}'), 422, "invalid_request", "input.x.0"),
    (video('"input": {"x": -Infinity}'), 422, "invalid_request", "input.x"),
    (video('"prompt": "\\ud800"'), 422, "invalid_request", "prompt"),
    (video('"metadata": {"k": "a\\u0000b"}'), 422, "invalid_request", "metadata.k"),
    (video('"input": {"\\udfff": 1}'), 422, "invalid_request", "input"),
    (b'{"model": "\xff\xfe"}', 400, "invalid_json", None),
    (b'{"model": "simulator/default",', 400, "invalid_json", None),
]


@pytest.mark.parametrize(("body", "status", "code", "field"), BODIES)
async def test_a_hostile_video_body_is_refused_and_nothing_is_stored(
    env, body, status, code, field
):
    async with running_service(env, worker=False) as svc:
        answer = await svc.api.post(
            "/v1/videos", content=body, headers={"content-type": "application/json"}
        )
        assert answer.status_code == status, answer.text
        error = answer.json()["error"]
        assert error["code"] == code
        if field is not None:
            assert error["details"][0]["field"] == field
        assert (await svc.api.get("/v1/videos")).json()["data"] == []


async def test_unicode_digits_and_overlong_numbers_in_query_parameters_are_422(env):
    async with running_service(env, worker=False) as svc:
        video = await svc.submit()
        subscription = await svc.subscribe("https://example.com/hook")
        lists = [
            "/v1/videos",
            "/v1/subscriptions",
            "/v1/events",
            "/v1/deliveries",
            f"/v1/subscriptions/{subscription['id']}/deliveries",
        ]
        cases = [(path, "limit", value) for path in lists for value in ("²", "٣", "1" * 400)]
        cases += [
            (path, "since", value)
            for path in ("/v1/deliveries", f"/v1/subscriptions/{subscription['id']}/deliveries")
            for value in ("²", "1" * 400, "-1", "1.5")
        ]
        cases += [(f"/v1/videos/{video['id']}/content", "output", v) for v in ("²", "9" * 400)]
        cases += [(path, "after", "a\x00b") for path in lists]
        for path, name, value in cases:
            answer = await svc.api.get(path, params={name: value})
            assert answer.status_code == 422, (path, name, value, answer.text)
            assert answer.json()["error"]["details"][0]["field"] == name


async def test_recover_refuses_out_of_range_times_and_takes_integral_floats(env):
    async with running_service(env, worker=False) as svc:
        subscription = await svc.subscribe("https://example.com/hook")
        recover = f"/v1/subscriptions/{subscription['id']}/recover"
        for body in (
            b'{"since": 0, "until": 1' + b"0" * 400 + b"}",
            b'{"since": 1e400}',
            b'{"since": 9007199254740992}',
            b'{"since": 1227.5}',
            b'{"since": NaN}',
        ):
            answer = await svc.api.post(recover, content=body)
            assert answer.status_code == 422, body
        answer = await svc.api.post(recover, content=b'{"since": 1227.0, "until": 1228.0}')
        assert (answer.status_code, answer.json()["queued"]) == (202, 0)


async def test_a_rate_limit_that_would_overflow_an_interval_is_refused(env):
    async with running_service(env, worker=False) as svc:
        for rate in (5e-324, 0, 0.009, -1, 10_001):
            created = await svc.api.post(
                "/v1/subscriptions", json={"url": "https://example.com/hook", "rate_limit": rate}
            )
            assert created.status_code == 422, rate
            assert created.json()["error"]["details"][0]["field"] == "rate_limit"
        subscription = await svc.subscribe("https://example.com/hook", rate_limit=0.01)
        path = f"/v1/subscriptions/{subscription['id']}"
        assert (await svc.api.patch(path, json={"rate_limit": 5e-324})).status_code == 422


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
async def test_nul_in_ids_queries_and_bodies_is_a_4xx_on_every_backend(env):
    """PostgreSQL can store no U+0000 and cannot even compare a string holding one."""
    async with running_service(env, worker=False) as svc:
        for path in ("/v1/videos/vid_%00", "/v1/subscriptions/sub_%00", "/v1/events/%00"):
            assert (await svc.api.get(path)).status_code == 404, path
        query = await svc.api.get("/v1/deliveries", params={"subscription_id": "sub_\x00"})
        assert query.status_code == 422
        body = await svc.api.post("/v1/videos", json={"model": "simulator/x", "prompt": "\x00"})
        assert body.status_code == 422


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
async def test_a_tiny_rate_saved_before_the_rule_still_delivers(env):
    """A rate_limit the API refuses now may already be stored: 1/rate must not become an
    infinite wait."""
    async with recording_subscriber() as subscriber, running_service(env) as svc:
        subscription = await svc.subscribe(subscriber.url, rate_limit=1)
        await svc.store.update_subscription(subscription["id"], {"rate_limit": 5e-324}, time.time())
        await svc.submit(simulate={"after_s": 0})
        await eventually(lambda: subscriber.received, timeout=15)


async def test_the_receiver_and_the_simulator_refuse_deep_bodies_without_a_5xx(env):
    async with running_service(env, worker=False) as svc:
        video = await svc.submit()
        forged = base64.urlsafe_b64encode(b"[" * 2000).decode().rstrip("=")
        async with httpx.AsyncClient(base_url=svc.url) as client:
            for provider in ("simulator", "replicate"):
                token = svc.context.tokens.issue(video["id"], provider, 0)
                answer = await client.post(f"/hooks/{provider}/{token}", content=DEEP)
                assert answer.status_code < 500, (provider, answer.text)
            # With the simulator's credential: without it, nothing is even read.
            credential = svc.context.providers["simulator"].headers  # type: ignore[attr-defined]
            created = await client.post("/simulator/v1/videos", content=DEEP, headers=credential)
            assert created.status_code == 400
            polled = await client.get(f"/simulator/v1/videos/sim_{forged}", headers=credential)
            assert polled.status_code == 404
