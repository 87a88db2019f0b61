"""The addresses no request of videohooks may reach: the IANA special-purpose registries, whole.

Every entry of the IPv4 and IPv6 Special-Purpose Address Registries is refused, also those the
registries mark globally reachable (anycast service addresses, AS112, AMT): no webhook receiver
or image host lives there. Multicast is refused, and so is IPv6 outside global unicast
(2000::/3): nothing else is allocated to hosts.

Two ranges carry an IPv4 address that is what a connection actually reaches: IPv4-mapped
(::ffff:a.b.c.d, dialled as a.b.c.d) and NAT64's well-known prefix (64:ff9b::a.b.c.d, which a
NAT64 gateway forwards to a.b.c.d; on an IPv6-only network every name resolves into it). Those are
judged by that IPv4 address. Every other range that embeds one (IPv4-compatible, local-use NAT64,
6to4, Teredo) is deprecated or local and refused whole, whatever it embeds.

Python's `ipaddress.is_global` is not used: it knows an older registry (it takes ::127.0.0.1,
64:ff9b:1::/48, 3fff::/20 and 5f00::/16 for global).
Sources: https://www.iana.org/assignments/iana-ipv4-special-registry/,
https://www.iana.org/assignments/iana-ipv6-special-registry/ (both as of 2025), RFC 5771
(multicast), RFC 4291 (IPv6 addressing).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Range:
    network: IPNetwork
    name: str
    reference: str

    def __str__(self) -> str:
        return f"{self.name}, {self.network}"


def _ranges(*rows: tuple[str, str, str]) -> tuple[Range, ...]:
    # Most specific first, so an address is refused under its narrowest name.
    ranges = [Range(ipaddress.ip_network(cidr), name, ref) for cidr, name, ref in rows]
    return tuple(sorted(ranges, key=lambda r: -r.network.prefixlen))


IPV4 = _ranges(
    ("0.0.0.0/8", "this network", "RFC 791"),
    ("0.0.0.0/32", "this host on this network", "RFC 1122"),
    ("10.0.0.0/8", "private use", "RFC 1918"),
    ("100.64.0.0/10", "shared address space (CGNAT)", "RFC 6598"),
    ("127.0.0.0/8", "loopback", "RFC 1122"),
    ("169.254.0.0/16", "link local (cloud metadata)", "RFC 3927"),
    ("172.16.0.0/12", "private use", "RFC 1918"),
    ("192.0.0.0/24", "IETF protocol assignments", "RFC 6890"),
    ("192.0.0.0/29", "IPv4 service continuity prefix", "RFC 7335"),
    ("192.0.0.8/32", "IPv4 dummy address", "RFC 7600"),
    ("192.0.0.9/32", "Port Control Protocol anycast", "RFC 7723"),
    ("192.0.0.10/32", "TURN anycast", "RFC 8155"),
    ("192.0.0.170/31", "NAT64/DNS64 discovery", "RFC 8880"),
    ("192.0.2.0/24", "documentation (TEST-NET-1)", "RFC 5737"),
    ("192.31.196.0/24", "AS112-v4", "RFC 7535"),
    ("192.52.193.0/24", "AMT", "RFC 7450"),
    ("192.88.99.0/24", "deprecated 6to4 relay anycast", "RFC 7526"),
    ("192.88.99.2/32", "6a44 relay anycast", "RFC 6751"),
    ("192.168.0.0/16", "private use", "RFC 1918"),
    ("192.175.48.0/24", "direct delegation AS112 service", "RFC 7534"),
    ("198.18.0.0/15", "benchmarking", "RFC 2544"),
    ("198.51.100.0/24", "documentation (TEST-NET-2)", "RFC 5737"),
    ("203.0.113.0/24", "documentation (TEST-NET-3)", "RFC 5737"),
    ("224.0.0.0/4", "multicast", "RFC 5771"),
    ("240.0.0.0/4", "reserved", "RFC 1112"),
    ("255.255.255.255/32", "limited broadcast", "RFC 919"),
)

# The two ranges whose addresses are judged by the IPv4 address they reach.
IPV4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")

IPV6 = _ranges(
    ("::/128", "unspecified", "RFC 4291"),
    ("::1/128", "loopback", "RFC 4291"),
    ("::/96", "IPv4-compatible (deprecated)", "RFC 4291"),
    ("64:ff9b:1::/48", "local-use IPv4/IPv6 translation", "RFC 8215"),
    ("100::/64", "discard-only", "RFC 6666"),
    ("100:0:0:1::/64", "dummy IPv6 prefix", "RFC 9780"),
    ("2001::/23", "IETF protocol assignments", "RFC 2928"),
    ("2001::/32", "Teredo (embeds IPv4)", "RFC 4380"),
    ("2001:1::1/128", "Port Control Protocol anycast", "RFC 7723"),
    ("2001:1::2/128", "TURN anycast", "RFC 8155"),
    ("2001:1::3/128", "DNS-SD service registration anycast", "RFC 9665"),
    ("2001:2::/48", "benchmarking", "RFC 5180"),
    ("2001:3::/32", "AMT", "RFC 7450"),
    ("2001:4:112::/48", "AS112-v6", "RFC 7535"),
    ("2001:10::/28", "deprecated ORCHID", "RFC 4843"),
    ("2001:20::/28", "ORCHIDv2", "RFC 7343"),
    ("2001:30::/28", "drone remote ID entity tags", "RFC 9374"),
    ("2001:db8::/32", "documentation", "RFC 3849"),
    ("2002::/16", "6to4 (embeds IPv4)", "RFC 3056"),
    ("2620:4f:8000::/48", "direct delegation AS112 service", "RFC 7534"),
    ("3fff::/20", "documentation", "RFC 9637"),
    ("5f00::/16", "segment routing (SRv6) SIDs", "RFC 9602"),
    ("fc00::/7", "unique local", "RFC 4193"),
    ("fe80::/10", "link-local unicast", "RFC 4291"),
    ("fec0::/10", "site-local (deprecated)", "RFC 3879"),
    ("ff00::/8", "multicast", "RFC 4291"),
)
NOT_GLOBAL_UNICAST = Range(ipaddress.IPv6Network("::/0"), "outside global unicast 2000::/3", "")


def reached(address: IPAddress) -> IPAddress:
    """The address a connection to `address` actually reaches: the embedded IPv4 of an
    IPv4-mapped or NAT64 (64:ff9b::/96) address, else the address itself."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def refused(address: IPAddress) -> Range | None:
    """The special-purpose range that `address` (or the IPv4 address it reaches) is in, or None
    for an address on the public internet."""
    target = reached(address)
    table = IPV4 if isinstance(target, ipaddress.IPv4Address) else IPV6
    for entry in table:
        if target in entry.network:
            return entry
    if isinstance(target, ipaddress.IPv6Address) and target not in GLOBAL_UNICAST:
        return NOT_GLOBAL_UNICAST
    return None
