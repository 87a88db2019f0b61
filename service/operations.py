"""The operations the API and the dashboard share: each checks its input by the same rules and
changes the store the same way, whichever of the two asked. Errors are ApiErrors; the API renders
them as JSON, the dashboard shows their message beside the form."""

from __future__ import annotations

import time

from service.context import Context
from service.errors import InvalidRequest, NotFound, SubscriptionDisabled
from service.models import (
    AttemptOut,
    CreateHook,
    CreateSubscription,
    Queued,
    Recover,
    TestDelivery,
    TestEventData,
    TestEventOut,
    UpdateSubscription,
)
from service.signing import new_secret
from service.urls import UrlRejected
from storage.ids import new_id
from storage.records import Subscription

# Deliveries re-queued by one recover call; call again while has_more is true.
RECOVER_LIMIT = 10_000


# Each operation on a subscription names the kind it acts on: the API's /v1/subscriptions
# endpoints act on subscriptions only (hooks have /v1/hooks); the dashboard, on both (kind None).
SUBSCRIPTION = "subscription"
HOOK = "hook"


async def subscription(
    ctx: Context, subscription_id: str, kind: str | None = SUBSCRIPTION
) -> Subscription:
    found = await ctx.store.get_subscription(subscription_id)
    if found is None or (kind is not None and found.kind != kind):
        raise NotFound(f"no such {kind or 'subscription'}")
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


async def create_hook(ctx: Context, body: CreateHook) -> Subscription:
    """A REST hook: a subscription row of kind "hook" to one event type (or `*`)."""
    try:
        await ctx.url_policy.check(body.target_url)
    except UrlRejected as exc:
        raise InvalidRequest.field("target_url", str(exc)) from None
    now = time.time()
    hook = Subscription(
        id=new_id("hook"),
        kind=HOOK,
        url=body.target_url,
        events=[body.event],
        secret=new_secret(),
        created_at=now,
        updated_at=now,
    )
    await ctx.store.create_subscription(hook)
    return hook


async def update_subscription(
    ctx: Context, subscription_id: str, body: UpdateSubscription, kind: str | None = SUBSCRIPTION
) -> Subscription:
    current = await subscription(ctx, subscription_id, kind)
    changes = body.model_dump(exclude_unset=True)
    if "url" in changes:
        await check_url(ctx, changes["url"])
    if not changes:
        return current
    updated = await ctx.store.update_subscription(current.id, changes, time.time())
    if updated is None:
        raise NotFound("no such subscription")
    return updated


async def recover(
    ctx: Context, subscription_id: str, body: Recover, kind: str | None = SUBSCRIPTION
) -> Queued:
    """Queues again the failed and skipped deliveries created in [since, until) - what a
    subscriber missed while it was down or disabled. Bounded (RECOVER_LIMIT a call; call again
    while has_more) and idempotent (what is already queued is not queued twice)."""
    current = await subscription(ctx, subscription_id, kind)
    if current.status != "active":
        raise SubscriptionDisabled("the subscription is disabled; enable it first")
    now = time.time()
    until = now if body.until is None else float(body.until)
    if body.since >= until:  # an empty period: nothing to recover
        return Queued(queued=0)
    queued = await ctx.store.recover(current.id, float(body.since), until, now, RECOVER_LIMIT)
    return Queued(queued=queued, has_more=queued == RECOVER_LIMIT)


async def rotate_secret(
    ctx: Context, subscription_id: str, kind: str | None = SUBSCRIPTION
) -> Subscription:
    """A new whsec_ secret; deliveries carry signatures by both until the grace period ends."""
    current = await subscription(ctx, subscription_id, kind)
    now = time.time()
    rotated = await ctx.store.rotate_secret(
        current.id, new_secret(), now + ctx.settings.secret_grace, now
    )
    if rotated is None:
        raise NotFound("no such subscription")
    return rotated


async def send_test(
    ctx: Context, subscription_id: str, kind: str | None = SUBSCRIPTION
) -> TestDelivery:
    """Sends a signed `webhook.test` event now; the attempt's result. It is not a video event: it
    is not stored and appears in no list."""
    current = await subscription(ctx, subscription_id, kind)
    now = time.time()
    event = TestEventOut(
        id=new_id("evt"),
        created_at=int(now),
        data=TestEventData(subscription_id=current.id, message="a test delivery from videohooks"),
    )
    secrets = [current.secret]
    if current.previous_secret and (current.previous_secret_expires_at or 0) > now:
        secrets.append(current.previous_secret)
    body = event.model_dump_json().encode()
    outcome = await ctx.sender.attempt(current.url, event.id, body, secrets)
    attempt = AttemptOut(
        attempted_at=int(now),
        status_code=outcome.status_code,
        duration_ms=outcome.duration_ms,
        error=outcome.error,
        error_class=outcome.error_class,
        response_body=outcome.response_body,
    )
    return TestDelivery(succeeded=outcome.succeeded, event=event, attempt=attempt)


async def delete_subscription(
    ctx: Context, subscription_id: str, kind: str | None = SUBSCRIPTION
) -> None:
    current = await subscription(ctx, subscription_id, kind)
    if not await ctx.store.delete_subscription(current.id, time.time()):
        raise NotFound("no such subscription")


async def check_url(ctx: Context, url: str) -> None:
    try:
        await ctx.url_policy.check(url)
    except UrlRejected as exc:
        raise InvalidRequest.field("url", str(exc)) from None
