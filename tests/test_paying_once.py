"""A provider job is paid for once (issue 9): a submission that may have reached the provider
unanswered is reconciled as the provider documents, or fails with `submission_uncertain`; it is
never sent again blindly, and never moves the job to a fallback model. On loopback fakes that
accept a submission and answer it only after the client has given up."""

from __future__ import annotations

import json
import signal
from typing import Any

import httpx2 as httpx
import pytest
from prometheus_client import REGISTRY

from handlers import simulator
from handlers.base import ProviderStatus, SubmitRequest
from handlers.http import parse, request_json
from service.server import bind
from tests.handlers.fakes import fal, openrouter, replicate
from tests.handlers.fakes.base import serve
from tests.support.databases import BACKENDS
from tests.support.processes import Process, started
from tests.support.provider import Answer, fake_provider
from tests.support.servers import eventually
from tests.support.service import running_service
from tests.support.signing import signed

pytestmark = [
    pytest.mark.parametrize("backend", BACKENDS, indirect=True),
    pytest.mark.usefixtures("processes_reaped"),
]

# The client gives up after a second; an unanswered submission is reconciled for two.
LATE = {"VIDEOHOOKS_PROVIDER_TIMEOUT": "1s", "VIDEOHOOKS_SUBMIT_RECONCILE": "2s"}


class WithoutReconciliation(simulator.Handler):
    """The simulator as a provider that documents no way to reconcile a submission."""

    reconciliation = "none"


class LookingUp(simulator.Handler):
    """The simulator as a provider that finds a submission by the reference it was sent with."""

    reconciliation = "lookup"

    async def find_submission(self, request: SubmitRequest) -> ProviderStatus | None:
        url = f"{self.base_url}/v1/videos"
        found = await request_json(self.http, "GET", url, params={"reference": request.reference})
        return next((parse(simulator.SimVideo, item).report() for item in found["data"]), None)


def served_by(svc, handler: type[simulator.Handler]) -> None:
    current = svc.context.providers["simulator"]
    svc.context.providers["simulator"] = handler(current.config, current.http)


def submissions(result: str) -> float:
    labels = {"provider": "simulator", "result": result}
    return REGISTRY.get_sample_value("videohooks_submissions_total", labels) or 0.0


async def job(svc, video_id: str):
    return await svc.store.get_job(video_id)


async def state_is(svc, video_id: str, state: str) -> bool:
    return (await job(svc, video_id)).submission_state == state


async def recorded(svc, video_id: str) -> dict[str, Any] | None:
    video = await svc.video(video_id)
    return video if video["provider_job_id"] else None


async def status_is(svc, video_id: str, status: str) -> dict[str, Any] | None:
    video = await svc.video(video_id)
    return video if video["status"] == status else None


# -- (a) a provider that accepts, and answers after the client's timeout ---------------------


async def test_an_idempotency_key_makes_the_late_submission_the_only_one(env):
    env |= LATE
    async with fake_provider() as provider:
        provider.holding = 1
        env["VIDEOHOOKS_SIMULATOR_BASE_URL"] = provider.url
        uncertain, reconciled = submissions("uncertain"), submissions("reconciled")
        async with running_service(env, public=False) as svc:
            video = await svc.submit()
            stored = await eventually(lambda: recorded(svc, video["id"]), timeout=60)
            assert stored["provider_job_id"] == "fake_1"
            provider.finish("fake_1")
            await eventually(lambda: status_is(svc, video["id"], "completed"), timeout=60)
        # Sent again after the timeout, with the same key: one job at the provider.
        assert provider.count("POST") >= 2 and list(provider.jobs) == ["fake_1"]
        assert set(provider.keys) == {f"{video['id']}.0"}
        assert submissions("uncertain") > uncertain and submissions("reconciled") > reconciled


async def test_a_lookup_adopts_the_late_submission(env):
    env |= LATE
    async with fake_provider() as provider:
        provider.holding = 1
        env["VIDEOHOOKS_SIMULATOR_BASE_URL"] = provider.url
        async with running_service(env, public=False) as svc:
            served_by(svc, LookingUp)
            video = await svc.submit()
            stored = await eventually(lambda: recorded(svc, video["id"]), timeout=60)
            assert stored["provider_job_id"] == "fake_1"
            provider.finish("fake_1")
            await eventually(lambda: status_is(svc, video["id"], "completed"), timeout=60)
        assert provider.count("POST") == 1 and list(provider.jobs) == ["fake_1"]


