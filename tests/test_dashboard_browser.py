"""The dashboard in a real browser: Debian's Chromium driven by Playwright, against the service
under uvicorn on loopback with a recording subscriber. One browser and one service for the
module; each test has a browser context (cookies) of its own. The screenshots in
docs/dashboard.md are taken here."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.support.servers import eventually
from tests.support.service import API_KEY, Running, fast_env, running_service
from tests.support.subscriber import Subscriber, recording_subscriber

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# The screenshots of docs/dashboard.md are written to the folder VIDEOHOOKS_SCREENSHOTS names
# (docs/dashboard, to renew them); otherwise beside the test's other files, so that a test run
# leaves the checkout as it found it.
SCREENSHOTS_VARIABLE = "VIDEOHOOKS_SCREENSHOTS"
WIDE = {"width": 1280, "height": 900}
NARROW = {"width": 360, "height": 740}
# Generous, for a busy machine: each waits for an event, and is only the longest it may take.
expect.set_options(timeout=30_000)


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture(scope="module")
async def subscriber() -> AsyncIterator[Subscriber]:
    async with recording_subscriber() as recording:
        yield recording


@pytest.fixture(scope="module")
async def service(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Running]:
    async with running_service(fast_env(tmp_path_factory.mktemp("dashboard"))) as running:
        yield running


async def new_page(browser: Browser, service: Running, viewport: dict[str, int]) -> Page:
    context = await browser.new_context(base_url=service.url, viewport=viewport)
    return await context.new_page()


@pytest.fixture
async def page(browser: Browser, service: Running) -> AsyncIterator[Page]:
    opened = await new_page(browser, service, WIDE)
    try:
        yield opened
    finally:
        await opened.context.close()


async def sign_in(page: Page, key: str = API_KEY) -> None:
    await page.goto("/")
    await page.get_by_label("API key").fill(key)
    await page.get_by_role("button", name="Sign in").click()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    named = os.environ.get(SCREENSHOTS_VARIABLE)
    folder = Path(named) if named else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def screenshot(page: Page, folder: Path, name: str) -> None:
    await page.screenshot(path=folder / name, full_page=True)
    assert (folder / name).stat().st_size > 0


async def subscription(service: Running, subscriber: Subscriber) -> dict[str, Any]:
    created = await service.subscribe(subscriber.url)
    subscriber.secrets.append(created["secret"])
    return created


async def test_a_wrong_key_cannot_sign_in(page: Page) -> None:
    await sign_in(page, key="vhk_wrong")
    await expect(page.get_by_role("alert")).to_have_text("That API key is not valid.")
    assert page.url.endswith("/sign-in")
    assert not [c for c in await page.context.cookies() if c["name"] == "videohooks_session"]
    await page.goto("/jobs")
    assert "/sign-in" in page.url


async def test_sign_in_then_watch_a_job_complete_without_a_reload(
    page: Page, service: Running, screenshots: Path
) -> None:
    await sign_in(page)
    await expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    cookie = next(c for c in await page.context.cookies() if c["name"] == "videohooks_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    assert API_KEY not in cookie["value"]

    video = await service.submit({"after_s": 4}, metadata={"customer": "acme"})
    await page.goto(f"/jobs/{video['id']}")
    status = page.locator("#job-status")
    await expect(status).not_to_have_text("completed")
    await page.evaluate("window.stayed = true")
    await expect(status).to_have_text("completed")
    # The same document all along: updated by the server's events, never reloaded.
    assert await page.evaluate("window.stayed") is True
    assert await page.locator("#job-live").get_attribute("data-updated")
    # The simulator's webhook is told either way: accepted, or (when a poll saw the end first on
    # a busy machine) a duplicate of what is already final.
    await expect(page.locator("#timeline li.moment-webhook")).to_have_count(1)
    await expect(page.locator("#timeline")).to_contain_text("completed (by ")
    await screenshot(page, screenshots, "job-1280.png")


async def test_a_failing_delivery_shows_its_attempts_then_is_redelivered(
    browser: Browser, page: Page, service: Running, subscriber: Subscriber, screenshots: Path
) -> None:
    subscriber.default_status = 500
    subscriber.body = "down for maintenance"
    await subscription(service, subscriber)
    video = await service.submit({"after_s": 0.2})

    async def delivery_failed() -> dict[str, Any] | None:
        response = await service.api.get("/v1/deliveries", params={"status": "failed"})
        found = [d for d in json.loads(response.text)["data"] if d["attempt_count"] == 4]
        return found[0] if found else None

    delivery = await eventually(delivery_failed, timeout=60)
    await sign_in(page)
    await page.goto("/deliveries?status=failed")
    row = page.locator(f"#row-{delivery['id']}")
    await row.locator("summary").click()
    attempts = row.locator("li.attempt")
    await expect(attempts).to_have_count(4)
    await expect(attempts.first).to_contain_text("HTTP 500")
    await expect(attempts.first).to_contain_text("down for maintenance")
    await screenshot(page, screenshots, "deliveries-1280.png")

    # The job's page, open in another tab, will see the success arrive by itself.
    story = await page.context.new_page()
    await story.goto(f"/jobs/{video['id']}")
    timeline = story.locator(f"li.moment-delivery:has(#delivery-{delivery['id']})")
    await expect(timeline.locator("li.attempt")).to_have_count(4)
    await story.evaluate("window.stayed = true")

    subscriber.default_status = 200
    subscriber.body = "thanks"
    box = page.get_by_label(f"Select {delivery['id']}")
    await box.focus()
    await page.keyboard.press("Space")
    await expect(box).to_be_checked()
    await page.get_by_role("button", name="Redeliver selected").click()
    await expect(page.get_by_role("status")).to_have_text("Queued 1 delivery again.")

    await expect(timeline.locator(".status")).to_have_text("succeeded")
    await expect(timeline.locator("li.attempt")).to_have_count(5)
    await expect(timeline.locator("li.attempt").last).to_contain_text("HTTP 200")
    assert await story.evaluate("window.stayed") is True
    assert video["id"] in {event["data"]["id"] for event in subscriber.events()}


async def test_rotate_a_secret_shown_once_and_send_a_test_event(
    page: Page, service: Running, subscriber: Subscriber, screenshots: Path
) -> None:
    subscriber.default_status = 200
    created = await subscription(service, subscriber)
    await sign_in(page)
    await page.goto(f"/subscriptions/{created['id']}")
    await expect(page.locator("#secret")).to_have_count(0)

    await page.get_by_role("button", name="Send a test event").click()
    await expect(page.get_by_role("status")).to_contain_text("Test event delivered: HTTP 200")
    assert subscriber.events()[-1]["type"] == "webhook.test"
    await screenshot(page, screenshots, "subscription-1280.png")

    await page.get_by_role("button", name="Rotate the secret").click()
    secret = (await page.locator("#secret").text_content() or "").strip()
    assert secret.startswith("whsec_") and secret != created["secret"]
    current = await service.store.get_subscription(created["id"])
    assert current is not None and current.secret == secret
    # Shown once: the page itself never shows it again.
    await page.goto(f"/subscriptions/{created['id']}")
    await expect(page.locator("#secret")).to_have_count(0)
    assert secret not in await page.content()


async def test_a_forged_form_without_the_csrf_token_is_refused(
    page: Page, service: Running, subscriber: Subscriber
) -> None:
    created = await subscription(service, subscriber)
    await sign_in(page)
    await expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    async with page.expect_response(f"**/subscriptions/{created['id']}/status") as answer:
        await page.evaluate(
            """(path) => {
                const form = document.createElement("form");
                form.method = "post";
                form.action = path;
                form.innerHTML = '<input name="status" value="disabled">';
                document.body.append(form);
                form.submit();
            }""",
            f"/subscriptions/{created['id']}/status",
        )
    assert (await answer.value).status == 403
    await expect(page.get_by_role("heading", name="That form was refused")).to_be_visible()
    current = await service.api.get(f"/v1/subscriptions/{created['id']}")
    assert current.json()["status"] == "active"


async def test_keyboard_alone_signs_in_and_moves_around_with_visible_focus(page: Page) -> None:
    await page.goto("/sign-in")
    for _ in range(10):
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement.id") == "api_key":
            break
    assert await page.evaluate("document.activeElement.id") == "api_key"
    await page.keyboard.type(API_KEY)
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    for _ in range(10):
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement.textContent") == "Jobs":
            break
    focused = await page.evaluate(
        "[document.activeElement.textContent,"
        " getComputedStyle(document.activeElement).outlineStyle]"
    )
    assert focused == ["Jobs", "solid"]
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="Jobs")).to_be_visible()


async def test_readable_at_360_pixels_without_sideways_scrolling(
    browser: Browser, service: Running, subscriber: Subscriber, screenshots: Path
) -> None:
    created = await subscription(service, subscriber)
    video = await service.submit({"after_s": 0.1}, metadata={"customer": "a-long-name-" * 3})
    await eventually(lambda: _terminal(service, video["id"]), timeout=60)
    page = await new_page(browser, service, NARROW)
    try:
        await sign_in(page)
        await expect(page.get_by_role("heading", name="Overview")).to_be_visible()
        for path, shot in (
            ("/", "overview-360.png"),
            ("/jobs", None),
            (f"/jobs/{video['id']}", "job-360.png"),
            ("/subscriptions", None),
            (f"/subscriptions/{created['id']}", None),
            ("/deliveries?status=all", "deliveries-360.png"),
        ):
            response = await page.goto(path)
            assert response is not None and response.ok, path
            wide = await page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert wide <= 0, f"{path} scrolls sideways by {wide} px at 360 px"
            if shot:
                await screenshot(page, screenshots, shot)
    finally:
        await page.context.close()


async def test_the_overview_at_a_glance_and_signing_out(page: Page, screenshots: Path) -> None:
    await sign_in(page)
    await expect(page.locator("#chart-jobs")).to_be_visible()
    await expect(page.locator("#chart-deliveries")).to_be_visible()
    await screenshot(page, screenshots, "overview-1280.png")
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_label("API key")).to_be_visible()
    await page.goto("/")
    assert page.url.endswith("/sign-in")


async def _terminal(service: Running, video_id: str) -> bool:
    return (await service.video(video_id))["status"] in ("completed", "failed")


def test_ci_installs_debians_chromium_when_it_is_missing() -> None:
    ci = (Path(__file__).parents[1] / ".ci" / "run").read_text()
    assert "command -v chromium" in ci
    assert "apt-get install -y -q chromium chromium-driver" in ci
