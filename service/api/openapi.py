"""GET /openapi.json, built from the same pydantic models the endpoints validate and render with."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service import __version__
from service.api.common import MAX_LIMIT, MAX_OUTPUT_INDEX, context
from service.models import (
    EVENT_TYPES,
    JSON_VALUE,
    MAX_UNIX_SECONDS,
    NO_NUL,
    CallbackSecretOut,
    CreatedHook,
    CreateHook,
    CreateSubscription,
    CreateVideo,
    Deleted,
    DeliveryOut,
    ErrorResponse,
    EventOut,
    HookOut,
    ListOf,
    Queued,
    Recover,
    Redeliver,
    SubscriptionOut,
    SubscriptionSecretOut,
    SubscriptionWithSecret,
    TestDelivery,
    TestEventOut,
    UpdateSubscription,
    Video,
)
from storage.records import DELIVERY_STATUSES, JOB_STATUSES

REF = "#/components/schemas/{model}"


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    summary: str
    responses: dict[int, type[BaseModel] | None]
    body: type[BaseModel] | None = None
    query: tuple[dict[str, Any], ...] = ()
    headers: tuple[dict[str, Any], ...] = ()
    errors: tuple[int, ...] = (401,)
    authenticated: bool = True
    # The JSON body may be left out altogether.
    optional_body: bool = False
    # Any bytes are accepted (a provider's webhook).
    raw_body: bool = False
    # A 200 answer is the output's bytes, not JSON.
    binary: bool = False
    # Headers of an answer, by status.
    response_headers: tuple[tuple[int, str, str], ...] = ()
    # OpenAPI links from the success answer: {name: (method, path of the linked operation,
    # {its path parameter: where the value is in this answer})}; schemathesis follows them.
    links: tuple[tuple[str, str, str, dict[str, str]], ...] = ()


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def _after(kind: str) -> dict[str, Any]:
    return _query(
        "after",
        {"type": "string", "pattern": NO_NUL},
        f"cursor: the id of the last {kind} of the previous page (404 when no {kind} has it)",
    )


LIMIT = _query(
    "limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}, "page size (default 20)"
)
SINCE = _query(
    "since",
    {"type": "integer", "minimum": 0, "maximum": MAX_UNIX_SECONDS},
    "Unix seconds: created at or after",
)
DELIVERY_STATUS = _query(
    "status", {"type": "string", "enum": list(DELIVERY_STATUSES)}, "only deliveries in this status"
)
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
}

OPERATIONS = (
    Operation(
        "post",
        "/v1/videos",
        "Submit a video job",
        {202: Video, 200: Video},
        body=CreateVideo,
        headers=(IDEMPOTENCY_KEY,),
        response_headers=(
            (
                200,
                "Idempotent-Replayed",
                "true: this Idempotency-Key was used before with this body; the original job",
            ),
        ),
        errors=(400, 401, 409, 413, 422),
        links=tuple(
            (name, "get", path, {"video_id": "$response.body#/id"})
            for name, path in (
                ("Retrieve", "/v1/videos/{video_id}"),
                ("Content", "/v1/videos/{video_id}/content"),
            )
        ),
    ),
    Operation(
        "get",
        "/v1/videos",
        "List video jobs, newest first",
        {200: ListOf[Video]},
        query=(
            _query("status", {"type": "string", "enum": list(JOB_STATUSES)}, "only this status"),
            LIMIT,
            _after("video"),
        ),
        errors=(401, 404, 422),
    ),
    Operation(
        "get", "/v1/videos/{video_id}", "Retrieve a video job", {200: Video}, errors=(401, 404)
    ),
    Operation(
        "get",
        "/v1/videos/{video_id}/content",
        "An output's bytes (a redirect, or streamed)",
        {200: None, 307: None},
        query=(
            _query(
                "output",
                {"type": "integer", "minimum": 0, "maximum": MAX_OUTPUT_INDEX},
                "output index (default 0; 404 past the video's last output)",
            ),
        ),
        errors=(401, 404, 422, 502),
        binary=True,
    ),
    Operation(
        "post",
        "/v1/subscriptions",
        "Create a subscription (the answer carries its secret)",
        {201: SubscriptionWithSecret},
        body=CreateSubscription,
        errors=(400, 401, 413, 422),
        links=tuple(
            (name, method, path, {"subscription_id": "$response.body#/id"})
            for name, method, path in (
                ("Retrieve", "get", "/v1/subscriptions/{subscription_id}"),
                ("Update", "patch", "/v1/subscriptions/{subscription_id}"),
                ("Delete", "delete", "/v1/subscriptions/{subscription_id}"),
                ("Deliveries", "get", "/v1/subscriptions/{subscription_id}/deliveries"),
                ("Recover", "post", "/v1/subscriptions/{subscription_id}/recover"),
                ("RotateSecret", "post", "/v1/subscriptions/{subscription_id}/rotate-secret"),
                ("Test", "post", "/v1/subscriptions/{subscription_id}/test"),
            )
        ),
    ),
    Operation(
        "get",
        "/v1/subscriptions",
        "List subscriptions",
        {200: ListOf[SubscriptionOut]},
        query=(
            _query(
                "url",
                {"type": "string", "pattern": NO_NUL},
                "only those delivering to exactly this URL",
            ),
            LIMIT,
            _after("subscription"),
        ),
        errors=(401, 404, 422),
    ),
    Operation(
        "get",
        "/v1/subscriptions/{subscription_id}",
        "Retrieve a subscription",
        {200: SubscriptionOut},
        errors=(401, 404),
    ),
    Operation(
        "get",
        "/v1/subscriptions/{subscription_id}/secret",
        "A subscription's signing secret (lists and plain reads never carry it)",
        {200: SubscriptionSecretOut},
        errors=(401, 404),
    ),
    Operation(
        "patch",
        "/v1/subscriptions/{subscription_id}",
        "Update a subscription",
        {200: SubscriptionOut},
        body=UpdateSubscription,
        errors=(400, 401, 404, 413, 422),
    ),
    Operation(
        "delete",
        "/v1/subscriptions/{subscription_id}",
        "Delete a subscription",
        {200: Deleted},
        errors=(401, 404),
    ),
    Operation(
        "get",
        "/v1/subscriptions/{subscription_id}/deliveries",
        "A subscription's deliveries with their attempts",
        {200: ListOf[DeliveryOut]},
        query=(DELIVERY_STATUS, SINCE, LIMIT, _after("delivery")),
        errors=(401, 404, 422),
    ),
    Operation(
        "post",
        "/v1/subscriptions/{subscription_id}/recover",
        "Queue again the failed and skipped deliveries of a period",
        {202: Queued},
        body=Recover,
        errors=(400, 401, 404, 409, 413, 422),
    ),
    Operation(
        "post",
        "/v1/subscriptions/{subscription_id}/rotate-secret",
        "Rotate the signing secret (the answer carries the new one)",
        {200: SubscriptionWithSecret},
        errors=(401, 404),
    ),
    Operation(
        "post",
        "/v1/subscriptions/{subscription_id}/test",
        "Send a signed webhook.test now",
        {200: TestDelivery},
        errors=(401, 404),
    ),
    Operation(
        "post",
        "/v1/hooks",
        "Subscribe a REST hook (the Zapier convention)",
        {201: CreatedHook},
        body=CreateHook,
        errors=(400, 401, 413, 422),
    ),
    Operation(
        "get",
        "/v1/hooks",
        "List REST hooks",
        {200: ListOf[HookOut]},
        query=(
            _query(
                "target_url",
                {"type": "string", "pattern": NO_NUL},
                "only those sending to exactly this URL",
            ),
            LIMIT,
            _after("hook"),
        ),
        errors=(401, 404, 422),
    ),
    Operation(
        "get", "/v1/hooks/{hook_id}", "Retrieve a REST hook", {200: HookOut}, errors=(401, 404)
    ),
    Operation(
        "delete",
        "/v1/hooks/{hook_id}",
        "Unsubscribe a REST hook",
        {200: Deleted},
        errors=(401, 404),
    ),
    Operation(
        "get",
        "/v1/events",
        "List events, newest first",
        {200: ListOf[EventOut]},
        query=(
            _query("type", {"type": "string", "enum": list(EVENT_TYPES)}, "only this type"),
            SINCE,
            LIMIT,
            _after("event"),
        ),
        errors=(401, 404, 422),
    ),
    Operation(
        "get",
        "/v1/events/sample",
        "A made-up event of a type, for sample data before any event exists",
        {200: EventOut},
        query=(
            _query(
                "type",
                {"type": "string", "enum": list(EVENT_TYPES)},
                f"the event type (default {EVENT_TYPES[0]})",
            ),
        ),
        errors=(401, 422),
    ),
    Operation(
        "get", "/v1/events/{event_id}", "Retrieve an event", {200: EventOut}, errors=(401, 404)
    ),
    Operation(
        "get",
        "/v1/events/{event_id}/deliveries",
        "An event's deliveries with their attempts",
        {200: ListOf[DeliveryOut]},
        query=(LIMIT, _after("delivery")),
        errors=(401, 404, 422),
    ),
    Operation(
        "post",
        "/v1/events/{event_id}/redeliver",
        "Send an event again",
        {202: Queued},
        body=Redeliver,
        optional_body=True,
        errors=(400, 401, 404, 409, 413, 422),
    ),
    Operation(
        "get",
        "/v1/deliveries",
        "Find deliveries, newest first",
        {200: ListOf[DeliveryOut]},
        query=(
            DELIVERY_STATUS,
            _query(
                "subscription_id", {"type": "string", "pattern": NO_NUL}, "only this subscription's"
            ),
            SINCE,
            LIMIT,
            _after("delivery"),
        ),
        errors=(401, 404, 422),
    ),
    Operation(
        "get",
        "/v1/callback-secret",
        "The secrets signing callback deliveries",
        {200: CallbackSecretOut},
    ),
    Operation(
        "post",
        "/v1/callback-secret/rotate",
        "Rotate the callback secret",
        {200: CallbackSecretOut},
        errors=(401, 409),
    ),
    Operation(
        "post",
        "/hooks/{provider}/{token}",
        "Receive a provider's webhook (per-job callback)",
        {202: None, 200: None},
        errors=(400, 401, 404, 413),
        authenticated=False,
        raw_body=True,
    ),
    Operation(
        "post",
        "/hooks/{provider}",
        "Receive a provider's account-level webhook",
        {202: None, 200: None},
        errors=(400, 401, 404, 413),
        authenticated=False,
        raw_body=True,
    ),
    Operation("get", "/healthz", "Liveness", {200: None}, errors=(), authenticated=False),
    Operation(
        "get",
        "/readyz",
        "Readiness: the database is reachable",
        {200: None, 503: None},
        errors=(),
        authenticated=False,
    ),
)

_DESCRIPTIONS = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    307: "Redirect to the output",
    400: "Invalid JSON",
    401: "Unauthorized",
    404: "Not found",
    409: "Conflict",
    413: "Payload too large",
    422: "Invalid request",
    502: "The provider could not serve it",
    503: "Unavailable",
}


TAGS = (
    ("/v1/videos", "Videos", "Submit video jobs and follow them"),
    ("/v1/subscriptions", "Subscriptions", "Where events are delivered, and their operations"),
    ("/v1/hooks", "Hooks", "REST hooks (the Zapier convention), removed on a 410 answer"),
    ("/v1/events", "Events", "The one terminal event of each job, and samples"),
    ("/v1/deliveries", "Deliveries", "Every attempt to deliver an event, to find and replay"),
    ("/v1/callback-secret", "Callbacks", "The secret signing deliveries to per-job callback URLs"),
    ("/hooks/", "Provider receiver", "Where providers send their webhooks (no API key)"),
    ("/", "Health", "Liveness, readiness and metrics"),
)

WEBHOOK_HEADERS = (
    ("webhook-id", "the event id: the same on every retry and for every receiver", {}),
    ("webhook-timestamp", "Unix seconds of this attempt", {"pattern": "^[0-9]+$"}),
    (
        "webhook-signature",
        'v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">, several space-separated while a '
        "secret is rotating",
        {"pattern": "^v1,"},
    ),
)

WEBHOOKS = (
    ("video.completed", EventOut, "A job completed: its outputs are ready"),
    ("video.failed", EventOut, "A job failed, after every fallback model"),
    ("webhook.test", TestEventOut, "A test ping (POST /v1/subscriptions/{id}/test); not stored"),
)


@cache
def document(public_url: str | None = None) -> dict[str, Any]:
    """The OpenAPI document; with `public_url` (VIDEOHOOKS_PUBLIC_URL), it names the server."""
    models: list[tuple[type[BaseModel], Any]] = [
        (ErrorResponse, "serialization"),
        *((model, "serialization") for _, model, _ in WEBHOOKS),
    ]
    for operation in OPERATIONS:
        if operation.body is not None:
            models.append((operation.body, "validation"))
        models += [(model, "serialization") for model in operation.responses.values() if model]
    refs, definitions = models_json_schema(list(dict.fromkeys(models)), ref_template=REF)
    paths: dict[str, dict[str, Any]] = {}
    for operation in OPERATIONS:
        paths.setdefault(operation.path, {})[operation.method] = _operation(operation, refs)
    text = {"text/plain": {"schema": {"type": "string"}}}
    metrics = {
        "summary": "Prometheus metrics",
        "responses": {"200": {"description": "OK", "content": text}},
    }
    paths["/metrics"] = {"get": metrics | {"tags": [_tag("/metrics")]}}
    definitions.setdefault("$defs", {})["JsonValue"] = JSON_VALUE
    found: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "videohooks",
            "version": __version__,
            "description": DESCRIPTION,
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "tags": [{"name": name, "description": text} for _, name, text in TAGS],
        "paths": paths,
        "webhooks": {
            name: {"post": _webhook(name, model, summary, refs)}
            for name, model, summary in WEBHOOKS
        },
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
    if public_url:
        found["servers"] = [{"url": public_url}]
    return found


DESCRIPTION = (
    "Signed webhooks for AI video generation: submit a job to any provider, get exactly one "
    "`video.completed` or `video.failed` event, delivered with Standard Webhooks signatures. "
    "Every `/v1` route takes `Authorization: Bearer <API key>`. The events this service sends "
    "are under `webhooks`; docs/receiving.md shows how to verify them."
)


def _tag(path: str) -> str:
    return next(name for prefix, name, _ in TAGS if path.startswith(prefix))


def _webhook(
    name: str, model: type[BaseModel], summary: str, refs: dict[Any, Any]
) -> dict[str, Any]:
    schema = refs[(model, "serialization")]
    if model is EventOut:
        # This type only, on the shared Event schema.
        schema = {"allOf": [schema, {"properties": {"type": {"const": name}}}]}
    return {
        "summary": summary,
        "tags": ["Events"],
        "parameters": [
            {
                "name": header,
                "in": "header",
                "required": True,
                "description": description,
                "schema": {"type": "string"} | extra,
            }
            for header, description, extra in WEBHOOK_HEADERS
        ],
        "requestBody": {"required": True, "content": {"application/json": {"schema": schema}}},
        "responses": {
            "200": {"description": "Any 2xx within the timeout: delivered"},
            "410": {"description": "Gone: a subscription is disabled, a hook removed"},
            "default": {"description": "Anything else, redirects included: retried on schedule"},
        },
    }


def _operation(operation: Operation, refs: dict[Any, Any]) -> dict[str, Any]:
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _path_names(operation.path)
    ]
    parameters += list(operation.query) + list(operation.headers)
    result: dict[str, Any] = {
        "operationId": operation_id(operation.method, operation.path),
        "summary": operation.summary,
        "tags": [_tag(operation.path)],
        "parameters": parameters,
    }
    result["responses"] = {
        str(status): _response(operation, status, model, refs)
        for status, model in operation.responses.items()
    }
    if operation.links:
        success = str(min(operation.responses))
        result["responses"][success]["links"] = {
            name: {"operationId": operation_id(method, path), "parameters": parameters}
            for name, method, path, parameters in operation.links
        }
    error = {"application/json": {"schema": refs[(ErrorResponse, "serialization")]}}
    for status in operation.errors:
        result["responses"][str(status)] = {"description": _DESCRIPTIONS[status], "content": error}
    if operation.body is not None:
        schema = refs[(operation.body, "validation")]
        result["requestBody"] = {
            "required": not operation.optional_body,
            "content": {"application/json": {"schema": schema}},
        }
    elif operation.raw_body:
        binary = {"schema": {"type": "string", "format": "binary"}}
        result["requestBody"] = {"required": False, "content": {"application/octet-stream": binary}}
    if operation.authenticated:
        result["security"] = [{"bearer": []}]
    return result


def _response(
    operation: Operation, status: int, model: type[BaseModel] | None, refs: dict[Any, Any]
) -> dict[str, Any]:
    response: dict[str, Any] = {"description": _DESCRIPTIONS[status]}
    headers = {
        name: {"description": text, "schema": {"type": "string"}}
        for code, name, text in operation.response_headers
        if code == status
    }
    if headers:
        response["headers"] = headers
    if status == 307:
        return response  # a redirect has no body to describe
    if operation.binary:
        response["content"] = {"*/*": {"schema": {"type": "string", "format": "binary"}}}
    else:
        schema = refs[(model, "serialization")] if model is not None else {"type": "object"}
        response["content"] = {"application/json": {"schema": schema}}
    return response


def operation_id(method: str, path: str) -> str:
    return method + re.sub("[^A-Za-z0-9]+", "_", path).rstrip("_")


def query_names(method: str, path: str) -> frozenset[str]:
    """The query parameters an operation declares (none for an undocumented one)."""
    for operation in OPERATIONS:
        if (operation.method, operation.path) == (method, path):
            return frozenset(parameter["name"] for parameter in operation.query)
    return frozenset()


def _path_names(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


async def openapi(request: Request) -> Response:
    return JSONResponse(document(context(request).settings.public_url))
