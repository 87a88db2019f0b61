"""An unsigned callback is a hint, never a fact: for every provider whose callbacks nothing signs,
through the running service's receiver over real HTTP.

The signed receiver URL proves which job a callback is about; its body proves nothing. So a
callback only makes the worker ask the provider's API at once, and the job's outcome is what that
API says: a forged "finished" body on a valid URL changes nothing, and a progress callback updates
progress but never ends the job.

Each provider's fake gives `callbacks` (the URL each task was handed), `callback(task)` (the body
the provider would post for the task as it is now), `forged_completion(task, url)` (a body claiming
the task finished with a video at `url`) and `polls()` (status queries it answered).
"""

from __future__ import annotations

import importlib
import json
from typing import Any

import httpx2 as httpx
import pytest

from tests.handlers.fakes.base import serve
from tests.support.databases import BACKENDS
from tests.support.servers import eventually
from tests.support.service import running_service
from tests.support.subscriber import recording_subscriber

pytestmark = pytest.mark.parametrize("backend", BACKENDS, indirect=True)

UNSIGNED = ["kling", "minimax", "seedance"]
ATTACKER_URL = "https://attacker.example/not-your-video.mp4"


@pytest.fixture(params=UNSIGNED)
async def fake(request):
    module = importlib.import_module(f"tests.handlers.fakes.{request.param}")
    async with serve(module.Fake()) as running:
        yield running


async def _status(svc, video_id: str) -> str:
    return str((await svc.video(video_id))["status"])


async def _post(client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> None:
    answer = await client.post(url, json=body)
    assert answer.status_code == 202, answer.text


async def test_a_callback_only_makes_the_service_ask_and_a_forged_one_changes_nothing(fake, env):
    # With the webhook grace and the poll interval an hour long, the worker asks the provider
    # only when a callback makes it: each poll the fake answers is one callback's doing.
    env |= fake.env() | {
        "VIDEOHOOKS_WEBHOOK_GRACE": "1h",
        "VIDEOHOOKS_POLL_MIN": "1h",
        "VIDEOHOOKS_POLL_MAX": "1h",
    }
    async with recording_subscriber() as subscriber, running_service(env) as svc:
        await svc.subscribe(subscriber.url)
        video = await svc.submit(model=f"{fake.name}/{fake.model}")
        task = await eventually(lambda: fake.jobs and fake.latest())
        callback = fake.callbacks[task]
        assert callback.startswith(f"{svc.url}/hooks/{fake.name}/")
        await eventually(lambda: _has_provider_job(svc, video["id"]))
        assert fake.polls() == 0
        async with httpx.AsyncClient() as client:
            # Progress: the provider runs the task and says so.
            fake.set_status(task, "in_progress")
            await _post(client, callback, fake.callback(task))
            await eventually(lambda: _is(svc, video["id"], "in_progress"))
            assert fake.polls() == 1
            # A forged completion on the same valid URL, while the provider's API says running.
            await _post(client, callback, fake.forged_completion(task, ATTACKER_URL))
            await eventually(lambda: fake.polls() == 2)
            assert await _status(svc, video["id"]) == "in_progress"
            # The provider finishes: its own callback, and its API, say so.
            fake.set_status(task, "completed")
            await _post(client, callback, fake.callback(task))
            await eventually(lambda: subscriber.received)
        assert fake.polls() == 3
        [received] = subscriber.received
        event = received.event
        assert (event["type"], event["data"]["id"]) == ("video.completed", video["id"])
        assert event["data"]["outputs"] and ATTACKER_URL not in json.dumps(event)
        assert [e["id"] for e in await svc.events()] == [event["id"]]


async def _has_provider_job(svc, video_id: str) -> bool:
    return bool((await svc.video(video_id))["provider_job_id"])


async def _is(svc, video_id: str, status: str) -> bool:
    return await _status(svc, video_id) == status
