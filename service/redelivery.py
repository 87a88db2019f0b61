"""Sending an event again now: the one operation behind POST /v1/events/{id}/redeliver and
`videohooks redeliver`, so that both refuse the same things for the same reasons."""

from __future__ import annotations

from storage import Store


class RedeliveryRefused(Exception):
    """The event, or the subscription asked for, cannot take a redelivery; `field` names which,
    and `missing` tells whether it does not exist (else it is disabled)."""

    def __init__(self, field: str, message: str, missing: bool = True) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.missing = missing


async def redeliver(store: Store, event_id: str, subscription_id: str | None, now: float) -> int:
    """Queues the event for every target it had, or for one subscription or hook (which need
    not have had a delivery of it); the number of deliveries queued."""
    if await store.get_event(event_id) is None:
        raise RedeliveryRefused("event_id", "no such event")
    if subscription_id is not None:
        subscription = await store.get_subscription(subscription_id)
        if subscription is None:
            raise RedeliveryRefused("subscription_id", "no such subscription")
        if subscription.status != "active":
            message = "the subscription is disabled; enable it first"
            raise RedeliveryRefused("subscription_id", message, missing=False)
    return await store.redeliver(event_id, subscription_id, now)