async def test_a_lookup_that_finds_nothing_sends_it_again(env):
    # A gateway answered 502: the provider may have taken it, the lookup shows it did not.
    env |= LATE
    async with fake_provider() as provider:
        provider.submit_answers = [Answer(502, "<html>bad gateway</html>")]
        env["VIDEOHOOKS_SIMULATOR_BASE_URL"] = provider.url
        async with running_service(env, public=False) as svc:
            served_by(svc, LookingUp)
            video = await svc.submit()
            stored = await eventually(lambda: recorded(svc, video["id"]), timeout=60)
        assert stored["provider_job_id"] == "fake_1"
        methods = [method for method, path, _ in provider.requests if path == "/v1/videos"]
        # Sent; looked up (again once the first request could no longer be answered); sent again.
        assert methods[0] == methods[-1] == "POST" and methods.count("POST") == 2
        assert methods[1] == "GET" and len(provider.jobs) == 1


async def test_without_a_way_to_reconcile_the_job_fails_and_is_sent_once(env):
    env |= LATE
    async with fake_provider() as provider:
        provider.holding = 1
        env["VIDEOHOOKS_SIMULATOR_BASE_URL"] = provider.url
        async with running_service(env, public=False) as svc:
            served_by(svc, WithoutReconciliation)
            video = await svc.submit(fallback_models=["simulator/fallback"])
            failed = await eventually(lambda: status_is(svc, video["id"], "failed"), timeout=60)
        assert failed["error"]["code"] == "submission_uncertain"
        message = failed["error"]["message"]
        assert "check the simulator console" in message and f"{video['id']}.0" in message
        # Neither sent again nor moved to the fallback model: both could pay twice.
        assert provider.count("POST") == 1 and len(provider.jobs) == 1
        assert failed["model"] == "simulator/default"


async def test_resubmitting_uncertain_submissions_is_an_opt_in(env):
    env |= LATE | {"VIDEOHOOKS_RESUBMIT_UNCERTAIN": "true"}
    async with fake_provider() as provider:
        provider.holding, provider.idempotent = 1, False
        env["VIDEOHOOKS_SIMULATOR_BASE_URL"] = provider.url
        async with running_service(env, public=False) as svc:
            served_by(svc, WithoutReconciliation)
            video = await svc.submit()
            stored = await eventually(lambda: recorded(svc, video["id"]), timeout=60)
        # Sent again once the reconcile window passed: the provider runs both, as configured.
        assert stored["provider_job_id"] == "fake_2" and provider.count("POST") == 2


# -- (c) a provider that cannot be reached is retried as before --------------------------------


async def test_a_refused_connection_is_retried_and_then_succeeds(env):
    sock = bind("127.0.0.1", 0)
    port = int(sock.getsockname()[1])
    sock.close()  # nothing listens there until the fake starts
    env |= LATE | {"VIDEOHOOKS_SIMULATOR_BASE_URL": f"http://127.0.0.1:{port}"}
    uncertain = submissions("uncertain")
    async with running_service(env, public=False) as svc:
        video = await svc.submit()
        # Refused twice: certainly never arrived, so nothing is uncertain, and it is retried.
        await eventually(lambda: _refused(svc, video["id"], times=2), timeout=60)
        async with fake_provider(port) as provider:
            stored = await eventually(lambda: recorded(svc, video["id"]), timeout=60)
            assert stored["provider_job_id"] == "fake_1" and provider.count("POST") == 1
    assert submissions("uncertain") == uncertain


async def _refused(svc, video_id: str, times: int) -> bool:
    stored = await job(svc, video_id)
    return stored.check_count >= times and stored.submission_state is None


# -- (d) a webhook on the attempt's receiver URL adopts the job ---------------------------------


async def _replicate_webhook(fake: replicate.Fake, job_id: str) -> tuple[str, bytes, dict]:
    fake.set_status(job_id, "completed")
    body, headers = signed(replicate.WEBHOOK_SECRET, fake.jobs[job_id])
    return str(fake.webhook_url()), body, headers


async def _openrouter_webhook(fake: openrouter.Fake, job_id: str) -> tuple[str, bytes, dict]:
    # Unsigned (no secret configured): it only names the job, which is fetched from the provider.
    fake.set_status(job_id, "completed")
    body = httpx.Response(200, json=fake.webhook(job_id, "completed")).content
    return str(fake.callbacks[job_id]), body, {"content-type": "application/json"}


async def _fal_webhook(fake: fal.Fake, job_id: str) -> tuple[str, bytes, dict]:
    fake.set_status(job_id, "completed")
    body, headers = fake.webhook(job_id)
    return fake.callbacks[job_id], body, headers


# Each provider's fake, the webhook it sends, and the provider job id its submission answers.
WEBHOOKS = {
    "replicate": (replicate.Fake, _replicate_webhook, lambda job_id: job_id),
    "openrouter": (openrouter.Fake, _openrouter_webhook, lambda job_id: job_id),
    # fal's webhook names only the request; its queue path is what submit answers.
    "fal": (fal.Fake, _fal_webhook, lambda job_id: f"{fal.Fake.app}/requests/{job_id}"),
}


