"""/v1/events: the one terminal event of each job, newest first; its deliveries; redelivery; a
sample of each type."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service import redelivery
from service.api import deliveries as delivery_views
from service.api.common import (
    after_param,
    choice_param,
    context,
    json_response,
    limit_param,
    list_response,
    read_json,
    validate,
)
from service.errors import NotFound, SubscriptionDisabled
from service.jobs import sample_event
from service.models import EVENT_TYPES, Queued, Redeliver
from storage.records import Event


async def list_(request: Request) -> Response:
    store = context(request).store
    event_type = choice_param(request, "type", EVENT_TYPES)
    after = await after_param(request, store.get_event, "event")
    since = delivery_views.since_param(request)
    page = await store.list_events(event_type, limit_param(request), after, since)
    return list_response(page.items, page.has_more, lambda e: e.payload, lambda e: e.id)


async def sample(request: Request) -> Response:
    """A realistic event of a type, made up: for platforms that want sample data before any
    event exists. It is not stored and appears in no list."""
    event_type = choice_param(request, "type", EVENT_TYPES) or EVENT_TYPES[0]
    public_url = context(request).settings.public_url
    return JSONResponse(sample_event(event_type, public_url))


async def retrieve(request: Request) -> Response:
    event = await _get(request)
    return Response(event.payload, media_type="application/json")


async def deliveries(request: Request) -> Response:
    event = await _get(request)
    store = context(request).store
    page = await store.list_deliveries(
        event_id=event.id,
        limit=limit_param(request),
        after=await after_param(request, store.get_delivery, "delivery"),
    )
    return await delivery_views.render(store, page)


async def redeliver(request: Request) -> Response:
    """Sends the event again: to every target, or to one subscription or hook."""
    event = await _get(request)
    body = validate(Redeliver, await read_json(request, empty_is={}))
    store = context(request).store
    try:
        queued = await redelivery.redeliver(store, event.id, body.subscription_id, time.time())
    except redelivery.RedeliveryRefused as exc:
        # A missing event was removed by retention meanwhile.
        raise (NotFound if exc.missing else SubscriptionDisabled)(exc.message) from None
    return json_response(Queued(queued=queued), 202)


async def _get(request: Request) -> Event:
    event = await context(request).store.get_event(request.path_params["event_id"])
    if event is None:
        raise NotFound("no such event")
    return event
