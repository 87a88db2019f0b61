"""Webhooks signed as providers sign them, by the `standardwebhooks` package: independent of the
verifier under test."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

from standardwebhooks import Webhook


def signed(
    secret: str, body: dict, msg_id: str = "msg_test", at: float | None = None
) -> tuple[bytes, dict]:
    """A webhook signed by the `standardwebhooks` package, as the simulator would send it."""
    raw = json.dumps(body)
    when = datetime.fromtimestamp(at or time.time(), UTC)
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, when, raw),
        "content-type": "application/json",
    }
    return raw.encode(), headers
