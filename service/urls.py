"""The egress guard: which URLs videohooks may send a request to, and the connections it makes.

Every request whose URL comes from a user or from a provider's payload goes through one
`UrlPolicy`: deliveries and the test ping (aiohttp, `GuardedResolver`) and the handlers' fetches of
user-supplied URLs such as an image to upload (httpx, `guarded_client`). Provider APIs at the
operator's VIDEOHOOKS_<PROVIDER>_BASE_URL are trusted and reached with the plain client.

A URL is checked when it is saved (`UrlPolicy.check`: https, a well-formed host, every address it
resolves to public) and again at every connection: the name is resolved once, the addresses the
policy refuses are dropped, and the connection is made to exactly the ones that passed, so a name
that re-resolves to a private address after it was saved (DNS rebinding) cannot reach it. Each
redirect hop is a new request, checked the same way. Which addresses are refused is
service/addresses.py.

VIDEOHOOKS_ALLOW_PRIVATE_URLS=true opens all of this (and plain http) for local development;
VIDEOHOOKS_ALLOWED_CIDRS opens chosen ranges only (https still required).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

import httpcore2
import httpx2 as httpx
from aiohttp.abc import AbstractResolver, ResolveResult

from handlers.http import EgressRefused
from service import __version__, addresses
from service.addresses import IPAddress, IPNetwork

# The URL grammar the API accepts, stated once for the check and for the OpenAPI document: http(s),
# a host (LDH labels, IDNs in their xn-- form, or an IP literal), an optional port, then path,
# query and fragment in RFC 3986's characters. RFC 3986's IPv6address, written out. Plain
# character classes and {m,n} only, so Python's re and ECMA-262 validators read it alike.
_H16 = "[0-9A-Fa-f]{1,4}"
_DEC = "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_IPV4 = rf"(?:{_DEC}\.){{3}}{_DEC}"
_LS32 = f"(?:{_H16}:{_H16}|{_IPV4})"
_IPV6 = "|".join(
    (
        f"(?:{_H16}:){{6}}{_LS32}",
        f"::(?:{_H16}:){{5}}{_LS32}",
        f"(?:{_H16})?::(?:{_H16}:){{4}}{_LS32}",
        f"(?:(?:{_H16}:){{0,1}}{_H16})?::(?:{_H16}:){{3}}{_LS32}",
        f"(?:(?:{_H16}:){{0,2}}{_H16})?::(?:{_H16}:){{2}}{_LS32}",
        f"(?:(?:{_H16}:){{0,3}}{_H16})?::{_H16}:{_LS32}",
        f"(?:(?:{_H16}:){{0,4}}{_H16})?::{_LS32}",
        f"(?:(?:{_H16}:){{0,5}}{_H16})?::{_H16}",
        f"(?:(?:{_H16}:){{0,6}}{_H16})?::",
    )
)
_LABEL = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = rf"(?:(?:{_LABEL}\.)*{_LABEL}\.?|\[(?:{_IPV6})\])"
_PORT = "(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"
_URI_CHAR = "(?:[A-Za-z0-9._~!$&'()*+,;=:@/?-]|%[0-9A-Fa-f]{2})"
URL_GRAMMAR = rf"https?://{_HOST}(?::{_PORT})?(?:[/?]{_URI_CHAR}*)?(?:#{_URI_CHAR}*)?"
_URL = re.compile(URL_GRAMMAR)

Lookup = Callable[[str, int, int], Awaitable[list[IPAddress]]]


class UrlRejected(ValueError, EgressRefused):
    pass


class BlockedAddress(OSError, EgressRefused):
    """Raised at connect time when a name resolves only to addresses the policy refuses."""


async def system_lookup(host: str, port: int, family: int = socket.AF_UNSPEC) -> list[IPAddress]:
    """The addresses the system resolver gives for `host`, in its order, each once."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, family=family, type=socket.SOCK_STREAM
        )
    except UnicodeError:  # the idna codec refuses the name (an empty or overlong label)
        raise socket.gaierror(f"{host!r} is not a valid host name") from None
    found = (ipaddress.ip_address(str(info[4][0]).partition("%")[0]) for info in infos)
    return list(dict.fromkeys(found))


