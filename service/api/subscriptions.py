"""/v1/subscriptions: where events are delivered, and the operations on a subscription: its
deliveries, recovering what it missed, rotating its secret, a test ping. The operations
themselves are service/operations.py's, shared with the dashboard. Hooks share the table but not
these endpoints (see /v1/hooks)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from service import operations
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
from service.errors import NotFound
from service.models import (
    CreateSubscription,
    Deleted,
    Recover,
    SubscriptionOut,
    SubscriptionSecretOut,
    SubscriptionWithSecret,
    UpdateSubscription,
)
from storage.records import DELIVERY_STATUSES, Subscription


async def create(request: Request) -> Response:
    body = validate(CreateSubscription, await read_json(request))
    created = await operations.create_subscription(context(request), body)
    return json_response(SubscriptionWithSecret.from_record(created), 201)


async def retrieve(request: Request) -> Response:
    found = await operations.subscription(context(request), _id(request))
    return json_response(SubscriptionOut.from_record(found))


async def secret(request: Request) -> Response:
    """The secret on its own route, so that lists and plain reads never carry it."""
    found = await operations.subscription(context(request), _id(request))
    return json_response(SubscriptionSecretOut.from_record(found))


async def list_(request: Request) -> Response:
    store = context(request).store
    after = await after_param(request, lambda id_: _find(request, id_), "subscription")
    page = await store.list_subscriptions(
        limit_param(request), after, url=request.query_params.get("url")
    )
    return list_response(
        page.items,
        page.has_more,
        lambda subscription: SubscriptionOut.from_record(subscription).model_dump_json(),
        lambda subscription: subscription.id,
    )


async def update(request: Request) -> Response:
    body = validate(UpdateSubscription, await read_json(request))
    updated = await operations.update_subscription(context(request), _id(request), body)
    return json_response(SubscriptionOut.from_record(updated))


async def delete(request: Request) -> Response:
    await operations.delete_subscription(context(request), _id(request))
    return json_response(Deleted(id=_id(request), object="subscription"))


async def deliveries(request: Request) -> Response:
    subscription = await operations.subscription(context(request), _id(request))
    store = context(request).store
    page = await store.list_deliveries(
        status=choice_param(request, "status", DELIVERY_STATUSES),
        subscription_id=subscription.id,
        since=delivery_views.since_param(request),
        limit=limit_param(request),
        after=await after_param(request, store.get_delivery, "delivery"),
    )
    return await delivery_views.render(store, page)


async def recover(request: Request) -> Response:
    """Queues again the failed and skipped deliveries created in [since, until)."""
    body = validate(Recover, await read_json(request))
    queued = await operations.recover(context(request), _id(request), body)
    return json_response(queued, 202)


async def rotate_secret(request: Request) -> Response:
    rotated = await operations.rotate_secret(context(request), _id(request))
    return json_response(SubscriptionWithSecret.from_record(rotated))


async def test(request: Request) -> Response:
    return json_response(await operations.send_test(context(request), _id(request)))


def _id(request: Request) -> str:
    return str(request.path_params["subscription_id"])


async def _find(request: Request, subscription_id: str) -> Subscription | None:
    """The subscription; hooks share its table but not its endpoints (see /v1/hooks)."""
    try:
        return await operations.subscription(context(request), subscription_id)
    except NotFound:
        return None
