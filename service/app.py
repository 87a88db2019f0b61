"""The ASGI application: routes, authentication, the body-size limit and error rendering."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api import (
    callbacks,
    deliveries,
    docs,
    events,
    health,
    hooks,
    openapi,
    receiver,
    subscriptions,
    videos,
)
from service.context import Context
from service.dashboard import Dashboard
from service.errors import (
    ApiError,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
    Unavailable,
)
from storage import StorageError

log = logging.getLogger("videohooks.api")

MAX_BODY = 1024 * 1024


def create_app(context: Context) -> Starlette:
    app = Starlette(
        routes=_routes(context),
        middleware=[Middleware(BodyLimit), Middleware(Authenticate, context=context)],
        exception_handlers={
            ApiError: _api_error,
            HTTPException: _http_error,
            StorageError: _storage_error,
            Exception: _unexpected_error,
        },
    )
    app.state.context = context
    return app


def _routes(context: Context) -> list[BaseRoute]:
    routes: list[BaseRoute] = [
        _route("/v1/videos", get=videos.list_, post=videos.create),
        _route("/v1/videos/{video_id}", get=videos.retrieve),
        _route("/v1/videos/{video_id}/content", get=videos.content),
        _route("/v1/subscriptions", get=subscriptions.list_, post=subscriptions.create),
        _route(
            "/v1/subscriptions/{subscription_id}",
            get=subscriptions.retrieve,
            patch=subscriptions.update,
            delete=subscriptions.delete,
        ),
        _route("/v1/subscriptions/{subscription_id}/secret", get=subscriptions.secret),
        _route("/v1/subscriptions/{subscription_id}/deliveries", get=subscriptions.deliveries),
        _route("/v1/subscriptions/{subscription_id}/recover", post=subscriptions.recover),
        _route(
            "/v1/subscriptions/{subscription_id}/rotate-secret", post=subscriptions.rotate_secret
        ),
        _route("/v1/subscriptions/{subscription_id}/test", post=subscriptions.test),
        _route("/v1/hooks", get=hooks.list_, post=hooks.create),
        _route("/v1/hooks/{hook_id}", get=hooks.retrieve, delete=hooks.delete),
        _route("/v1/events", get=events.list_),
        # Before /v1/events/{event_id}, which would take "sample" for an id.
        _route("/v1/events/sample", get=events.sample),
        _route("/v1/events/{event_id}", get=events.retrieve),
        _route("/v1/events/{event_id}/deliveries", get=events.deliveries),
        _route("/v1/events/{event_id}/redeliver", post=events.redeliver),
        _route("/v1/deliveries", get=deliveries.list_),
        _route("/v1/callback-secret", get=callbacks.retrieve),
        _route("/v1/callback-secret/rotate", post=callbacks.rotate),
        # Providers may add their own query parameters to our callback URLs.
        _route("/hooks/{provider}/{token}", any_query=True, post=receiver.receive),
        _route("/hooks/{provider}", any_query=True, post=receiver.receive_account),
        _route("/healthz", get=health.healthz),
        _route("/readyz", get=health.readyz),
        _route("/metrics", get=health.metrics),
        _route("/openapi.json", get=openapi.openapi),
        _route("/docs", any_query=True, get=docs.page),
        _route("/docs/start.js", any_query=True, get=docs.start),
        Mount(docs.ASSETS_PATH, app=docs.assets()),
    ]
    if context.simulator is not None:
        routes.append(Mount("/simulator", app=context.simulator.app))
    routes += Dashboard(context).routes()
    return routes


Endpoint = Callable[[Request], Awaitable[Response]]


def _route(path: str, any_query: bool = False, **endpoints: Endpoint) -> Route:
    """One route per path, so that a 405 names every method the path allows; each method takes
    exactly the query parameters its operation declares in the OpenAPI document."""
    allowed = {method: openapi.query_names(method, path) for method in endpoints}

    async def dispatch(request: Request) -> Response:
        method = "get" if request.method == "HEAD" else request.method.lower()
        # Most requests have no query string: then there is nothing to parse or check.
        query = request.query_params if request.scope["query_string"] else None
        if query is not None and not any_query and (unknown := set(query) - allowed[method]):
            raise InvalidRequest.field(sorted(unknown)[0], "is not a parameter of this operation")
        # No id holds U+0000, and PostgreSQL cannot even compare a string that does.
        if any("\x00" in str(value) for value in request.path_params.values()):
            raise NotFound("no such object")
        for name, value in query.multi_items() if query is not None else ():
            if "\x00" in value:
                raise InvalidRequest.field(name, "must not hold U+0000")
        return await endpoints[method](request)

    return Route(path, dispatch, methods=[method.upper() for method in endpoints])


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return exc.response()


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return NotFound("no such route").response()
    if exc.status_code == 405:
        allowed = _MethodNotAllowed("method not allowed on this route", headers=exc.headers)
        return allowed.response()
    error = ApiError(str(exc.detail))
    error.status, error.code = exc.status_code, "http_error"
    return error.response()


async def _storage_error(request: Request, exc: Exception) -> Response:
    log.warning("storage unavailable", extra={"error": str(exc)})
    return Unavailable(
        "the database is busy or unreachable; retry shortly", headers={"retry-after": "1"}
    ).response()


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    # The route's template, never the path: a receiver path holds its signed token.
    route = getattr(request.scope.get("route"), "path", None) or "no route"
    log.exception("unexpected error", extra={"route": route, "method": request.method})
    return ApiError("internal error").response()


class _MethodNotAllowed(ApiError):
    status, code = 405, "method_not_allowed"


class BodyLimit:
    """Refuses bodies over 1 MiB with 413 before reading them whole: at once when Content-Length
    says so, otherwise as soon as the streamed body passes the limit."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            error = PayloadTooLarge(f"request bodies are limited to {self.limit} bytes")
            await error.response()(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise PayloadTooLarge(f"request bodies are limited to {self.limit} bytes")
            return message

        await self.app(scope, limited, send)


class Authenticate:
    """Bearer API keys on every /v1 route (service/api_keys.py says which are accepted), and
    nothing else: the dashboard's session cookie is never a credential here."""

    def __init__(self, app: ASGIApp, context: Context) -> None:
        self.app = app
        # The process's one KeyCheck, which the dashboard's sign-in and sessions use too.
        self.keys = context.keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (
            not scope["path"].startswith("/v1/") and scope["path"] != "/v1"
        ):
            await self.app(scope, receive, send)
            return
        key_hash = await self._authenticate(dict(scope["headers"]).get(b"authorization", b""))
        if key_hash is None:
            error = Unauthorized(
                "missing or invalid API key; send Authorization: Bearer <key>",
                headers={"www-authenticate": "Bearer"},
            )
            await error.response()(scope, receive, send)
            return
        scope["api_key_hash"] = key_hash
        await self.app(scope, receive, send)

    async def _authenticate(self, header: bytes) -> str | None:
        scheme, _, key = header.decode("latin-1").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            return None
        return await self.keys.check(key.strip())
