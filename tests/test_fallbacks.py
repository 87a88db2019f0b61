"""fallback_models: tried in order when an attempt cannot be submitted or fails; every attempt is
listed on the Video; the one terminal event comes only at the end."""

from __future__ import annotations

import pytest

from tests.handlers.fakes.base import serve
from tests.handlers.fakes.hedra import Fake as FakeHedra
from tests.support.databases import BACKENDS
from tests.support.quiet import deliveries_settled
from tests.support.servers import eventually
from tests.support.service import running_service
from tests.support.subscriber import recording_subscriber

pytestmark = pytest.mark.parametrize("backend", BACKENDS, indirect=True)

HEDRA = f"hedra/{FakeHedra.model}"


async def test_an_unconfigured_primary_falls_back(env):
    async with recording_subscriber() as subscriber, running_service(env) as svc:
        await svc.subscribe(subscriber.url)
        await svc.submit({"after_s": 0.1}, model=HEDRA, fallback_models=["simulator/default"])
        await eventually(lambda: subscriber.received)
        video = subscriber.received[0].event["data"]
        assert video["status"] == "completed" and video["provider"] == "simulator"
        first, second = video["attempts"]
        assert (first["provider"], first["error"]["code"]) == ("hedra", "provider_not_configured")
        assert first["provider_job_id"] is None
        assert second["provider"] == "simulator" and second["error"] is None
        assert second["provider_job_id"] == video["provider_job_id"]


async def test_a_rejected_then_a_failed_attempt_fall_back_with_one_event_at_the_end(env):
    async with serve(FakeHedra()) as hedra, recording_subscriber() as subscriber:
        env |= hedra.env()
        hedra.script("submit", 422, {"detail": "ai_model_id is not available"})
        async with running_service(env) as svc:
            await svc.subscribe(subscriber.url)
            video = await svc.submit(
                {"after_s": 0.2, "outcome": "failed", "error_message": "simulated refusal"},
                model=HEDRA,
                fallback_models=["simulator/a", HEDRA],
            )
            # The third attempt (hedra again) is submitted only after the first two failed.
            await eventually(lambda: len(hedra.jobs) == 1, timeout=10)
            assert subscriber.received == []
            hedra.set_status(hedra.latest(), "completed")
            await eventually(lambda: subscriber.received, timeout=10)
            await eventually(lambda: deliveries_settled(svc))
            [delivery] = subscriber.received
            data = delivery.event["data"]
            assert delivery.event["type"] == "video.completed" and data["id"] == video["id"]
            assert [(a["provider"], a["model"]) for a in data["attempts"]] == [
                ("hedra", HEDRA),
                ("simulator", "simulator/a"),
                ("hedra", HEDRA),
            ]
            assert data["attempts"][0]["error"] == {
                "code": "provider_rejected",
                "message": "ai_model_id is not available",
            }
            assert data["attempts"][1]["error"]["message"] == "simulated refusal"
            assert data["attempts"][2]["provider_job_id"] == hedra.latest()


async def test_when_every_attempt_fails_the_job_fails_once_with_the_last_error(env):
    async with recording_subscriber() as subscriber, running_service(env) as svc:
        await svc.subscribe(subscriber.url)
        await svc.submit(
            {"after_s": 0.1, "outcome": "failed", "error_message": "nope"},
            fallback_models=["simulator/b"],
        )
        await eventually(lambda: subscriber.received)
        await eventually(lambda: deliveries_settled(svc))
        [delivery] = subscriber.received
        data = delivery.event["data"]
        assert delivery.event["type"] == "video.failed"
        assert data["error"]["message"] == "nope" and data["model"] == "simulator/b"
        assert [a["error"]["message"] for a in data["attempts"]] == ["nope", "nope"]
