"""/v1/events: the one terminal event of each job, newest first; its deliveries; redelivery."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response

from service.api import deliveries as delivery_views
from service.api.common import (
    choice_param,
    context,
    json_response,
    limit_param,
    list_response,
    read_json,
    validate,
)
from service.errors import NotFound, SubscriptionDisabled
from service.models import EVENT_TYPES, Queued, Redeliver
from storage.records import Event


async def list_(request: Request) -> Response:
    store = context(request).store
    event_type = choice_param(request, "type", EVENT_TYPES)
    after = request.query_params.get("after")
    if after is not None and await store.get_event(after) is None:
        raise NotFound("the after cursor names no event")
    page = await store.list_events(event_type, limit_param(request), after)
    return list_response(page.items, page.has_more, lambda e: e.payload, lambda e: e.id)


async def retrieve(request: Request) -> Response:
    event = await _get(request)
    return Response(event.payload, media_type="application/json")


async def deliveries(request: Request) -> Response:
    event = await _get(request)
    store = context(request).store
    page = await store.list_deliveries(
        event_id=event.id,
        limit=limit_param(request),
        after=await delivery_views.after_param(request),
    )
    return await delivery_views.render(store, page)


async def redeliver(request: Request) -> Response:
    """Sends the event again: to every target, or to one subscription (which need not have had
    a delivery of it before)."""
    event = await _get(request)
    body = validate(Redeliver, await read_json(request, empty_is={}))
    store = context(request).store
    if body.subscription_id is not None:
        subscription = await store.get_subscription(body.subscription_id)
        if subscription is None:
            raise NotFound("no such subscription")
        if subscription.status != "active":
            raise SubscriptionDisabled("the subscription is disabled; enable it first")
    queued = await store.redeliver(event.id, body.subscription_id, time.time())
    return json_response(Queued(queued=queued), 202)


async def _get(request: Request) -> Event:
    event = await context(request).store.get_event(request.path_params["event_id"])
    if event is None:
        raise NotFound("no such event")
    return event
