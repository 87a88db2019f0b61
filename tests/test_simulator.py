"""The simulator is served to whoever reaches the service, and is no open relay: its API needs
the handler's credential, it calls back only our own receiver, and its memory is capped."""

from __future__ import annotations

import time

import httpx2 as httpx
import pytest

from handlers.simulator import Script, _encode_id
from service.server import SIMULATOR_WARNING
from service.tokens import ReceiverTokens
from tests.support.processes import Process
from tests.support.servers import eventually, free_port
from tests.support.service import running_service
from tests.support.subscriber import recording_subscriber

pytestmark = pytest.mark.usefixtures("processes_reaped")


def credential(svc) -> dict[str, str]:
    return {"authorization": f"Bearer {svc.context.providers['simulator'].api_key}"}


def assert_error(answer: httpx.Response, status: int, code: str) -> None:
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["code"] == code and error["message"] and "details" in error


async def test_the_simulator_api_refuses_requests_without_its_credential(env):
    async with recording_subscriber() as target, running_service(env) as svc:
        body = {"model": "x", "simulate": {"after_s": 0, "duplicates": 100}}
        video_id = _encode_id("x", time.time(), Script())
        async with httpx.AsyncClient(base_url=f"{svc.url}/simulator") as client:
            for headers in (
                {},
                # The service's own API key is not the simulator's credential.
                {"authorization": svc.api.headers["authorization"]},
                {"authorization": "Bearer wrong"},
                {"authorization": "Basic " + credential(svc)["authorization"].split()[1]},
            ):
                body["callback_url"] = target.url + "/relay"
                answer = await client.post("/v1/videos", json=body, headers=headers)
                assert_error(answer, 401, "unauthorized")
                answer = await client.get(f"/v1/videos/{video_id}", headers=headers)
                assert_error(answer, 401, "unauthorized")
            assert (await client.get(f"/v1/videos/{video_id}", headers=credential(svc))).is_success
        assert svc.context.simulator.jobs == {} and svc.context.simulator.pending == set()
        assert target.received == []


async def test_a_callback_url_but_our_receiver_is_refused_and_nothing_is_sent_there(env):
    async with recording_subscriber() as target, running_service(env) as svc:
        subscription = await svc.subscribe(target.url + "/events")
        target.secrets = [subscription["secret"]]
        tokens = svc.context.tokens
        receiver = f"{svc.url}/hooks/simulator"
        foreign = ReceiverTokens(["not-our-key"]).issue("vid_x", "simulator", 0)
        refused = [
            target.url + "/relay",
            f"{target.url}/hooks/simulator/{tokens.issue('vid_x', 'simulator', 0)}",
            f"{receiver}/{foreign}",
            f"{receiver}/garbage",
            f"{receiver}/",
            f"{svc.url}/hooks/openai/{tokens.issue('vid_x', 'openai', 0)}",
            f"{receiver}/{tokens.issue('vid_x', 'openai', 0)}",
            f"{receiver}/{tokens.issue('vid_x', 'simulator', 0)}/../../relay",
            f"{receiver}/{tokens.issue('vid_x', 'simulator', 0)}?then=elsewhere",
        ]
        async with httpx.AsyncClient(base_url=f"{svc.url}/simulator") as client:
            for url in refused:
                body = {"simulate": {"after_s": 0, "duplicates": 100}, "callback_url": url}
                answer = await client.post("/v1/videos", json=body, headers=credential(svc))
                assert_error(answer, 422, "invalid_request")
                assert answer.json()["error"]["details"][0]["field"] == "callback_url"
            ours = f"{receiver}/{tokens.issue('vid_x', 'simulator', 0)}"
            body = {"simulate": {"after_s": 3600}, "callback_url": ours}
            assert (await client.post("/v1/videos", json=body, headers=credential(svc))).is_success
        # A job submitted after the refused ones: its webhook reaches our receiver, then its
        # event reaches the target, which by then would have had anything sent to it.
        video = await svc.submit({"after_s": 0.2})
        await eventually(lambda: target.received)
        assert svc.context.simulator.poll_counts == {}  # the job's webhook came, not a poll
        [delivery] = target.received
        assert delivery.path == "/events" and delivery.verified
        assert delivery.event["data"]["id"] == video["id"]


