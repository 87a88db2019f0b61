"""The one JSON reader for everything videohooks parses from outside: API request bodies, provider
webhooks and provider answers.

It reads JSON as RFC 8259 has it, within limits every later step can live with:

    JsonError (ValueError)        not JSON at all: bad syntax, or not UTF-8
    JsonLimitError (ValueError)   JSON, but a value nothing downstream can hold: NaN or Infinity
                                  (which Python's json module accepts though JSON has neither), a
                                  number (integers too) beyond the range of a double, U+0000
                                  (PostgreSQL stores none), a lone surrogate (it cannot be encoded
                                  again), nesting deeper than MAX_DEPTH; `where` is the value's
                                  dotted path

The standard library parses (no third-party parser has these limits built in); the limits are
checked in one walk over the result, since json's hooks cannot see where a value sits.
"""

from __future__ import annotations

import json
import math
import re
import sys
from typing import Any

MAX_DEPTH = 64
MAX_NUMBER = sys.float_info.max
# Digits of the largest integer within MAX_NUMBER: longer ones are refused unread (Python's int()
# refuses 4300 digits and takes quadratic time on the way).
_MAX_DIGITS = len(str(int(MAX_NUMBER)))
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class JsonError(ValueError):
    pass


class JsonLimitError(ValueError):
    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where
        self.message = message


class _Refused:
    """Stands in for a value the limits refuse until the walk finds where it is."""

    def __init__(self, message: str) -> None:
        self.message = message


def _integer(text: str) -> int | _Refused:
    if len(text.lstrip("-")) > _MAX_DIGITS or abs(value := int(text)) > MAX_NUMBER:
        return _Refused("is a number beyond the range of a double")
    return value


def _number(text: str) -> float | _Refused:
    value = float(text)
    return value if math.isfinite(value) else _Refused("is a number beyond the range of a double")


def _constant(name: str) -> _Refused:
    return _Refused(f"is {name}, which JSON does not have")


def loads(data: bytes | str) -> Any:
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JsonError(f"is not UTF-8 (invalid byte at position {exc.start})") from None
    try:
        value = json.loads(data, parse_int=_integer, parse_float=_number, parse_constant=_constant)
    except json.JSONDecodeError as exc:
        raise JsonError(f"is not valid JSON: {exc.msg} at position {exc.pos}") from None
    except RecursionError:
        raise JsonLimitError("body", f"nests deeper than {MAX_DEPTH} levels") from None
    _check(value)
    return value


def _check(root: Any) -> None:
    stack: list[tuple[Any, tuple[str, ...]]] = [(root, ())]
    while stack:
        value, path = stack.pop()
        if len(path) > MAX_DEPTH:
            raise JsonLimitError(_where(path), f"nests deeper than {MAX_DEPTH} levels")
        if isinstance(value, _Refused):
            raise JsonLimitError(_where(path), value.message)
        if isinstance(value, str):
            _check_text(value, path)
        elif isinstance(value, dict):
            for key, item in value.items():
                _check_text(key, path)
                stack.append((item, (*path, key)))
        elif isinstance(value, list):
            stack.extend((item, (*path, str(index))) for index, item in enumerate(value))


def _check_text(text: str, path: tuple[str, ...]) -> None:
    if found := _UNSTORABLE.search(text):
        what = "U+0000" if found.group() == "\x00" else "a lone surrogate"
        raise JsonLimitError(_where(path), f"holds {what}, which no string here may hold")


def _where(path: tuple[str, ...]) -> str:
    return ".".join(path) or "body"
