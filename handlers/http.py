"""The one way handlers call a provider's API: every failure mapped to Transient or Permanent.

Connect errors, timeouts, 5xx, 429 and unreadable JSON are transient (the caller retries, honouring
Retry-After); any other 4xx is permanent and carries the provider's own message, and so is a
redirect that is not followed (asking again gives the same redirect).

Transient failures after which the request may have been acted on are `UncertainError`: a
timeout or a lost connection once the request could have been sent, and any 5xx (a gateway in
front of the provider answers 502/504 while the provider goes on). Only a request that certainly
never arrived (no connection, DNS or TLS failure, a pool timeout) or that the provider documents
as not processed (429) is plainly transient: for a submission, only those are safe to send again.

`request_json` reads JSON answers; `stream` opens a download (a video, an image) to be read as it
arrives, and `stream_with_credential` one that only the provider's key opens. These are for the
provider's own API (its base URL, which the operator configures). A URL that comes from a user or
from a provider's payload (an image to upload, a file to fetch, where a download redirects to) is
read with `fetch` through the handler's `egress` client, the service's egress guard
(service/urls.py): a refused URL or address is an `EgressRefused`, a PermanentError here.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from typing import Any, TypeVar

import httpx2 as httpx
from pydantic import BaseModel, ValidationError

from handlers import strictjson
from handlers.base import PermanentError, TransientError, UncertainError

MAX_MESSAGE = 1000
Model = TypeVar("Model", bound=BaseModel)


class EgressRefused(Exception):
    """Raised by the egress client when the policy refuses a URL or every address its host
    resolves to (see service/urls.py)."""


async def request_json(http: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> Any:
    host = httpx.URL(url).host
    with _transport_errors(host):
        response = await http.request(method, url, **kwargs)
    _check(response, host)
    try:
        return strictjson.loads(response.content)
    except ValueError:
        code = response.status_code
        raise TransientError(f"{host} answered malformed JSON (HTTP {code})") from None


@asynccontextmanager
async def stream(
    http: httpx.AsyncClient, method: str, url: str, **kwargs: Any
) -> AsyncIterator[httpx.Response]:
    """A response whose body is read as it arrives (`aiter_bytes`), failures classified as
    `request_json` classifies them."""
    host = httpx.URL(url).host
    with _transport_errors(host):
        async with http.stream(method, url, **kwargs) as response:
            if not response.is_success:
                await response.aread()
                _check(response, host)
            yield response


@asynccontextmanager
async def stream_with_credential(
    http: httpx.AsyncClient,
    egress: httpx.AsyncClient | None,
    url: str,
    credential: Mapping[str, str],
    **kwargs: Any,
) -> AsyncIterator[httpx.Response]:
    """GET `url` of the provider's API with `credential` (headers), as `stream` does. A redirect
    (to the storage that holds the file) is a URL the provider chose: it is followed through the
    egress guard (`fetch`), without the credential — httpx would strip only an Authorization
    header, and carry any other (an `x-goog-api-key`) to wherever the redirect points."""
    host = httpx.URL(url).host
    async with AsyncExitStack() as responses:
        with _transport_errors(host):
            response = await responses.enter_async_context(
                http.stream("GET", url, headers=credential, follow_redirects=False, **kwargs)
            )
        if response.is_redirect:
            target = str(response.url.join(response.headers["location"]))
            await response.aclose()
            response = await responses.enter_async_context(fetch(egress, target))
        elif not response.is_success:
            await response.aread()
            _check(response, host)
        yield response


@asynccontextmanager
async def fetch(
    egress: httpx.AsyncClient | None, url: str, **kwargs: Any
) -> AsyncIterator[httpx.Response]:
    """GET a URL that came from a user or a provider's payload, through the egress guard, without
    the provider's credentials; redirects are followed, each hop checked again. A handler that was
    given no egress client (`HttpProvider.egress` is None) fetches nothing."""
    if egress is None:
        raise PermanentError("this handler has no egress client: it cannot fetch user URLs")
    async with stream(egress, "GET", url, follow_redirects=True, **kwargs) as response:
        yield response


@contextmanager
def _transport_errors(host: str | None) -> Iterator[None]:
    try:
        yield
    except EgressRefused as exc:
        raise PermanentError(f"refused by the egress policy: {exc}") from None
    except httpx.TooManyRedirects:
        raise PermanentError(f"{host} redirected too many times") from None
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        # Nothing was sent: no connection (refused, DNS, TLS), or no free connection in time.
        raise TransientError(f"could not reach {host}: {type(exc).__name__}") from None
    except httpx.TimeoutException:
        raise UncertainError(f"timed out calling {host}") from None
    except httpx.TransportError as exc:
        raise UncertainError(f"lost the connection to {host}: {type(exc).__name__}") from None


def _check(response: httpx.Response, host: str | None) -> None:
    code = response.status_code
    if code == 429 or code >= 500:
        error = UncertainError if code >= 500 else TransientError
        raise error(
            f"{host} answered HTTP {code}: {provider_message(response)}",
            retry_after=parse_retry_after(response.headers.get("retry-after")),
        )
    if code >= 400:
        raise PermanentError(provider_message(response), status=code)
    if code >= 300:
        raise PermanentError(f"{host} answered a redirect that is not followed (HTTP {code})")


def parse(model: type[Model], data: Any) -> Model:
    """Validate a provider payload; a payload of the wrong shape is transient, never a crash."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise TransientError(f"unexpected provider payload at {where}: {first['msg']}") from None


def provider_message(response: httpx.Response) -> str:
    try:
        data = strictjson.loads(response.content)
    except ValueError:
        return response.text.strip()[:MAX_MESSAGE] or f"HTTP {response.status_code}"
    return (message_in(data) or response.text.strip())[:MAX_MESSAGE]


def message_in(data: Any) -> str | None:
    """Finds the human message in the error shapes providers use: {"error": {"message"}},
    {"error": "…"}, {"message": "…"}, {"detail": "…"} and FastAPI's {"detail": [{"msg"}]}."""
    if isinstance(data, str):
        return data or None
    if isinstance(data, list) and data:
        return message_in(data[0])
    if isinstance(data, dict):
        for key in ("error", "message", "detail", "msg", "error_message"):
            if key in data and (found := message_in(data[key])):
                return found
    return None


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
