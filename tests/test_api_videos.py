"""POST/GET /v1/videos over real HTTP: validation, errors, idempotency, listing."""

from __future__ import annotations

import asyncio
import json

import httpx2 as httpx

from tests.support.provider import fake_provider
from tests.support.servers import eventually
from tests.support.service import running_service


async def test_create_answers_202_at_once_and_leaves_submission_to_the_worker(env):
    async with fake_provider() as provider:
        env["VIDEOHOOKS_SIMULATOR_BASE_URL"] = provider.url
        async with running_service(env, worker=False) as svc:
            video = await svc.submit(prompt="a cat", duration=5, metadata={"user_id": "42"})
            assert video["status"] == "queued"
            assert video["id"].startswith("vid_")
            assert video["metadata"] == {"user_id": "42"}
            # The API only stored it: no submission was even begun, none sent.
            stored = await svc.store.get_job(video["id"])
            assert stored.submission_state is None and stored.provider_job_id is None
        assert provider.requests == []
        async with running_service(env, worker=True) as svc:
            submitted = await eventually(lambda: _submitted(svc, video["id"]), timeout=60)
            assert submitted["provider_job_id"] == "fake_1" and provider.count("POST") == 1


async def _submitted(svc, video_id):
    video = await svc.video(video_id)
    return video if video["provider_job_id"] else None


async def test_validation_names_each_bad_field(env):
    async with running_service(env, worker=False) as svc:
        body = {
            "model": "simulator/default",
            "duration": -1,
            "metadata": {"k": 1},
            "surprise": True,
            "fallback_models": ["nope"],
            "callback_url": "ftp://example.com/x",
        }
        response = await svc.api.post("/v1/videos", json=body)
        assert response.status_code == 422
        error = response.json()["error"]
        assert error["code"] == "invalid_request"
        fields = {detail["field"] for detail in error["details"]}
        assert {"duration", "metadata.k", "surprise", "fallback_models.0"} <= fields


async def test_callback_url_is_checked(env):
    env["VIDEOHOOKS_ALLOW_PRIVATE_URLS"] = "false"
    async with running_service(env, worker=False) as svc:
        response = await svc.api.post(
            "/v1/videos", json={"model": "simulator/x", "callback_url": "http://127.0.0.1/hook"}
        )
        assert response.status_code == 422
        assert response.json()["error"]["details"][0]["field"] == "callback_url"


async def test_unknown_provider_and_malformed_model_are_422(env):
    async with running_service(env, worker=False) as svc:
        for model in ("nosuch/model", "no-slash", "", 5):
            response = await svc.api.post("/v1/videos", json={"model": model})
            assert response.status_code == 422, model
            assert response.json()["error"]["details"][0]["field"] == "model"
        response = await svc.api.post("/v1/videos", json={"model": "nosuch/model"})
        assert "unknown provider 'nosuch'" in response.json()["error"]["message"]


async def test_bad_json_bodies(env):
    async with running_service(env, worker=False) as svc:
        cases = [
            (b"{not json", 400, "invalid_json"),
            (b"", 400, "invalid_json"),
            (b"[1, 2]", 422, "invalid_request"),
            (b"\xff\xfe", 400, "invalid_json"),
        ]
        for body, status, code in cases:
            response = await svc.api.post(
                "/v1/videos", content=body, headers={"content-type": "application/json"}
            )
            assert response.status_code == status, body
            assert response.json()["error"]["code"] == code


async def test_authentication_is_required_on_v1(env):
    async with running_service(env, worker=False) as svc:
        async with httpx.AsyncClient(base_url=svc.url) as anonymous:
            for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": "Basic x"}):
                response = await anonymous.get("/v1/videos", headers=headers)
                assert response.status_code == 401
                assert response.json()["error"]["code"] == "unauthorized"
            assert (await anonymous.get("/healthz")).status_code == 200


