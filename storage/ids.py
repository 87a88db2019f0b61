"""Object ids: a prefix naming the kind, then a sortable unique part."""

from __future__ import annotations

import secrets
import time

_ALPHABET = "0123456789abcdefghijklmnopqrstuv"


def new_id(prefix: str) -> str:
    """`prefix_` + 26 base32hex digits of 48-bit millisecond time and 80 random bits (a ULID
    layout), so ids sort by creation time and never collide in practice."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(secrets.token_bytes(10), "big")
    digits = []
    for _ in range(26):
        value, digit = divmod(value, 32)
        digits.append(_ALPHABET[digit])
    return f"{prefix}_{''.join(reversed(digits))}"
