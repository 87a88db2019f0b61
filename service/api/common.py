"""What every endpoint shares: the context, JSON bodies, query parameters and JSON responses."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from service.context import Context
from service.errors import InvalidJson, InvalidRequest

M = TypeVar("M", bound=BaseModel)
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
# PostgreSQL's text and jsonb cannot hold U+0000: refused at the door, not a 500 in the database.
NUL = "\x00"
NUL_REFUSED = "must not contain the NUL character (U+0000)"


def context(request: Request) -> Context:
    found: Context = request.app.state.context
    return found


async def read_json(request: Request, empty_is: dict[str, Any] | None = None) -> dict[str, Any]:
    """The body as a JSON object; an empty body is `empty_is` where the endpoint allows one."""
    body = await request.body()
    if not body.strip():
        if empty_is is not None:
            return empty_is
        raise InvalidJson("the request body is empty; send a JSON object")
    try:
        data = json.loads(body)
    except UnicodeDecodeError:
        raise InvalidJson("the request body is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise InvalidJson(
            f"the request body is not valid JSON: {exc.msg} at position {exc.pos}"
        ) from None
    if not isinstance(data, dict):
        raise InvalidRequest.field("body", "must be a JSON object")
    if (field := _nul_at(data)) is not None:
        raise InvalidRequest.field(field, NUL_REFUSED)
    return data


def _nul_at(data: dict[str, Any]) -> str | None:
    """The dot path of the first key or string holding a NUL; iterative, since bodies nest deep."""
    pending: list[tuple[str, Any]] = [("", data)]
    while pending:
        path, value = pending.pop()
        if isinstance(value, str) and NUL in value:
            return path or "body"
        if isinstance(value, dict | list):
            for key, item in value.items() if isinstance(value, dict) else enumerate(value):
                if NUL in str(key):
                    return path or "body"
                pending.append((f"{path}.{key}".lstrip("."), item))
    return None


def validate(model: type[M], data: dict[str, Any]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest.from_validation(exc) from None


def limit_param(request: Request) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return DEFAULT_LIMIT
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise InvalidRequest.field("limit", f"must be a whole number from 1 to {MAX_LIMIT}")
    return int(raw)


def choice_param(request: Request, name: str, choices: Sequence[str]) -> str | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if raw not in choices:
        raise InvalidRequest.field(name, f"must be one of {', '.join(choices)}")
    return raw


def json_response(
    model: BaseModel, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        model.model_dump_json(),
        status_code=status_code,
        media_type="application/json",
        headers=headers,
    )


def list_response(
    items: Sequence[Any], has_more: bool, render: Callable[[Any], str], cursor: Callable[[Any], str]
) -> Response:
    """A list page; items are rendered to JSON text one by one so stored JSON (event payloads)
    is sent exactly as stored."""
    next_cursor = cursor(items[-1]) if has_more and items else None
    body = (
        '{"object":"list","data":['
        + ",".join(render(item) for item in items)
        + f'],"has_more":{json.dumps(has_more)},"next_cursor":{json.dumps(next_cursor)}}}'
    )
    return Response(body, media_type="application/json")
