"""The operations the API and the dashboard share: each checks its input by the same rules and
changes the store the same way, whichever of the two asked. Errors are ApiErrors; the API renders
them as JSON, the dashboard shows their message beside the form."""

from __future__ import annotations

import json
import time

from service.context import Context
from service.errors import InvalidRequest, NotFound
from service.models import (
    AttemptOut,
    CreateSubscription,
    Queued,
    Recover,
    TestDelivery,
    UpdateSubscription,
)
from service.signing import new_secret
from service.urls import UrlRejected
from storage.ids import new_id
from storage.records import Event, Subscription

# Deliveries re-queued by one recover call; call again while has_more is true.
RECOVER_LIMIT = 10_000


async def redeliver(ctx: Context, event: Event, subscription_id: str | None) -> int:
    """Sends the event again: to every target, or to one subscription (which need not have had a
    delivery of it before); the number of deliveries queued."""
    if subscription_id is not None:
        subscription = await ctx.store.get_subscription(subscription_id)
        if subscription is None:
            raise InvalidRequest.field("subscription_id", "no such subscription")
        if subscription.status != "active":
            raise InvalidRequest.field("subscription_id", "the subscription is disabled")
    return await ctx.store.redeliver(event.id, subscription_id, time.time())


async def subscription(ctx: Context, subscription_id: str) -> Subscription:
    found = await ctx.store.get_subscription(subscription_id)
    if found is None:
        raise NotFound("no such subscription")
    return found


async def create_subscription(ctx: Context, body: CreateSubscription) -> Subscription:
    await check_url(ctx, body.url)
    now = time.time()
    created = Subscription(
        id=new_id("sub"),
        secret=new_secret(),
        status="active",
        created_at=now,
        updated_at=now,
        **body.model_dump(),
    )
    await ctx.store.create_subscription(created)
    return created


async def update_subscription(
    ctx: Context, subscription_id: str, body: UpdateSubscription
) -> Subscription:
    current = await subscription(ctx, subscription_id)
    changes = body.model_dump(exclude_unset=True)
    if "url" in changes:
        await check_url(ctx, changes["url"])
    if not changes:
        return current
    updated = await ctx.store.update_subscription(current.id, changes, time.time())
    if updated is None:
        raise NotFound("no such subscription")
    return updated


async def recover(ctx: Context, subscription_id: str, body: Recover) -> Queued:
    """Queues again the failed and skipped deliveries created in [since, until) - what a
    subscriber missed while it was down or disabled. Bounded (RECOVER_LIMIT a call; call again
    while has_more) and idempotent (what is already queued is not queued twice)."""
    current = await subscription(ctx, subscription_id)
    if current.status != "active":
        raise InvalidRequest.field("status", "the subscription is disabled; enable it first")
    now = time.time()
    until = now if body.until is None else float(body.until)
    if body.since >= until:
        raise InvalidRequest.field("since", "must be before until")
    queued = await ctx.store.recover(current.id, float(body.since), until, now, RECOVER_LIMIT)
    return Queued(queued=queued, has_more=queued == RECOVER_LIMIT)


async def rotate_secret(ctx: Context, subscription_id: str) -> Subscription:
    """A new whsec_ secret; deliveries carry signatures by both until the grace period ends."""
    current = await subscription(ctx, subscription_id)
    now = time.time()
    rotated = await ctx.store.rotate_secret(
        current.id, new_secret(), now + ctx.settings.secret_grace, now
    )
    if rotated is None:
        raise NotFound("no such subscription")
    return rotated


async def send_test(ctx: Context, subscription_id: str) -> TestDelivery:
    """Sends a signed `webhook.test` event now; the attempt's result. It is not a video event: it
    is not stored and appears in no list."""
    current = await subscription(ctx, subscription_id)
    now = time.time()
    event = {
        "id": new_id("evt"),
        "object": "event",
        "type": "webhook.test",
        "created_at": int(now),
        "data": {"subscription_id": current.id, "message": "a test delivery from videohooks"},
    }
    secrets = [current.secret]
    if current.previous_secret and (current.previous_secret_expires_at or 0) > now:
        secrets.append(current.previous_secret)
    outcome = await ctx.sender.attempt(
        current.url, event["id"], json.dumps(event, separators=(",", ":")), secrets
    )
    attempt = AttemptOut(
        attempted_at=int(now),
        status_code=outcome.status_code,
        duration_ms=outcome.duration_ms,
        error=outcome.error,
        error_class=outcome.error_class,
        response_body=outcome.response_body,
    )
    return TestDelivery(succeeded=outcome.succeeded, event=event, attempt=attempt)


async def delete_subscription(ctx: Context, subscription_id: str) -> None:
    if not await ctx.store.delete_subscription(subscription_id, time.time()):
        raise NotFound("no such subscription")


async def check_url(ctx: Context, url: str) -> None:
    try:
        await ctx.url_policy.check(url)
    except UrlRejected as exc:
        raise InvalidRequest.field("url", str(exc)) from None
