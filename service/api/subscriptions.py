"""/v1/subscriptions: where events are delivered, and the operations on a subscription: its
deliveries, recovering what it missed, rotating its secret, a test ping."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response

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
from service.errors import InvalidRequest, NotFound, SubscriptionDisabled
from service.models import (
    AttemptOut,
    CreateSubscription,
    Deleted,
    Queued,
    Recover,
    SubscriptionOut,
    SubscriptionSecretOut,
    SubscriptionWithSecret,
    TestDelivery,
    TestEventData,
    TestEventOut,
    UpdateSubscription,
)
from service.signing import new_secret
from service.urls import UrlRejected
from storage.ids import new_id
from storage.records import DELIVERY_STATUSES, Subscription

# Deliveries re-queued by one recover call; call again while has_more is true.
RECOVER_LIMIT = 10_000


async def create(request: Request) -> Response:
    ctx = context(request)
    body = validate(CreateSubscription, await read_json(request))
    await _check_url(request, body.url)
    now = time.time()
    subscription = Subscription(
        id=new_id("sub"),
        secret=new_secret(),
        status="active",
        created_at=now,
        updated_at=now,
        **body.model_dump(),
    )
    await ctx.store.create_subscription(subscription)
    return json_response(SubscriptionWithSecret.from_record(subscription), 201)


async def retrieve(request: Request) -> Response:
    return json_response(SubscriptionOut.from_record(await _get(request)))


async def secret(request: Request) -> Response:
    """The secret on its own route, so that lists and plain reads never carry it."""
    return json_response(SubscriptionSecretOut.from_record(await _get(request)))


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
    subscription = await _get(request)
    changes = body.model_dump(exclude_unset=True)
    if "url" in changes:
        await _check_url(request, changes["url"])
    if not changes:
        return json_response(SubscriptionOut.from_record(subscription))
    updated = await context(request).store.update_subscription(
        subscription.id, changes, time.time()
    )
    if updated is None:
        raise NotFound("no such subscription")
    return json_response(SubscriptionOut.from_record(updated))


async def delete(request: Request) -> Response:
    subscription = await _get(request)
    if not await context(request).store.delete_subscription(subscription.id, time.time()):
        raise NotFound("no such subscription")
    return json_response(Deleted(id=subscription.id, object="subscription"))


async def deliveries(request: Request) -> Response:
    subscription = await _get(request)
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
    """Queues again the failed and skipped deliveries created in [since, until) - what a
    subscriber missed while it was down or disabled. Bounded (RECOVER_LIMIT a call; call again
    while has_more) and idempotent (what is already queued is not queued twice)."""
    body = validate(Recover, await read_json(request))
    subscription = await _get(request)
    if subscription.status != "active":
        raise SubscriptionDisabled("the subscription is disabled; enable it first")
    now = time.time()
    until = now if body.until is None else float(body.until)
    store = context(request).store
    if body.since >= until:  # an empty period: nothing to recover
        return json_response(Queued(queued=0), 202)
    queued = await store.recover(subscription.id, float(body.since), until, now, RECOVER_LIMIT)
    return json_response(Queued(queued=queued, has_more=queued == RECOVER_LIMIT), 202)


async def rotate_secret(request: Request) -> Response:
    """A new whsec_ secret; deliveries carry signatures by both until the grace period ends."""
    ctx = context(request)
    subscription = await _get(request)
    now = time.time()
    rotated = await ctx.store.rotate_secret(
        subscription.id, new_secret(), now + ctx.settings.secret_grace, now
    )
    if rotated is None:
        raise NotFound("no such subscription")
    return json_response(SubscriptionWithSecret.from_record(rotated))


async def test(request: Request) -> Response:
    """Sends a signed `webhook.test` event now and answers with the attempt's result. It is not a
    video event: it is not stored and appears in no list."""
    ctx = context(request)
    subscription = await _get(request)
    now = time.time()
    event = TestEventOut(
        id=new_id("evt"),
        created_at=int(now),
        data=TestEventData(
            subscription_id=subscription.id, message="a test delivery from videohooks"
        ),
    )
    secrets = [subscription.secret]
    if subscription.previous_secret and (subscription.previous_secret_expires_at or 0) > now:
        secrets.append(subscription.previous_secret)
    outcome = await ctx.sender.attempt(subscription.url, event.id, event.model_dump_json(), secrets)
    attempt = AttemptOut(
        attempted_at=int(now),
        status_code=outcome.status_code,
        duration_ms=outcome.duration_ms,
        error=outcome.error,
        error_class=outcome.error_class,
        response_body=outcome.response_body,
    )
    return json_response(TestDelivery(succeeded=outcome.succeeded, event=event, attempt=attempt))


async def _get(request: Request) -> Subscription:
    subscription = await _find(request, request.path_params["subscription_id"])
    if subscription is None:
        raise NotFound("no such subscription")
    return subscription


async def _find(request: Request, subscription_id: str) -> Subscription | None:
    """The subscription; hooks share its table but not its endpoints (see /v1/hooks)."""
    found = await context(request).store.get_subscription(subscription_id)
    return found if found is not None and found.kind == "subscription" else None


async def _check_url(request: Request, url: str) -> None:
    try:
        await context(request).url_policy.check(url)
    except UrlRejected as exc:
        raise InvalidRequest.field("url", str(exc)) from None
