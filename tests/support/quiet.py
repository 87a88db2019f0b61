"""Proofs that nothing more will happen, for tests that check something did not: read from the
database the service works from, instead of sleeping and hoping the worker has had its turn."""

from __future__ import annotations

from typing import Any

from storage.base import Store


async def deliveries_settled(svc: Any) -> bool:
    """No delivery is waiting to be sent or retried: every attempt the worker will ever make
    unprompted has been made and recorded."""
    return (await svc.store.delivery_stats()).pending == 0


async def stored_webhooks(store: Store) -> int:
    """Provider webhooks the receiver accepted into the worker's inbox (processed or not): a
    refused one is never stored, so the worker can never act on it."""
    rows = await store._read("SELECT count(*) AS n FROM inbound_webhooks", {})  # type: ignore[attr-defined]
    return int(rows[0]["n"])


async def webhooks_processed(store: Store) -> bool:
    """Every webhook in the inbox has been applied (or found stale) by the worker."""
    query = "SELECT count(*) AS n FROM inbound_webhooks WHERE processed_at IS NULL"
    rows = await store._read(query, {})  # type: ignore[attr-defined]
    return int(rows[0]["n"]) == 0
