"""The dashboard's pages: server-rendered HTML (Jinja2 through Starlette) from the API's own
process, reading through the same store and service functions as the API.

Its routes are not under /v1 and its cookie is no credential there. Every page but the sign-in
page and the static files needs a session; without one a request is sent to sign in. Every POST
needs the session's CSRF token; without it the answer is a 403 page and nothing changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.datastructures import MultiDict
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from handlers import implemented
from service import metrics, redelivery
from service.context import Context
from service.dashboard import charts
from service.dashboard.auth import SIGN_IN_COOKIE, Sessions
from service.dashboard.subscriptions import SubscriptionPages
from service.dashboard.timeline import story
from storage.records import DELIVERY_STATUSES, JOB_STATUSES, DashboardSession

HERE = Path(__file__).parent
PAGE = 50
DAY = 86400.0
# How often a live page looks for changes, and how many looks between keep-alive comments.
LIVE_INTERVAL = 1.0
KEEP_ALIVE_EVERY = 15
FLASH_COOKIE = "videohooks_flash"
SECURITY_HEADERS = {
    # Nothing but this origin: no CDN, no inline script, no framing.
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "cache-control": "no-store",
    "referrer-policy": "same-origin",
    "x-content-type-options": "nosniff",
}

Handler = Callable[[Request], Awaitable[Response]]


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "—"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp))


def _iso(timestamp: float | None) -> str:
    return "" if timestamp is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def _ago(timestamp: float | None) -> str:
    if timestamp is None:
        return "—"
    seconds = max(0, int(time.time() - timestamp))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def _local(path: str | None, default: str) -> str:
    """A path on this site to go back to; anything else (another origin) is refused."""
    if path and path.startswith("/") and not path.startswith("//") and "\\" not in path:
        return path
    return default


class Dashboard:
    def __init__(self, context: Context) -> None:
        self.context = context
        self.store = context.store
        self.sessions = Sessions(context)
        self.templates = Jinja2Templates(directory=HERE / "templates")
        self.templates.env.filters |= {"when": _when, "iso": _iso, "ago": _ago}
        self.templates.env.globals["providers"] = implemented()
        self.subscriptions = SubscriptionPages(self)

    def routes(self) -> list[BaseRoute]:
        page = self._page
        subscriptions = self.subscriptions

        def post(path: str, handler: Handler) -> Route:
            return Route(path, page(handler), methods=["POST"], include_in_schema=False)

        return [
            Route("/", page(self.overview), include_in_schema=False),
            Route("/sign-in", self.sign_in_page, methods=["GET"], include_in_schema=False),
            Route("/sign-in", self.sign_in, methods=["POST"], include_in_schema=False),
            Route("/sign-out", page(self.sign_out), methods=["POST"], include_in_schema=False),
            Route("/jobs", page(self.jobs), include_in_schema=False),
            Route("/jobs/{job_id}", page(self.job), include_in_schema=False),
            Route("/jobs/{job_id}/live", page(self.job_live), include_in_schema=False),
            Route("/events/{event_id}", page(self.event), include_in_schema=False),
            Route("/deliveries", page(self.deliveries), include_in_schema=False),
            Route("/deliveries/live", page(self.deliveries_live), include_in_schema=False),
            post("/deliveries/redeliver", self.redeliver),
            Route("/subscriptions", page(subscriptions.list_), include_in_schema=False),
            post("/subscriptions", subscriptions.create),
            post("/subscriptions/hooks", subscriptions.create_hook),
            Route(
                "/subscriptions/{subscription_id}",
                page(subscriptions.show),
                include_in_schema=False,
            ),
            post("/subscriptions/{subscription_id}", subscriptions.edit),
            post("/subscriptions/{subscription_id}/status", subscriptions.set_status),
            post("/subscriptions/{subscription_id}/rotate-secret", subscriptions.rotate),
            post("/subscriptions/{subscription_id}/test", subscriptions.test),
            post("/subscriptions/{subscription_id}/recover", subscriptions.recover),
            post("/subscriptions/{subscription_id}/delete", subscriptions.delete),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ]

    # -- sessions ---------------------------------------------------------------------------

    def _page(self, handler: Handler) -> Handler:
        """A page behind the session; a POST also behind the session's CSRF token."""

        async def endpoint(request: Request) -> Response:
            session = await self.sessions.current(request)
            if session is None:
                return self._to_sign_in(request)
            request.state.session = session
            if request.method == "POST":
                form = await _form(request)
                if not self.sessions.csrf_valid(session, str(form.get("csrf_token", ""))):
                    return self.render(request, "refused.html", {}, status_code=403)
                request.state.form = form
            return await handler(request)

        return endpoint

    def _to_sign_in(self, request: Request) -> Response:
        back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if request.method != "GET" or back.endswith("/live") or "/live?" in back:
            back = "/"
        target = "/sign-in" + ("" if back == "/" else "?" + urlencode({"next": back}))
        return _secured(RedirectResponse(target, status_code=303))

    async def sign_in_page(self, request: Request) -> Response:
        if await self.sessions.current(request) is not None:
            return _secured(RedirectResponse("/", status_code=303))
        return self._sign_in_form(request, error=None, status_code=200)

    def _sign_in_form(self, request: Request, error: str | None, status_code: int) -> Response:
        nonce = request.cookies.get(SIGN_IN_COOKIE) or _nonce()
        response = self.render(
            request,
            "sign_in.html",
            {
                "sign_in_token": self.sessions.sign_in_token(nonce),
                "next": _local(request.query_params.get("next"), "/"),
                "error": error,
            },
            status_code=status_code,
        )
        self.sessions.set_sign_in(request, response, nonce)
        return response

    async def sign_in(self, request: Request) -> Response:
        form = await _form(request)
        if not self.sessions.sign_in_valid(request, str(form.get("csrf_token", ""))):
            return self.render(request, "refused.html", {}, status_code=403)
        cookie = await self.sessions.open(str(form.get("api_key", "")))
        if cookie is None:
            return self._sign_in_form(request, error="That API key is not valid.", status_code=401)
        response = RedirectResponse(_local(str(form.get("next", "")), "/"), status_code=303)
        self.sessions.set_session(request, response, cookie)
        return _secured(response)

    async def sign_out(self, request: Request) -> Response:
        await self.sessions.close(request.state.session)
        response = RedirectResponse("/sign-in", status_code=303)
        self.sessions.clear_session(request, response)
        return _secured(response)

    # -- rendering --------------------------------------------------------------------------

    def render(
        self, request: Request, name: str, values: dict[str, Any], status_code: int = 200
    ) -> Response:
        response = self.templates.TemplateResponse(
            request, name, self._values(request, values), status_code=status_code
        )
        if FLASH_COOKIE in request.cookies:
            response.delete_cookie(FLASH_COOKIE, path="/")
        return _secured(response)

    def fragment(self, request: Request, name: str, values: dict[str, Any]) -> str:
        return self.templates.get_template(name).render(self._values(request, values))

    def _values(self, request: Request, values: dict[str, Any]) -> dict[str, Any]:
        session: DashboardSession | None = getattr(request.state, "session", None)
        return {
            "request": request,
            "csrf_token": None if session is None else self.sessions.csrf_token(session),
            "flash": self.sessions.read_flash(request.cookies.get(FLASH_COOKIE, "")),
            **values,
        }

    def redirect(self, request: Request, to: str, message: str, ok: bool = True) -> Response:
        """Post/redirect/get, with a one-time message for the page it lands on."""
        response = RedirectResponse(to, status_code=303)
        response.set_cookie(
            FLASH_COOKIE,
            self.sessions.flash(ok, message[:500]),
            max_age=60,
            httponly=True,
            samesite="lax",
            secure=self.sessions.secure(request),
            path="/",
        )
        return _secured(response)

    # -- overview ---------------------------------------------------------------------------

    async def overview(self, request: Request) -> Response:
        since = time.time() - DAY
        job_counts = await self.store.job_counts(since)
        by_status = {status: 0 for status in JOB_STATUSES}
        by_provider: dict[str, int] = {}
        for status, provider, count in job_counts:
            by_status[status] = by_status.get(status, 0) + count
            by_provider[provider] = by_provider.get(provider, 0) + count
        deliveries = await self.store.delivery_counts(since)
        delivery_rows = [
            (status, deliveries.get(status, 0)) for status in ("succeeded", "failed", "pending")
        ] + [(status, count) for status, count in deliveries.items() if status in ("skipped",)]
        disabled = [
            await self.store.list_subscriptions(10, None, kind=kind, status="disabled")
            for kind in ("subscription", "hook")
        ]
        values = {
            "jobs_chart": charts.bar_chart("Jobs by status, last 24 h", list(by_status.items())),
            "providers_chart": charts.bar_chart(
                "Jobs by provider, last 24 h",
                sorted(by_provider.items(), key=lambda item: -item[1]),
                tones=False,
            ),
            "deliveries_chart": charts.bar_chart("Deliveries, last 24 h", delivery_rows),
            "oldest_pending": await self.store.oldest_pending_delivery(),
            "disabled": disabled,
        }
        return self.render(request, "overview.html", values)

    # -- jobs -------------------------------------------------------------------------------

    async def jobs(self, request: Request) -> Response:
        query = request.query_params
        filters = {
            name: query.get(name, "").strip()
            for name in ("status", "provider", "model", "metadata")
        }
        errors: dict[str, str] = {}
        if filters["status"] and filters["status"] not in JOB_STATUSES:
            errors["status"] = f"must be one of {', '.join(JOB_STATUSES)}"
        metadata = None
        if filters["metadata"]:
            key, equals, value = filters["metadata"].partition("=")
            if not equals or not key.strip():
                errors["metadata"] = "write it as key=value"
            else:
                metadata = (key.strip(), value.strip())
        after = query.get("after") or None
        page = None
        if not errors:
            page = await self.store.list_jobs(
                filters["status"] or None,
                PAGE,
                after,
                provider=filters["provider"] or None,
                model=filters["model"] or None,
                metadata=metadata,
            )
        kept = {name: value for name, value in filters.items() if value}
        next_url = None
        if page is not None and page.has_more and page.items:
            next_url = "/jobs?" + urlencode(kept | {"after": page.items[-1].id})
        values = {
            "filters": filters,
            "errors": errors,
            "page": page,
            "next_url": next_url,
            "first_url": "/jobs?" + urlencode(kept) if after else None,
            "statuses": JOB_STATUSES,
        }
        return self.render(request, "jobs.html", values, status_code=422 if errors else 200)

    async def job(self, request: Request) -> Response:
        job = await self.store.get_job(request.path_params["job_id"])
        if job is None:
            return self.render(request, "not_found.html", {"what": "job"}, status_code=404)
        values = {"story": await story(self.store, job), "job": job}
        return self.render(request, "job.html", values)

    async def job_live(self, request: Request) -> Response:
        job_id = request.path_params["job_id"]

        async def render() -> str:
            job = await self.store.get_job(job_id)
            if job is None:
                return ""
            values = {"story": await story(self.store, job), "job": job}
            return self.fragment(request, "_job_live.html", values)

        return self._live(request, render)

    async def event(self, request: Request) -> Response:
        event = await self.store.get_event(request.path_params["event_id"])
        if event is None:
            return self.render(request, "not_found.html", {"what": "event"}, status_code=404)
        return _secured(RedirectResponse(f"/jobs/{event.job_id}", status_code=303))

    # -- deliveries -------------------------------------------------------------------------

    async def delivery_rows(
        self, request: Request, subscription_id: str | None = None
    ) -> dict[str, Any]:
        """One page of deliveries (all, or one subscription's) by status, with their attempts,
        and the links of the pages around it."""
        query = request.query_params
        default = "all" if subscription_id else "failed"
        shown = query.get("status", default)
        if shown not in (*DELIVERY_STATUSES, "all"):
            shown = default
        subscription_id = subscription_id or query.get("subscription") or None
        after = query.get("after") or None
        page = await self.store.list_deliveries(
            status=None if shown == "all" else shown,
            subscription_id=subscription_id,
            limit=PAGE,
            after=after,
        )
        attempts = await self.store.delivery_attempts([delivery.seq for delivery in page.items])
        here = f"/subscriptions/{subscription_id}" if subscription_id else "/deliveries"
        kept = {"status": shown}
        next_url = None
        if page.has_more and page.items:
            next_url = here + "?" + urlencode(kept | {"after": page.items[-1].id})
        live = kept | ({"subscription": subscription_id} if subscription_id else {})
        return {
            "page": page,
            "attempts": attempts,
            "status": shown,
            "after": after,
            "next_url": next_url,
            "first_url": here + "?" + urlencode(kept) if after else None,
            "back": here + "?" + urlencode(kept | ({"after": after} if after else {})),
            "live_url": "/deliveries/live?" + urlencode(live | ({"after": after} if after else {})),
            "statuses": ("failed", "pending", "skipped", "succeeded", "cancelled", "all"),
            "here": here,
        }

    async def deliveries(self, request: Request) -> Response:
        return self.render(request, "deliveries.html", await self.delivery_rows(request))

    async def deliveries_live(self, request: Request) -> Response:
        async def render() -> str:
            return self.fragment(request, "_deliveries.html", await self.delivery_rows(request))

        return self._live(request, render)

    async def redeliver(self, request: Request) -> Response:
        form: MultiDict = request.state.form
        back = _local(str(form.get("back", "")), "/deliveries")
        chosen = form.getlist("delivery")[:PAGE]
        if not chosen:
            return self.redirect(request, back, "Choose at least one delivery.", ok=False)
        queued, refused = 0, []
        for delivery_id in chosen:
            delivery = await self.store.get_delivery(str(delivery_id))
            if delivery is None or delivery.subscription_id is None:
                refused.append(f"{delivery_id}: not a subscription's delivery")
                continue
            try:
                queued += await redelivery.redeliver(
                    self.store, delivery.event_id, delivery.subscription_id, time.time()
                )
            except redelivery.RedeliveryRefused as exc:
                refused.append(f"{delivery_id}: {exc.message}")
        text = f"Queued {queued} {'delivery' if queued == 1 else 'deliveries'} again."
        if refused:
            text += " Not queued: " + "; ".join(refused)
        return self.redirect(request, back, text, ok=not refused)

    # -- live updates -----------------------------------------------------------------------

    def _live(self, request: Request, render: Callable[[], Awaitable[str]]) -> Response:
        """Server-sent events: the page's live fragment whenever it changes. The stream ends when
        the client goes away (Starlette cancels it), when the session ends, and when the process
        stops (so that the HTTP server's graceful shutdown is not held by it)."""
        session: DashboardSession = request.state.session
        stopping = self.context.stopping

        async def events() -> AsyncIterator[str]:
            metrics.LIVE_STREAMS.inc()
            try:
                last, quiet = None, 0
                while not stopping.is_set():
                    if await self.sessions.still_valid(session.id) is None:
                        yield "event: signed-out\ndata: \n\n"
                        return
                    html = await render()
                    if html != last:
                        yield _event("fragment", html)
                        last, quiet = html, 0
                    elif (quiet := quiet + 1) % KEEP_ALIVE_EVERY == 0:
                        yield ": keep-alive\n\n"
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stopping.wait(), LIVE_INTERVAL)
            finally:
                metrics.LIVE_STREAMS.dec()

        headers = SECURITY_HEADERS | {"x-accel-buffering": "no"}
        return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


async def _form(request: Request) -> MultiDict:
    """The urlencoded form every dashboard form posts (parsed by the standard library: the
    dashboard never takes file uploads, so no multipart parser is needed)."""
    body = await request.body()
    try:
        return MultiDict(parse_qsl(body.decode(), keep_blank_values=True))
    except UnicodeDecodeError:
        return MultiDict()


def _event(name: str, data: str) -> str:
    lines = "".join(f"data: {line}\n" for line in data.splitlines() or [""])
    return f"event: {name}\n{lines}\n"


def _nonce() -> str:
    return secrets.token_urlsafe(16)


def _secured(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response
