"""Which URLs videohooks may POST to: the SSRF guard.

Subscriber and callback URLs must be https and resolve only to global addresses. The check runs
when a URL is saved (`UrlPolicy.check`) and again at connect time (`GuardedResolver`, plugged into
the delivery client), where the connection is made only to the addresses that passed, so a DNS
answer that changes between the two (rebinding) cannot reach a private address.
VIDEOHOOKS_ALLOW_PRIVATE_URLS=true opens all of this (and plain http) for local development;
VIDEOHOOKS_ALLOWED_CIDRS opens chosen ranges only.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Ranges that `is_global` alone lets through but no webhook receiver lives in.
_ALSO_BLOCKED = (
    ipaddress.ip_network("100.64.0.0/10"),  # CGNAT (is_global is already False; kept explicit)
    ipaddress.ip_network("64:ff9b::/96"),  # NAT64 maps IPv4 into IPv6
    ipaddress.ip_network("2002::/16"),  # 6to4 embeds an IPv4 address
)


class UrlRejected(ValueError):
    pass


class BlockedAddress(OSError):
    """Raised at connect time when a name resolves only to addresses the policy refuses."""


class UrlPolicy:
    def __init__(self, allow_private: bool, allowed_cidrs: Iterable[IPNetwork] = ()) -> None:
        self.allow_private = allow_private
        self.allowed_cidrs = tuple(allowed_cidrs)

    def address_allowed(self, address: IPAddress) -> bool:
        if self.allow_private:
            return True
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            return self.address_allowed(address.ipv4_mapped)
        if any(address in network for network in self.allowed_cidrs):
            return True
        if address.is_multicast or address.is_unspecified or not address.is_global:
            return False
        return not any(address in network for network in _ALSO_BLOCKED)

    def check_syntax(self, url: str) -> tuple[str, int]:
        """The host and port of an acceptable URL; raises UrlRejected with the reason."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise UrlRejected("is not a valid URL") from None
        schemes = ("https", "http") if self.allow_private else ("https",)
        if parts.scheme not in schemes:
            raise UrlRejected(
                "must be an https URL" if not self.allow_private else "must be an http or https URL"
            )
        if not parts.hostname:
            raise UrlRejected("has no host")
        if parts.username or parts.password:
            raise UrlRejected("must not carry credentials")
        host = parts.hostname
        literal = _ip_literal(host)
        if literal is not None and not self.address_allowed(literal):
            raise UrlRejected(f"points to a non-public address ({literal})")
        return host, port or (443 if parts.scheme == "https" else 80)

    async def check(self, url: str) -> None:
        """Full check when a URL is saved: syntax, then every address its host resolves to."""
        host, port = self.check_syntax(url)
        if self.allow_private or _ip_literal(host) is not None:
            return
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except OSError:
            raise UrlRejected(f"host {host!r} does not resolve") from None
        for info in infos:
            address = ipaddress.ip_address(info[4][0])
            if not self.address_allowed(address):
                raise UrlRejected(f"host {host!r} resolves to a non-public address ({address})")


class GuardedResolver(AbstractResolver):
    """aiohttp resolver that returns only allowed addresses; the connector then connects to
    exactly those, so what was checked is what is dialled."""

    def __init__(self, policy: UrlPolicy) -> None:
        self.policy = policy
        self._resolver = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._resolver.resolve(host, port, family)
        allowed = [
            r for r in results if self.policy.address_allowed(ipaddress.ip_address(r["host"]))
        ]
        if not allowed:
            raise BlockedAddress(f"{host} resolves only to non-public addresses")
        return allowed

    async def close(self) -> None:
        await self._resolver.close()


def _ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
