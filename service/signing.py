"""Standard Webhooks signatures for outgoing deliveries.

The scheme is the `standardwebhooks` package's, and the tests verify every delivery with it. The
hot path signs by hand: `Webhook.sign` takes the body as text and a datetime, so per signature it
converts the timestamp, copies and encodes the whole body once more, and sets up the HMAC key
again. Here a secret's keyed HMAC is set up once and copied for each signature, the body is
bytes encoded once per event, and the timestamp is the integer the header carries.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from functools import lru_cache

from service import __version__

SECRET_PREFIX = "whsec_"
USER_AGENT = f"videohooks/{__version__}"


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


@lru_cache(maxsize=4096)
def _keyed(secret: str) -> hmac.HMAC:
    # Read as the package reads a secret: without its prefix, padding optional.
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX) + "==")
    if not key:
        raise ValueError("webhook secret may not be empty")
    return hmac.new(key, digestmod=hashlib.sha256)


def signature_header(secrets_: list[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<sig>` for each secret, space-separated (several while a secret is rotating)."""
    prefix = f"{msg_id}.{timestamp}.".encode()
    signatures = []
    for secret in secrets_:
        mac = _keyed(secret).copy()
        mac.update(prefix)
        mac.update(body)
        signatures.append("v1," + base64.b64encode(mac.digest()).decode())
    return " ".join(signatures)


def headers(secrets_: list[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(secrets_, msg_id, timestamp, body),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }
