"""The SSRF guard: which URLs may be saved and which addresses may be dialled."""

from __future__ import annotations

import ipaddress
import json

import pytest

from service.addresses import IPV4, IPV6, refused
from service.urls import GuardedResolver, UrlPolicy, UrlRejected
from tests.support.dns import FakeDns
from tests.support.events import finish_jobs
from tests.support.servers import eventually
from tests.support.service import running_service
from tests.support.subscriber import recording_subscriber

# (address, the range that refuses it, or None for a public address). Every row of both IANA
# special-purpose registries has at least one address here, and the embedded-IPv4 forms with
# both a refused and a public IPv4 inside.
TABLE = [
    # IPv4 special-purpose registry
    ("0.0.0.0", "this host on this network"),
    ("0.1.2.3", "this network"),
    ("10.1.2.3", "private use"),
    ("100.64.0.1", "shared address space (CGNAT)"),
    ("127.0.0.1", "loopback"),
    ("127.1.2.3", "loopback"),
    ("169.254.169.254", "link local (cloud metadata)"),
    ("172.16.0.1", "private use"),
    ("172.31.255.254", "private use"),
    ("192.0.0.1", "IPv4 service continuity prefix"),
    ("192.0.0.8", "IPv4 dummy address"),
    ("192.0.0.9", "Port Control Protocol anycast"),
    ("192.0.0.10", "TURN anycast"),
    ("192.0.0.100", "IETF protocol assignments"),
    ("192.0.0.171", "NAT64/DNS64 discovery"),
    ("192.0.2.7", "documentation (TEST-NET-1)"),
    ("192.31.196.1", "AS112-v4"),
    ("192.52.193.1", "AMT"),
    ("192.88.99.1", "deprecated 6to4 relay anycast"),
    ("192.88.99.2", "6a44 relay anycast"),
    ("192.168.1.1", "private use"),
    ("192.175.48.6", "direct delegation AS112 service"),
    ("198.18.0.1", "benchmarking"),
    ("198.19.255.255", "benchmarking"),
    ("198.51.100.1", "documentation (TEST-NET-2)"),
    ("203.0.113.9", "documentation (TEST-NET-3)"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "limited broadcast"),
    # IPv6 special-purpose registry
    ("::", "unspecified"),
    ("::1", "loopback"),
    ("::127.0.0.1", "IPv4-compatible (deprecated)"),
    ("::8.8.8.8", "IPv4-compatible (deprecated)"),
    ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:10.0.0.1", "private use"),
    ("::ffff:169.254.169.254", "link local (cloud metadata)"),
    ("64:ff9b::7f00:1", "loopback"),
    ("64:ff9b::a9fe:a9fe", "link local (cloud metadata)"),
    ("64:ff9b:1::7f00:1", "local-use IPv4/IPv6 translation"),
    ("64:ff9b:1::808:808", "local-use IPv4/IPv6 translation"),
    ("100::1", "discard-only"),
    ("100:0:0:1::1", "dummy IPv6 prefix"),
    ("2001::1", "Teredo (embeds IPv4)"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo (embeds IPv4)"),
    ("2001:1::1", "Port Control Protocol anycast"),
    ("2001:1::2", "TURN anycast"),
    ("2001:1::3", "DNS-SD service registration anycast"),
    ("2001:2::1", "benchmarking"),
    ("2001:3::1", "AMT"),
    ("2001:4:112::1", "AS112-v6"),
    ("2001:10::1", "deprecated ORCHID"),
    ("2001:20::1", "ORCHIDv2"),
    ("2001:30::1", "drone remote ID entity tags"),
    ("2001:100::1", "IETF protocol assignments"),
    ("2001:db8::1", "documentation"),
    ("2002:7f00:1::", "6to4 (embeds IPv4)"),
    ("2002:808:808::1", "6to4 (embeds IPv4)"),
    ("2620:4f:8000::1", "direct delegation AS112 service"),
    ("3fff::1", "documentation"),
    ("5f00::1", "segment routing (SRv6) SIDs"),
    ("fc00::1", "unique local"),
    ("fd12:3456::1", "unique local"),
    ("fe80::1", "link-local unicast"),
    ("fec0::1", "site-local (deprecated)"),
    ("ff02::1", "multicast"),
    ("4000::1", "outside global unicast 2000::/3"),
    ("::ffff:0:7f00:1", "outside global unicast 2000::/3"),  # SIIT IPv4-translated
    # the public internet, also reached through an embedding
    ("93.184.216.34", None),
    ("8.8.8.8", None),
    ("1.1.1.1", None),
    ("100.128.0.1", None),  # just past CGNAT
    ("172.32.0.1", None),  # just past 172.16/12
    ("192.0.1.1", None),  # just past 192.0.0.0/24
    ("198.20.0.1", None),  # just past benchmarking
    ("223.255.255.254", None),  # just below multicast
    ("2606:4700:4700::1111", None),
    ("2a00:1450:4001:80b::200e", None),
    ("2001:200::1", None),  # just past 2001::/23
    ("::ffff:8.8.8.8", None),  # IPv4-mapped, dialled as 8.8.8.8
    ("64:ff9b::808:808", None),  # NAT64 of 8.8.8.8: what DNS64 answers on an IPv6-only network
]


@pytest.mark.parametrize(("address", "refused_as"), TABLE)
def test_the_address_policy_covers_the_special_purpose_registries(address, refused_as):
    found = refused(ipaddress.ip_address(address))
    assert (found and found.name) == refused_as
    allowed = UrlPolicy(allow_private=False).address_allowed(ipaddress.ip_address(address))
    assert allowed is (refused_as is None)


def test_every_registry_row_is_in_the_table():
    probed = [ipaddress.ip_address(address) for address, _ in TABLE]
    for entry in IPV4 + IPV6:
        assert any(address in entry.network for address in probed), entry


def test_allow_private_opens_everything_and_cidrs_open_chosen_ranges():
    assert UrlPolicy(allow_private=True).address_allowed(ipaddress.ip_address("127.0.0.1"))
    policy = UrlPolicy(False, [ipaddress.ip_network("10.20.0.0/16")])
    assert policy.address_allowed(ipaddress.ip_address("10.20.1.1"))
    assert not policy.address_allowed(ipaddress.ip_address("10.21.1.1"))
    policy.check_syntax("https://10.20.1.1/hook")
    with pytest.raises(UrlRejected):
        policy.check_syntax("http://10.20.1.1/hook")  # https is still required


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/hook",
        "ftp://example.com",
        "https://user:pw@example.com/",
        "https:///nohost",
        "https://127.0.0.1/",
        "https://[::ffff:127.0.0.1]/",
        "not a url",
        "https://169.254.169.254/latest/meta-data",
        "https://[::127.0.0.1]/x",  # IPv4-compatible
        "https://[64:ff9b:1::7f00:1]/x",  # local-use NAT64
        "https://[64:ff9b::a9fe:a9fe]/x",  # NAT64 of the metadata address
        "https://a..b/x",  # an empty label
        "https://" + "a" * 100 + ".example/x",  # a label over 63 characters
        "https://-a.example/x",
        "https://exa mple.com/",
        "https://example.com/a b",
        "https://example.com:99999/",
        "https://[fe80::1%25eth0]/",
        "HTTPS://example.com/",
        "https://example.com/\n",
    ],
)
def test_urls_that_fail_the_syntax_check(url):
    with pytest.raises(UrlRejected):
        UrlPolicy(allow_private=False).check_syntax(url)