async def test_bodies_over_one_mebibyte_get_413(env):
    async with running_service(env, worker=False) as svc:
        big = b'{"model": "simulator/x", "prompt": "' + b"a" * (1024 * 1024) + b'"}'
        response = await svc.api.post("/v1/videos", content=big)
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "payload_too_large"

        async def chunks():
            for _ in range(20):
                yield b"a" * 100_000

        streamed = await svc.api.post("/v1/videos", content=chunks())
        assert streamed.status_code == 413


async def test_idempotency_key_returns_the_original_or_409(env):
    async with running_service(env, worker=False) as svc:
        body = {"model": "simulator/default", "prompt": "same"}
        headers = {"idempotency-key": "order-1"}
        first = await svc.api.post("/v1/videos", json=body, headers=headers)
        assert first.status_code == 202
        reordered = json.dumps({"prompt": "same", "model": "simulator/default"})
        again = await svc.api.post("/v1/videos", content=reordered, headers=headers)
        assert again.status_code == 200
        assert again.json()["id"] == first.json()["id"]
        # A replay says so; a new job does not.
        assert again.headers["idempotent-replayed"] == "true"
        assert "idempotent-replayed" not in first.headers
        other = await svc.api.post("/v1/videos", json={**body, "prompt": "other"}, headers=headers)
        assert other.status_code == 409
        assert other.json()["error"]["code"] == "idempotency_conflict"


async def test_concurrent_identical_requests_create_one_job(env):
    async with running_service(env, worker=False) as svc:
        body = {"model": "simulator/default", "prompt": "race"}
        responses = await asyncio.gather(
            *(
                svc.api.post("/v1/videos", json=body, headers={"idempotency-key": "k"})
                for _ in range(10)
            )
        )
        assert len({response.json()["id"] for response in responses}) == 1
        assert sorted(response.status_code for response in responses) == [200] * 9 + [202]
        listed = (await svc.api.get("/v1/videos")).json()["data"]
        assert len(listed) == 1


async def test_list_is_newest_first_with_a_cursor_and_filters(env):
    async with running_service(env, worker=False) as svc:
        ids = [(await svc.submit())["id"] for _ in range(5)]
        first = (await svc.api.get("/v1/videos", params={"limit": 2})).json()
        assert [video["id"] for video in first["data"]] == ids[::-1][:2]
        assert first["has_more"] is True
        second = (
            await svc.api.get("/v1/videos", params={"limit": 2, "after": first["next_cursor"]})
        ).json()
        assert [video["id"] for video in second["data"]] == ids[::-1][2:4]
        done = (await svc.api.get("/v1/videos", params={"status": "completed"})).json()
        assert done["data"] == [] and done["has_more"] is False
        for params in ({"limit": "0"}, {"limit": "x"}, {"limit": "²"}, {"status": "weird"}):
            bad = await svc.api.get("/v1/videos", params=params)
            assert bad.status_code == 422, params
        unknown = await svc.api.get("/v1/videos", params={"after": "vid_nope"})
        assert unknown.status_code == 404


async def test_unknown_ids_and_routes_are_404_in_the_error_shape(env):
    async with running_service(env, worker=False) as svc:
        for path in ("/v1/videos/vid_nope", "/v1/nothing-here", "/v1/events/evt_x"):
            response = await svc.api.get(path)
            assert response.status_code == 404
            assert response.json()["error"]["code"] == "not_found"
        wrong_method = await svc.api.delete("/v1/videos")
        assert wrong_method.status_code == 405


async def test_image_urls_are_held_to_the_url_policy(env):
    env["VIDEOHOOKS_ALLOW_PRIVATE_URLS"] = "false"
    async with running_service(env, worker=False) as svc:
        for url in (
            "http://example.com/a.png",
            "https://127.0.0.1/a.png",
            "https://localhost/a.png",
        ):
            response = await svc.api.post(
                "/v1/videos", json={"model": "simulator/x", "image_url": url}
            )
            assert response.status_code == 422, url
            assert response.json()["error"]["details"][0]["field"] == "image_url"
        inline = "data:image/png;base64,iVBORw0KGgo="
        assert (
            await svc.api.post("/v1/videos", json={"model": "simulator/x", "image_url": inline})
        ).status_code == 202