class UrlPolicy:
    def __init__(
        self,
        allow_private: bool,
        allowed_cidrs: Iterable[IPNetwork] = (),
        lookup: Lookup = system_lookup,
    ) -> None:
        self.allow_private = allow_private
        self.allowed_cidrs = tuple(allowed_cidrs)
        # The name resolver; a test replaces it with one whose answers change.
        self.lookup = lookup

    def refusal(self, address: IPAddress) -> str | None:
        """Why a connection to `address` is refused, or None when it is allowed."""
        if self.allow_private:
            return None
        reached = addresses.reached(address)
        if any(a in network for network in self.allowed_cidrs for a in (address, reached)):
            return None
        refused = addresses.refused(address)
        return None if refused is None else f"{reached}: {refused}"

    def address_allowed(self, address: IPAddress) -> bool:
        return self.refusal(address) is None

    def check_syntax(self, url: str) -> tuple[str, int]:
        """The host and port of an acceptable URL; raises UrlRejected with the reason."""
        schemes = ("https", "http") if self.allow_private else ("https",)
        if url.partition("://")[0] not in schemes:
            raise UrlRejected(f"must be an {' or '.join(reversed(schemes))} URL")
        if _URL.fullmatch(url) is None:
            raise UrlRejected(_why_malformed(url))
        parts = urlsplit(url)
        host = parts.hostname or ""
        literal = _ip_literal(host)
        if literal is not None and (reason := self.refusal(literal)) is not None:
            raise UrlRejected(f"points to a non-public address ({reason})")
        return host, parts.port or (443 if parts.scheme == "https" else 80)

    async def check(self, url: str) -> None:
        """Full check when a URL is saved: syntax, then every address its host resolves to."""
        host, port = self.check_syntax(url)
        if self.allow_private or _ip_literal(host) is not None:
            return
        try:
            found = await self.lookup(host, port, socket.AF_UNSPEC)
        except OSError:
            raise UrlRejected(f"host {host!r} does not resolve") from None
        for address in found:
            if (reason := self.refusal(address)) is not None:
                raise UrlRejected(f"host {host!r} resolves to a non-public address ({reason})")

    async def resolve(
        self, host: str, port: int, family: int = socket.AF_UNSPEC
    ) -> list[IPAddress]:
        """The addresses to dial for `host`: resolved once, those the policy refuses dropped.
        Raises BlockedAddress when none is left, OSError when the name does not resolve."""
        literal = _ip_literal(host)
        found = [literal] if literal is not None else await self.lookup(host, port, family)
        allowed = [address for address in found if self.address_allowed(address)]
        if not allowed:
            reasons = "; ".join(filter(None, map(self.refusal, found)))
            raise BlockedAddress(f"{host} resolves only to non-public addresses ({reasons})")
        return allowed


class GuardedResolver(AbstractResolver):
    """aiohttp resolver that returns only allowed addresses; the connector then connects to
    exactly those, so what was checked is what is dialled."""

    def __init__(self, policy: UrlPolicy) -> None:
        self.policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            {
                "hostname": host,
                "host": str(address),
                "port": port,
                "family": socket.AF_INET6 if address.version == 6 else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
            }
            for address in await self.policy.resolve(host, port, family)
        ]

    async def close(self) -> None:
        pass


class GuardedBackend(httpcore2.AsyncNetworkBackend):
    """httpcore's network backend with the policy in front: the host is resolved once and the
    connection made to an allowed address. TLS still verifies the certificate against the host
    name (httpcore passes the origin's name to start_tls, not the address dialled)."""

    def __init__(self, policy: UrlPolicy) -> None:
        self.policy = policy
        self.backend = httpcore2.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                found = await self.policy.resolve(host, port)
        except TimeoutError:
            raise httpcore2.ConnectTimeout(f"resolving {host} timed out") from None
        except BlockedAddress:
            raise
        except OSError as exc:
            raise httpcore2.ConnectError(str(exc)) from None
        failure: httpcore2.ConnectError | None = None
        for address in found:
            try:
                return await self.backend.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except httpcore2.ConnectError as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def sleep(self, seconds: float) -> None:
        await self.backend.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over a pool that dials through `GuardedBackend`; every request, each
    redirect hop included, has its URL checked first."""

    def __init__(self, policy: UrlPolicy, verify: Any = True) -> None:
        super().__init__()
        # AsyncHTTPTransport takes no network backend, so its pool is made again with one.
        self._pool = httpcore2.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify),
            network_backend=GuardedBackend(policy),
            max_connections=100,
            max_keepalive_connections=20,
        )
        self.policy = policy

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.policy.check_syntax(str(request.url))
        return await super().handle_async_request(request)


def guarded_client(policy: UrlPolicy, timeout: float, verify: Any = True) -> httpx.AsyncClient:
    """The client for user- and payload-supplied URLs (handlers get it as `egress`)."""
    return httpx.AsyncClient(
        transport=GuardedTransport(policy, verify),
        timeout=httpx.Timeout(timeout, connect=min(5.0, timeout)),
        headers={"user-agent": f"videohooks/{__version__}"},
        max_redirects=5,
    )


def _why_malformed(url: str) -> str:
    if "@" in url.partition("://")[2].split("/", 1)[0]:
        return "must not carry credentials"
    return "is not a valid URL (scheme://host[:port][/path], in RFC 3986's characters)"


def _ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
