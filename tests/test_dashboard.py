"""The dashboard over real HTTP (the service under uvicorn on loopback): sessions and CSRF, what its
pages show, pagination, and live updates that end with the client or the server. The browser's
view of the same is tests/test_dashboard_browser.py."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from contextlib import AsyncExitStack
from datetime import UTC, datetime

import httpx2 as httpx
from prometheus_client import REGISTRY
from standardwebhooks import Webhook

from service.api_keys import new_api_key
from service.dashboard.auth import COOKIE
from tests.support.dashboard import csrf_token, page_token, sign_in
from tests.support.servers import eventually
from tests.support.service import API_KEY, running_service
from tests.support.subscriber import recording_subscriber
from tests.test_storage import a_job

PAGES = [
    "/",
    "/jobs",
    "/jobs/vid_x",
    "/jobs/vid_x/live",
    "/subscriptions",
    "/subscriptions/sub_x",
    "/deliveries",
    "/deliveries/live",
    "/events/evt_x",
]
FORMS = [
    "/sign-out",
    "/subscriptions",
    "/subscriptions/sub_x",
    "/subscriptions/sub_x/status",
    "/subscriptions/sub_x/rotate-secret",
    "/subscriptions/sub_x/test",
    "/subscriptions/sub_x/recover",
    "/subscriptions/sub_x/delete",
    "/deliveries/redeliver",
]


def live_streams() -> float:
    return REGISTRY.get_sample_value("videohooks_dashboard_live_streams") or 0.0


async def test_root_leads_a_stranger_to_sign_in_with_a_link_to_the_docs(env):
    async with running_service(env) as service, httpx.AsyncClient(base_url=service.url) as client:
        response = await client.get("/", follow_redirects=True)
        assert response.status_code == 200
        assert str(response.url).endswith("/sign-in")
        assert 'href="/docs"' in response.text
        assert '<label for="api_key">API key</label>' in response.text


async def test_every_page_and_form_needs_a_session_and_changes_nothing_without_one(env):
    async with running_service(env) as service, httpx.AsyncClient(base_url=service.url) as client:
        subscription = await service.subscribe("http://127.0.0.1:9/")
        for path in PAGES:
            response = await client.get(path)
            assert response.status_code == 303, path
            assert response.headers["location"].startswith("/sign-in"), path
        for path in FORMS:
            path = path.replace("sub_x", subscription["id"])
            response = await client.post(path, data={"status": "disabled"})
            assert response.status_code == 303, path
            assert response.headers["location"] == "/sign-in", path
        assert (await service.api.get(f"/v1/subscriptions/{subscription['id']}")).json()[
            "status"
        ] == "active"
        # What a signed-out person needs is served: the sign-in page and the static assets.
        assert (await client.get("/sign-in")).status_code == 200
        script = await client.get("/static/live.js")
        assert script.status_code == 200
        assert "javascript" in script.headers["content-type"]
        assert (await client.get("/static/dashboard.css")).status_code == 200


async def test_a_wrong_key_cannot_sign_in_nor_a_form_without_its_token(env):
    async with running_service(env) as service, httpx.AsyncClient(base_url=service.url) as client:
        refused = await sign_in(client, key="vhk_not_a_key")
        assert refused.status_code == 401
        assert "That API key is not valid." in refused.text
        assert COOKIE not in client.cookies
        forged = await client.post("/sign-in", data={"api_key": API_KEY, "next": "/"})
        assert forged.status_code == 403
        assert COOKIE not in client.cookies
        assert (await client.get("/")).status_code == 303


async def test_the_session_cookie_never_holds_the_key_and_is_httponly_and_samesite(env):
    async with running_service(env) as service, httpx.AsyncClient(base_url=service.url) as client:
        response = await sign_in(client)
        assert response.status_code == 303
        header = next(
            value for value in response.headers.get_list("set-cookie") if value.startswith(COOKIE)
        )
        assert "HttpOnly" in header
        assert "SameSite=lax" in header
        assert "Secure" not in header  # plain http on loopback
        value = client.cookies[COOKIE]
        payload = value.split(".")[0]
        decoded = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()
        for secret in (API_KEY, API_KEY[4:]):
            assert secret not in value and secret not in decoded
        assert (await client.get("/")).status_code == 200


async def test_the_cookies_are_secure_behind_https(env):
    env = env | {"VIDEOHOOKS_PUBLIC_URL": "https://videohooks.example"}
    async with running_service(env, public=False) as service:
        async with httpx.AsyncClient(base_url=service.url) as client:
            form = await client.get("/sign-in")
            [sign_in_cookie] = form.headers.get_list("set-cookie")
            assert "Secure" in sign_in_cookie
            # A browser sends a Secure cookie back over https only; this one is sent by hand.
            nonce = sign_in_cookie.split(";")[0]
            response = await client.post(
                "/sign-in",
                data={"csrf_token": csrf_token(form.text), "api_key": API_KEY},
                headers={"cookie": nonce},
            )
        assert response.status_code == 303
        header = next(
            value for value in response.headers.get_list("set-cookie") if value.startswith(COOKIE)
        )
        assert "Secure" in header and "HttpOnly" in header


async def test_the_session_is_no_credential_for_the_api(env):
    async with running_service(env) as service, httpx.AsyncClient(base_url=service.url) as client:
        await sign_in(client)
        assert (await client.get("/")).status_code == 200
        for path in ("/v1/videos", "/v1/subscriptions", "/v1/deliveries"):
            response = await client.get(path)
            assert response.status_code == 401, path
            assert response.json()["error"]["code"] == "unauthorized"


async def test_signing_out_ends_the_session_even_for_a_copy_of_the_cookie(env):
    async with running_service(env) as service, httpx.AsyncClient(base_url=service.url) as client:
        await sign_in(client)
        copied = client.cookies[COOKIE]
        response = await client.post("/sign-out", data={"csrf_token": await page_token(client)})
        assert response.status_code == 303
        assert response.headers["location"] == "/sign-in"
        assert COOKIE not in client.cookies
        async with httpx.AsyncClient(base_url=service.url, cookies={COOKIE: copied}) as thief:
            assert (await thief.get("/")).status_code == 303


async def test_a_key_no_longer_valid_ends_its_sessions(env):
    async with running_service(env) as service:
        async with httpx.AsyncClient(base_url=service.url) as client:
            await sign_in(client)
            cookie = client.cookies[COOKIE]
            assert (await client.get("/")).status_code == 200
    # The same database and secret key, but the key is no longer configured.
    env = env | {"VIDEOHOOKS_API_KEYS": "vhk_another_key_0123456789"}
    async with running_service(env) as service:
        async with httpx.AsyncClient(base_url=service.url, cookies={COOKIE: cookie}) as client:
            response = await client.get("/")
            assert response.status_code == 303
            assert response.headers["location"].startswith("/sign-in")
            # A live page learns it too, and says so to the browser.
            async with client.stream("GET", "/jobs/vid_x/live") as stream:
                assert stream.status_code == 303


async def test_revoking_a_stored_key_ends_its_sessions_within_seconds(env):
    env = {name: value for name, value in env.items() if name != "VIDEOHOOKS_API_KEYS"}
    async with running_service(env) as service:
        key, record = new_api_key("dashboard")
        await service.store.add_api_key(record)
        async with httpx.AsyncClient(base_url=service.url) as client:
            assert (await sign_in(client, key=key)).status_code == 303
            assert (await client.get("/")).status_code == 200
            assert await service.store.revoke_api_key(record.id, time.time())

            async def signed_out() -> bool:
                return (await client.get("/")).status_code == 303

            # A key is trusted for a few seconds once checked (service/api_keys.py), no longer.
            await eventually(signed_out, timeout=30)


async def test_a_form_without_its_sessions_token_is_refused_and_changes_nothing(env):
    async with running_service(env) as service:
        subscription = await service.subscribe("http://127.0.0.1:9/")
        path = f"/subscriptions/{subscription['id']}/status"
        async with (
            httpx.AsyncClient(base_url=service.url) as client,
            httpx.AsyncClient(base_url=service.url) as other,
        ):
            await sign_in(client)
            await sign_in(other)
            for forged in ({}, {"csrf_token": "forged"}, {"csrf_token": await page_token(other)}):
                response = await client.post(path, data=forged | {"status": "disabled"})
                assert response.status_code == 403
                assert "Nothing was changed" in response.text
            current = await service.api.get(f"/v1/subscriptions/{subscription['id']}")
            assert current.json()["status"] == "active"
            token = await page_token(client)
            response = await client.post(path, data={"csrf_token": token, "status": "disabled"})
            assert response.status_code == 303
            current = await service.api.get(f"/v1/subscriptions/{subscription['id']}")
            assert current.json()["status"] == "disabled"


async def test_every_form_on_every_page_carries_the_sessions_token(env):
    async with (
        recording_subscriber() as subscriber,
        running_service(env) as service,
        httpx.AsyncClient(base_url=service.url) as client,
    ):
        subscription = await service.subscribe(subscriber.url)
        video = await service.submit({"after_s": 0.1})
        await eventually(lambda: _terminal(service, video["id"]), timeout=30)
        await sign_in(client)
        token = await page_token(client)
        pages = [
            "/",
            "/jobs",
            f"/jobs/{video['id']}",
            "/subscriptions",
            f"/subscriptions/{subscription['id']}",
            "/deliveries?status=all",
        ]
        forms = 0
        for path in pages:
            html = (await client.get(path)).text
            for form in re.findall(r'<form method="post".*?</form>', html, re.DOTALL):
                assert f'name="csrf_token" value="{token}"' in form, (path, form[:200])
                forms += 1
        assert forms >= 12


async def test_a_jobs_page_tells_its_whole_story(env):
    async with (
        recording_subscriber(default_status=500) as subscriber,
        running_service(env) as service,
        httpx.AsyncClient(base_url=service.url) as client,
    ):
        await service.subscribe(subscriber.url)
        await sign_in(client)
        webhooked = await service.submit({"after_s": 0.3})
        # Polled once the webhook grace (2 s) is over: an error, then progress, then the end.
        polled = await service.submit({"after_s": 4, "webhook": False, "poll_errors": 1})
        fell_back = await service.submit(
            {"outcome": "failed", "after_s": 0.1, "error_message": "no luck"},
            fallback_models=["simulator/second"],
        )
        for video in (webhooked, polled, fell_back):
            await eventually(lambda v=video: _terminal(service, v["id"]), timeout=30)

        # A repeat of the provider's webhook after the end, and one with a bad signature.
        url = service.context.receiver_url("simulator", webhooked["id"], 0)
        simulator = service.context.providers["simulator"]
        body = json.dumps({"id": webhooked["provider_job_id"]})
        signed = _signed(simulator.secret, body)
        async with httpx.AsyncClient() as provider:
            assert (await provider.post(url, content=body, headers=signed)).status_code == 200
            forged = signed | {"webhook-signature": "v1,AAAA"}
            assert (await provider.post(url, content=body, headers=forged)).status_code == 401

        # Every delivery attempt to the failing subscriber is shown, then the last one.
        await eventually(lambda: _failed_deliveries(service, webhooked["id"]), timeout=30)

        page = _text((await client.get(f"/jobs/{webhooked['id']}")).text)
        assert "Created for simulator/default" in page
        assert "Submitted to simulator (model simulator/default)" in page
        assert "a webhook is expected" in page
        assert "Webhook accepted (signed), reports completed 100%" in page
        assert "completed (by webhook)" in page
        assert "Webhook duplicate: the job is already completed" in page
        assert "Webhook rejected:" in page
        assert page.count("HTTP 500") == 4  # the first attempt and three retries
        assert "recorded" in page  # the subscriber's answer, excerpted
        assert re.search(r"HTTP 500 in \d+ ms", page)

        failed = _text((await client.get("/deliveries", params={"status": "failed"})).text)
        assert re.search(r"\b\d+ failed deliver(y|ies), newest first", failed)
        assert "4, last HTTP 500" in failed

        page = _text((await client.get(f"/jobs/{polled['id']}")).text)
        assert "Poll failed, retrying in" in page
        assert "seen by poll" in page
        assert "completed (by poll)" in page

        page = _text((await client.get(f"/jobs/{fell_back['id']}")).text)
        assert "falling back to simulator/second" in page
        assert "Falling back from simulator/default to simulator/second: no luck" in page
        assert "attempt 2" in page
        assert "failed (by " in page


async def test_job_filters_and_pages_follow_the_stores_cursors(env):
    async with running_service(env) as service, httpx.AsyncClient(base_url=service.url) as client:
        jobs = [a_job(metadata={"team": "a" if n < 52 else "b"}) for n in range(55)]
        for job in jobs:
            await service.store.create_job(job)
        await sign_in(client)
        first = (await client.get("/jobs")).text
        assert len(re.findall(r'href="/jobs/vid_', first)) == 50
        next_link = re.search(r'href="(/jobs\?after=[^"]+)" rel="next"', first)
        assert next_link is not None and jobs[5].id in next_link.group(1)
        second = (await client.get(next_link.group(1).replace("&amp;", "&"))).text
        assert re.findall(r'href="/jobs/(vid_\w+)"', second) == [job.id for job in jobs[4::-1]]
        assert 'rel="next"' not in second

        filtered = (await client.get("/jobs", params={"metadata": "team=b"})).text
        assert re.findall(r'href="/jobs/(vid_\w+)"', filtered) == [j.id for j in jobs[:51:-1]]
        for params in ({"status": "failed"}, {"provider": "fal"}, {"model": "simulator/x"}):
            assert 'href="/jobs/vid_' not in (await client.get("/jobs", params=params)).text
        bad = await client.get("/jobs", params={"metadata": "no-equals-sign"})
        assert bad.status_code == 422
        assert "write it as key=value" in bad.text


async def test_the_overview_counts_with_server_drawn_charts(env):
    async with (
        recording_subscriber(default_status=410) as gone,
        running_service(env) as service,
        httpx.AsyncClient(base_url=service.url) as client,
    ):
        subscription = await service.subscribe(gone.url)
        video = await service.submit({"after_s": 0.1})
        await eventually(lambda: _terminal(service, video["id"]), timeout=30)
        await eventually(lambda: _disabled(service, subscription["id"]), timeout=30)
        await sign_in(client)
        response = await client.get("/")
        page = response.text
        assert "<svg" in page and "<script" not in page.split("</head>")[1]
        assert "Jobs by status, last 24 h: queued 0, in_progress 0, completed 1, failed 0" in page
        assert "Jobs by provider, last 24 h: simulator 1" in page
        assert "Deliveries, last 24 h: succeeded 0, failed 1, pending 0" in page
        assert subscription["id"] in page and "410 Gone" in page
        # Nothing comes from another origin.
        for reference in re.findall(r'(?:src|href)="([^"]+)"', page):
            assert reference.startswith(("/", "#")), reference
        assert "default-src 'none'" in response.headers["content-security-policy"]


async def test_a_live_page_streams_changes_and_stops_when_the_client_leaves(env):
    async with running_service(env) as service, httpx.AsyncClient(base_url=service.url) as client:
        await sign_in(client)
        video = await service.submit({"after_s": 1.0})
        before = live_streams()
        async with client.stream("GET", f"/jobs/{video['id']}/live") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            events = _events(stream)
            seen = []
            async for name, data in events:
                assert name == "fragment"
                seen.append(data)
                if "status-completed" in data:
                    break
            assert len(seen) >= 2  # the page as it was, then as it changed
            assert live_streams() == before + 1
        await eventually(lambda: live_streams() == before, timeout=30)


async def test_open_live_pages_do_not_hold_the_servers_shutdown(env):
    before = live_streams()
    async with AsyncExitStack() as stack:
        service = await stack.enter_async_context(running_service(env))
        client = await stack.enter_async_context(
            httpx.AsyncClient(base_url=service.url, timeout=None)
        )
        await sign_in(client)
        streams = [
            await client.send(client.build_request("GET", path), stream=True)
            for path in ("/deliveries/live", "/deliveries/live?status=pending")
        ]
        await eventually(lambda: live_streams() == before + 2, timeout=30)
        # Stopping the service ends the streams instead of waiting for them (uvicorn's graceful
        # shutdown would wait forever); the guard only turns a hang into a failure.
        stopped = asyncio.get_running_loop().time()
        await asyncio.wait_for(service.service.__aexit__(None, None, None), timeout=120)
        took = asyncio.get_running_loop().time() - stopped
        assert live_streams() == before
        for stream in streams:
            await stream.aread()  # ended by the server
            await stream.aclose()
    print(f"shutdown with two live pages open took {took:.2f} s")


def _text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", "", html).split())


async def _terminal(service, video_id: str) -> bool:
    return (await service.video(video_id))["status"] in ("completed", "failed")


async def _disabled(service, subscription_id: str) -> bool:
    response = await service.api.get(f"/v1/subscriptions/{subscription_id}")
    return bool(response.json()["status"] == "disabled")


async def _failed_deliveries(service, video_id: str) -> bool:
    response = await service.api.get("/v1/deliveries", params={"status": "failed"})
    return any(delivery["attempt_count"] == 4 for delivery in json.loads(response.text)["data"])


def _signed(secret: str, body: str) -> dict[str, str]:
    message_id = f"msg_{time.time_ns()}"
    now = datetime.now(UTC)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, now, body),
        "content-type": "application/json",
    }


async def _events(stream: httpx.Response):
    name, data = "message", []
    async for line in stream.aiter_lines():
        if line.startswith("event: "):
            name = line[len("event: ") :]
        elif line.startswith("data: "):
            data.append(line[len("data: ") :])
        elif line == "" and data:
            yield name, "\n".join(data)
            name, data = "message", []


async def test_hooks_are_created_and_operated_beside_subscriptions(env):
    async with (
        recording_subscriber() as target,
        running_service(env) as service,
        httpx.AsyncClient(base_url=service.url) as client,
    ):
        subscription = await service.subscribe(target.url)
        await sign_in(client)
        token = await page_token(client, "/subscriptions")
        refused = await client.post(
            "/subscriptions/hooks",
            data={"csrf_token": token, "target_url": "ftp://nowhere", "event": "*"},
        )
        assert refused.status_code == 422
        assert 'id="e-hook_target_url"' in refused.text
        created = await client.post(
            "/subscriptions/hooks",
            data={"csrf_token": token, "target_url": target.url, "event": "video.failed"},
        )
        assert created.status_code == 201
        hook_id = re.search(r"Hook <span class=\"mono\">(hook_\w+)", created.text).group(1)
        secret = re.search(r'id="secret">(whsec_[^<]+)<', created.text).group(1)
        assert 'action="/subscriptions/' + hook_id + '"' not in created.text  # hooks aren't edited
        # The API sees the hook as a hook, made by the same rules.
        hook = (await service.api.get(f"/v1/hooks/{hook_id}")).json()
        assert hook["event"] == "video.failed" and hook["target_url"] == target.url
        assert (await service.store.get_subscription(hook_id)).secret == secret

        listing = _text((await client.get("/subscriptions")).text)
        assert subscription["id"] in listing and "1 subscription, newest first" in listing
        assert hook_id in listing and "1 hook, newest first" in listing

        tested = await client.post(f"/subscriptions/{hook_id}/test", data={"csrf_token": token})
        assert tested.status_code == 303
        assert target.events()[-1]["type"] == "webhook.test"
        assert target.events()[-1]["data"]["subscription_id"] == hook_id
        deleted = await client.post(f"/subscriptions/{hook_id}/delete", data={"csrf_token": token})
        assert deleted.status_code == 303
        assert (await service.api.get(f"/v1/hooks/{hook_id}")).status_code == 404