async def test_a_host_name_that_resolves_to_loopback_is_refused_when_saved():
    with pytest.raises(UrlRejected, match="non-public"):
        await UrlPolicy(allow_private=False).check("https://localhost:8443/hook")


async def test_the_connection_is_pinned_to_checked_addresses():
    """DNS rebinding: whatever the name resolves to at connect time is checked again, and only
    the addresses that pass are dialled."""
    dns = FakeDns()
    dns.answer("rebinding.example", "93.184.216.34", "127.0.0.1")
    dns.answer("mixed.example", ["10.0.0.5", "93.184.216.34"])
    policy = UrlPolicy(allow_private=False, lookup=dns)
    await policy.check("https://rebinding.example/hook")  # public when saved
    resolver = GuardedResolver(policy)
    with pytest.raises(OSError, match="non-public"):
        await resolver.resolve("rebinding.example", 443)  # the name now points inside
    assert [r["host"] for r in await resolver.resolve("mixed.example", 443)] == ["93.184.216.34"]


async def test_the_api_refuses_non_public_subscriber_and_callback_urls(env):
    env["VIDEOHOOKS_ALLOW_PRIVATE_URLS"] = "false"
    async with running_service(env, worker=False) as svc:
        for url in (
            "http://example.com/hook",
            "https://127.0.0.1/x",
            "https://localhost:9/x",
            "https://[::ffff:10.0.0.1]/x",
            "https://169.254.169.254/",
            "https://[::127.0.0.1]/x",
            "https://[64:ff9b:1::7f00:1]/x",
            "https://a..b/x",
            "https://" + "a" * 100 + ".example/x",
            "https://",
            "",
        ):
            answer = await svc.api.post("/v1/subscriptions", json={"url": url})
            assert answer.status_code == 422, url
            assert answer.json()["error"]["details"][0]["field"] == "url"
            video = await svc.api.post(
                "/v1/videos", json={"model": "simulator/x", "callback_url": url}
            )
            assert video.status_code == 422, url


async def test_a_saved_url_that_now_resolves_inside_is_blocked_at_connect_time(env):
    async with recording_subscriber() as subscriber:
        # Saved while private addresses were allowed (as if the name pointed outside then).
        url = subscriber.url.replace("http://127.0.0.1", "https://localhost")
        async with running_service(env, worker=False) as svc:
            await svc.subscribe(url)
        env["VIDEOHOOKS_ALLOW_PRIVATE_URLS"] = "false"
        async with running_service(env) as svc:
            await finish_jobs(svc.context, 1)
            [delivery] = await eventually(lambda: _attempted(svc))
            assert delivery["attempts"][0]["error_class"] == "blocked"
            assert "non-public" in delivery["attempts"][0]["error"]
        assert subscriber.received == []


async def _attempted(svc):
    found = json.loads((await svc.api.get("/v1/deliveries")).text)["data"]
    return found if found and found[0]["attempts"] else None
