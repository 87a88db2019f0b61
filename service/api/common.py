"""What every endpoint shares: the context, JSON bodies, query parameters and JSON responses."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from handlers import strictjson
from service.context import Context
from service.errors import InvalidJson, InvalidRequest, NotFound

M = TypeVar("M", bound=BaseModel)
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
MAX_OUTPUT_INDEX = 1000
# ASCII digits only: str.isdigit() also takes "²" and other digits int() refuses.
_WHOLE_NUMBER = re.compile("[0-9]{1,20}")


def context(request: Request) -> Context:
    found: Context = request.app.state.context
    return found


async def read_json(request: Request, empty_is: dict[str, Any] | None = None) -> dict[str, Any]:
    """The body as a JSON object, read by the one reader with limits (handlers/strictjson.py);
    an empty body is `empty_is` where the endpoint allows one."""
    body = await request.body()
    if not body.strip():
        if empty_is is not None:
            return empty_is
        raise InvalidJson("the request body is empty; send a JSON object")
    try:
        data = strictjson.loads(body)
    except strictjson.JsonError as exc:
        raise InvalidJson(f"the request body {exc}") from None
    except strictjson.JsonLimitError as exc:
        raise InvalidRequest.field(exc.where, exc.message) from None
    if not isinstance(data, dict):
        raise InvalidRequest.field("body", "must be a JSON object")
    return data


def validate(model: type[M], data: dict[str, Any]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest.from_validation(exc) from None


def int_param(request: Request, name: str, default: int, minimum: int, maximum: int) -> int:
    """A whole-number query parameter: every integer parameter of the API is read here."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if _WHOLE_NUMBER.fullmatch(raw) is None or not minimum <= int(raw) <= maximum:
        raise InvalidRequest.field(name, f"must be a whole number from {minimum} to {maximum}")
    return int(raw)


async def after_param(
    request: Request, find: Callable[[str], Awaitable[object | None]], kind: str
) -> str | None:
    """The `after` cursor of a list: the id of the last item of the previous page, which `find`
    must still find (404 otherwise, as the OpenAPI document says)."""
    after = request.query_params.get("after")
    if after is not None and await find(after) is None:
        raise NotFound(f"the after cursor names no {kind}")
    return after


def limit_param(request: Request) -> int:
    return int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)


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