@pytest.mark.parametrize("provider", WEBHOOKS)
async def test_the_providers_webhook_adopts_a_late_submission(env, provider: str):
    fake_class, webhook, provider_job_id = WEBHOOKS[provider]
    async with serve(fake_class()) as fake:
        env |= fake.env() | LATE | {"VIDEOHOOKS_SUBMIT_RECONCILE": "10m"}
        if provider == "openrouter":
            del env["VIDEOHOOKS_OPENROUTER_WEBHOOK_SECRET"]
        fake.holding = 1
        async with running_service(env) as svc:
            video = await svc.submit(model=f"{provider}/{fake.model}")
            await eventually(lambda: state_is(svc, video["id"], "uncertain"), timeout=60)
            [job_id] = fake.jobs
            url, body, headers = await webhook(fake, job_id)
            async with httpx.AsyncClient() as client:
                answer = await client.post(url, content=body, headers=headers)
            assert answer.status_code == 202, answer.text
            done = await eventually(lambda: status_is(svc, video["id"], "completed"), timeout=60)
        assert len(fake.submissions()) == 1
        assert done["provider_job_id"] == provider_job_id(job_id) and done["outputs"]


# -- (b) a worker killed -9 between the provider's acceptance and the record ------------------

# Long enough that the held answer is still awaited when the worker is killed, and that the
# killed worker's leases (2 x the timeout + 60 s) would outlast the test's patience: the job is
# retaken because the new worker finds its predecessor dead, not because a lease lapsed.
SLOW_ANSWERS = {"VIDEOHOOKS_PROVIDER_TIMEOUT": "60s"}


async def killed_while_the_answer_is_held(env: dict[str, str], folder, accepted) -> str:
    """Starts a worker, kills it -9 once the provider has accepted its submission (and holds the
    answer); the worker's id."""
    async with started(["worker"], env, folder) as worker:
        worker_id = (await worker.expect(r"videohooks worker (\S+)")).group(1)
        await eventually(accepted, timeout=60)
        worker.signal(signal.SIGKILL)
        assert await worker.exit_code() == -signal.SIGKILL
    return worker_id


async def released_at_start(worker: Process, predecessor: str) -> bool:
    """Whether `worker` gave back the claims of `predecessor` because its process was gone (not
    because its heartbeat had been silent for long)."""
    lines = (await worker.stderr()).splitlines()
    return any('"exited"' in line and predecessor in json.loads(line)["exited"] for line in lines)


async def test_a_worker_killed_after_the_provider_accepted_pays_once_by_idempotency_key(
    env, tmp_path
):
    env |= SLOW_ANSWERS
    async with fake_provider() as provider:
        provider.holding = 1
        env["VIDEOHOOKS_SIMULATOR_BASE_URL"] = provider.url
        async with running_service(env, public=False, worker=False) as svc:
            video = await svc.submit()
            killed = await killed_while_the_answer_is_held(env, tmp_path, lambda: provider.jobs)
            provider.released.set()  # the answer goes to a dead connection
            async with started(["worker"], env, tmp_path) as worker:
                stored = await eventually(lambda: recorded(svc, video["id"]), timeout=60)
                assert stored["provider_job_id"] == "fake_1"
                assert await released_at_start(worker, killed)
                provider.finish("fake_1")
                await eventually(lambda: status_is(svc, video["id"], "completed"), timeout=60)
    # Sent again by the new worker, with the same key: the provider made one video.
    assert list(provider.jobs) == ["fake_1"] and set(provider.keys) == {f"{video['id']}.0"}


async def test_a_worker_killed_after_the_provider_accepted_pays_once_by_webhook(env, tmp_path):
    async with serve(replicate.Fake()) as fake:
        env |= fake.env() | SLOW_ANSWERS
        fake.holding = 1
        async with running_service(env, worker=False) as svc:
            env["VIDEOHOOKS_PUBLIC_URL"] = svc.url  # the workers hand out this receiver
            video = await svc.submit(model=f"replicate/{fake.model}")
            killed = await killed_while_the_answer_is_held(env, tmp_path, lambda: fake.jobs)
            fake.released.set()
            async with started(["worker"], env, tmp_path) as worker:
                # The new worker finds the submission under way: not sent again, but waited on.
                await eventually(lambda: state_is(svc, video["id"], "uncertain"), timeout=60)
                assert await released_at_start(worker, killed)
                [prediction] = fake.jobs
                url, body, headers = await _replicate_webhook(fake, prediction)
                async with httpx.AsyncClient() as client:
                    answer = await client.post(url, content=body, headers=headers)
                assert answer.status_code == 202, answer.text
                done = await eventually(lambda: status_is(svc, video["id"], "completed"), 60)
    assert done["provider_job_id"] == prediction and len(fake.submissions()) == 1
