"""One delivery attempt: sign, POST, read at most 4 KiB of the answer, classify the outcome.

Used by the dispatcher for every delivery and by the test ping of a subscription.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

from handlers.http import parse_retry_after
from service import signing
from service.settings import Settings
from service.urls import BlockedAddress, GuardedResolver, UrlPolicy, UrlRejected

MAX_RESPONSE_BODY = 4096
RETRY_AFTER_STATUSES = (429, 503)


@dataclass(slots=True)
class Outcome:
    status_code: int | None
    duration_ms: float
    error: str | None = None
    # timeout, connection, http_status, redirect, blocked, internal
    error_class: str | None = None
    response_body: str | None = None
    retry_after: float | None = None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def gone(self) -> bool:
        """410 Gone: the receiver says this endpoint will never accept again."""
        return self.status_code == 410


def open_session(settings: Settings, policy: UrlPolicy) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(
        limit=settings.delivery_concurrency, resolver=GuardedResolver(policy), ttl_dns_cache=10
    )
    timeout = aiohttp.ClientTimeout(
        total=settings.delivery_timeout, connect=min(settings.delivery_timeout, 10.0)
    )
    return aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False)


class Sender:
    def __init__(self, session: aiohttp.ClientSession, policy: UrlPolicy) -> None:
        self.session = session
        # URL checks are pure functions of the URL and the policy: worth caching on the hot path.
        self.check_url: Callable[[str], object] = functools.lru_cache(maxsize=10_000)(
            policy.check_syntax
        )

    async def attempt(self, url: str, msg_id: str, body: bytes, secrets: list[str]) -> Outcome:
        """`body` is the event as bytes, encoded once for all of its deliveries."""
        started = time.perf_counter()
        try:
            self.check_url(url)
            headers = signing.headers(secrets, msg_id, int(time.time()), body)
            async with self.session.post(
                url, data=body, headers=headers, allow_redirects=False
            ) as response:
                body = (await response.content.read(MAX_RESPONSE_BODY)).decode(errors="replace")
                outcome = Outcome(response.status, _ms(started), response_body=body)
                if not outcome.succeeded:
                    outcome.error = f"HTTP {response.status}"
                    outcome.error_class = (
                        "redirect" if 300 <= response.status < 400 else "http_status"
                    )
                if response.status in RETRY_AFTER_STATUSES:
                    outcome.retry_after = parse_retry_after(response.headers.get("retry-after"))
                return outcome
        except UrlRejected as exc:
            return Outcome(None, _ms(started), f"blocked: the URL {exc}", "blocked")
        except TimeoutError:
            return Outcome(None, _ms(started), "timed out", "timeout")
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, BlockedAddress):
                return Outcome(None, _ms(started), f"blocked: {exc.os_error}", "blocked")
            return Outcome(None, _ms(started), f"{type(exc).__name__}: {exc}"[:500], "connection")
        except aiohttp.ClientError as exc:
            return Outcome(None, _ms(started), f"{type(exc).__name__}: {exc}"[:500], "connection")


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
