"""Webhook signature schemes shared by several providers."""

from __future__ import annotations

from collections.abc import Mapping

from standardwebhooks import Webhook, WebhookVerificationError

from handlers.base import WebhookRejected


def verify_standard_webhook(secret: str | None, headers: Mapping[str, str], body: bytes) -> bool:
    """Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature; 5-minute tolerance),
    verified by the `standardwebhooks` package. False when no secret is configured (the body is
    then only a reason to re-fetch); raises WebhookRejected when the signature does not verify."""
    if not secret:
        return False
    try:
        Webhook(secret).verify(body, {key.lower(): value for key, value in headers.items()})
    except (WebhookVerificationError, ValueError) as exc:
        raise WebhookRejected(f"webhook signature: {exc}") from None
    return True
