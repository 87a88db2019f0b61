"""Ids are written two digits per lookup (storage/ids.py): the same digits as one by one."""

from __future__ import annotations

import re

from storage.ids import digits, new_id

ALPHABET = "0123456789abcdefghijklmnopqrstuv"


def one_by_one(value: int) -> str:
    written = ""
    for _ in range(26):
        value, digit = divmod(value, 32)
        written = ALPHABET[digit] + written
    return written


def test_an_id_is_its_value_in_base32hex_digits() -> None:
    for value in (
        0,
        1,
        31,
        32,
        1023,
        1024,
        2**80 - 1,
        (1_764_000_000_000 << 80) | 12345,
        2**128 - 1,
    ):
        assert digits(value) == one_by_one(value)


def test_an_id_is_its_prefix_and_26_digits() -> None:
    assert re.fullmatch(r"dlv_[0-9a-v]{26}", new_id("dlv"))
