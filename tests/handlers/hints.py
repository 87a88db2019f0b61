"""An unsigned callback is a hint, never a fact: a job run through the service against a
provider's fake, where only a callback posted to the job's receiver URL makes the worker ask the
provider (the webhook grace and every poll delay are an hour), so that what the worker does after
a callback is what the callback caused."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx2 as httpx

from tests.handlers.fakes.base import FakeProvider
from tests.support.servers import eventually
from tests.support.service import Running, running_service
from tests.support.subscriber import Subscriber, recording_subscriber

# Where a forged "completed" callback claims the video is.
ATTACKER_URL = "https://attacker.example/forged.mp4"
AN_HOUR = "1h"


@dataclass
class HintedJob:
    svc: Running
    fake: FakeProvider
    subscriber: Subscriber
    video_id: str
    provider_job_id: str
    receiver_url: str

    async def post(self, body: dict[str, Any] | bytes) -> int:
        """Posts a callback body, as the provider (or anyone who has the URL) would."""
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"content-type": "application/json"}
        async with httpx.AsyncClient() as client:
            answer = await client.post(self.receiver_url, content=content, headers=headers)
        return answer.status_code

    async def video(self) -> dict[str, Any]:
        return await self.svc.video(self.video_id)

    async def reaches(self, status: str, progress: int | None = None) -> dict[str, Any]:
        """The video once the worker has applied what the provider's API says."""

        async def applied() -> dict[str, Any] | None:
            video = await self.video()
            if video["status"] != status or progress not in (None, video["progress"]):
                return None
            return video

        return await eventually(applied)

    async def asked(self, times: int = 1) -> None:
        """Waits until the worker has applied `times` answers of the provider's API: the job's
        check count rises as a poll's answer is recorded (and only a callback causes a poll)."""

        async def checked() -> bool:
            job = await self.svc.store.get_job(self.video_id)
            return job is not None and job.check_count >= times

        await eventually(checked)

    async def terminal_event(self) -> dict[str, Any]:
        await eventually(lambda: self.subscriber.received)
        return self.subscriber.received[0].event


@asynccontextmanager
async def a_job_awaiting_hints(
    fake: FakeProvider,
    env: dict[str, str],
    handed: Callable[[str], str] | None = None,
    **fields: Any,
) -> AsyncIterator[HintedJob]:
    """A job submitted through the service to `fake`. Its receiver URL is the one the provider was
    handed (`handed(provider_job_id)`, from the fake's records) or, for a provider that takes
    none, the one the service would make for the job's first attempt."""
    env = env | fake.env()
    env |= {
        "VIDEOHOOKS_WEBHOOK_GRACE": AN_HOUR,
        "VIDEOHOOKS_POLL_MIN": AN_HOUR,
        "VIDEOHOOKS_POLL_MAX": AN_HOUR,
    }
    async with recording_subscriber() as subscriber, running_service(env) as svc:
        await svc.subscribe(subscriber.url)
        video = await svc.submit(model=f"{fake.name}/{fake.model}", **fields)

        async def submitted() -> str | None:
            return (await svc.video(video["id"]))["provider_job_id"]

        provider_job_id = await eventually(submitted)
        if handed is None:
            receiver_url = svc.context.receiver_url(fake.name, video["id"], 0)
        else:
            receiver_url = handed(provider_job_id)
        assert receiver_url is not None
        yield HintedJob(svc, fake, subscriber, video["id"], provider_job_id, receiver_url)
