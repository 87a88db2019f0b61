"""The operations the API and the dashboard share: each checks its input by the same rules and
changes the store the same way, whichever of the two asked. Errors are ApiErrors; the API renders
them as JSON, the dashboard shows their message beside the form."""

from __future__ import annotations

import time

from service.context import Context
from service.errors import InvalidRequest
from storage.records import Event


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
