"""/v1/hooks: REST hooks, the convention Zapier (and n8n) triggers use: subscribe a target URL
to one event type (or `*`), get an id, unsubscribe by id. A hook is a subscription row of kind
"hook", delivered by the same outbox and dispatcher; a target answering 410 Gone removes it."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response

from service import operations
from service.api.common import (
    after_param,
    context,
    json_response,
    limit_param,
    list_response,
    read_json,
    validate,
)
from service.errors import NotFound
from service.models import CreatedHook, CreateHook, Deleted, HookOut
from storage.records import Subscription

KIND = operations.HOOK


async def create(request: Request) -> Response:
    body = validate(CreateHook, await read_json(request))
    hook = await operations.create_hook(context(request), body)
    created = CreatedHook(**HookOut.from_record(hook).model_dump(), secret=hook.secret)
    return json_response(created, 201, headers={"location": f"/v1/hooks/{hook.id}"})


async def list_(request: Request) -> Response:
    store = context(request).store
    after = await after_param(request, lambda id_: _find(request, id_), "hook")
    page = await store.list_subscriptions(
        limit_param(request), after, kind=KIND, url=request.query_params.get("target_url")
    )
    return list_response(
        page.items,
        page.has_more,
        lambda hook: HookOut.from_record(hook).model_dump_json(),
        lambda hook: hook.id,
    )


async def retrieve(request: Request) -> Response:
    return json_response(HookOut.from_record(await _get(request)))


async def delete(request: Request) -> Response:
    """Unsubscribes: the hook and the deliveries it still had waiting are gone."""
    hook = await _get(request)
    if not await context(request).store.delete_subscription(hook.id, time.time()):
        raise NotFound("no such hook")
    return json_response(Deleted(id=hook.id, object="hook"))


async def _get(request: Request) -> Subscription:
    hook = await _find(request, request.path_params["hook_id"])
    if hook is None:
        raise NotFound("no such hook")
    return hook


async def _find(request: Request, hook_id: str) -> Subscription | None:
    found = await context(request).store.get_subscription(hook_id)
    return found if found is not None and found.kind == KIND else None