async def test_the_simulators_memory_is_capped_with_a_429_and_forged_polls_add_nothing(env):
    async with running_service(env, public=False) as svc:
        simulator = svc.context.simulator
        simulator.max_jobs = 3
        async with httpx.AsyncClient(
            base_url=f"{svc.url}/simulator", headers=credential(svc)
        ) as client:
            body = {"simulate": {"after_s": 86400, "poll_errors": 1}}
            taken = [(await client.post("/v1/videos", json=body)).json()["id"] for _ in range(3)]
            answer = await client.post("/v1/videos", json=body)
            assert_error(answer, 429, "rate_limited")
            assert answer.headers["retry-after"] and answer.json()["error"]["details"] == {
                "limit": 3
            }
            for n in range(50):
                forged = _encode_id(f"forged{n}", time.time(), Script(poll_errors=5))
                assert (await client.get(f"/v1/videos/{forged}")).status_code == 200
            assert set(simulator.jobs) == set(taken)
            # A job it took is still counted: its scripted poll error, then answers.
            assert (await client.get(f"/v1/videos/{taken[0]}")).status_code == 503
            assert (await client.get(f"/v1/videos/{taken[0]}")).status_code == 200
            assert simulator.poll_counts == {taken[0]: 2}
        # Through the service, a job submitted at the cap waits (429 is a transient answer).
        video = await svc.submit({"after_s": 0})
        await eventually(lambda: _refused_once(svc, video["id"]))
        simulator.max_jobs = 10
        await eventually(lambda: _completed(svc, video["id"]), timeout=30)


async def _refused_once(svc, video_id: str) -> bool:
    job = await svc.store.get_job(video_id)
    assert job is not None and job.status == "queued"
    return job.provider_job_id is None and job.check_count > 0


async def _completed(svc, video_id: str) -> bool:
    return (await svc.video(video_id))["status"] == "completed"


async def test_serve_with_a_public_url_warns_and_the_walk_through_still_works(tmp_path):
    env = {"VIDEOHOOKS_ALLOW_PRIVATE_URLS": "true", "VIDEOHOOKS_POLL_MIN": "100ms"}
    (tmp_path / "web").mkdir()
    quiet = await Process.start(["web", "--port", "0"], env, tmp_path / "web")
    try:
        await quiet.url()
    finally:
        assert await quiet.stop() == 0
    assert quiet.lines and SIMULATOR_WARNING not in quiet.lines
    async with recording_subscriber() as subscriber:
        port = free_port()
        env["VIDEOHOOKS_PUBLIC_URL"] = f"http://127.0.0.1:{port}"
        serve = await Process.start(["serve", "--port", str(port)], env, tmp_path)
        try:
            key = (await serve.expect(r"API key.*: (vhk_\S+)")).group(1)
            await serve.expect(SIMULATOR_WARNING)
            headers = {"authorization": f"Bearer {key}"}
            async with httpx.AsyncClient(base_url=env["VIDEOHOOKS_PUBLIC_URL"]) as api:
                created = await api.post(
                    "/v1/subscriptions", json={"url": subscriber.url}, headers=headers
                )
                subscriber.secrets = [created.json()["secret"]]
                body = {"model": "simulator/default", "input": {"simulate": {"after_s": 0.3}}}
                assert (await api.post("/v1/videos", json=body, headers=headers)).status_code == 202
            await eventually(lambda: subscriber.received, timeout=30)
            assert subscriber.received[0].verified
            assert subscriber.received[0].event["type"] == "video.completed"
        finally:
            assert await serve.stop() == 0
