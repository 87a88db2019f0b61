"""The SSRF guard: which URLs may be saved and which addresses may be dialled."""

from __future__ import annotations

import ipaddress
import json

import pytest

from service.urls import GuardedResolver, UrlPolicy, UrlRejected
from tests.support.events import finish_jobs
from tests.support.servers import eventually
from tests.support.service import running_service
from tests.support.subscriber import recording_subscriber

BLOCKED = [
    "127.0.0.1",
    "127.1.2.3",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",  # loopback, private
    "169.254.169.254",  # link-local: cloud metadata
    "100.64.0.1",  # CGNAT
    "224.0.0.1",
    "ff02::1",  # multicast
    "0.0.0.0",
    "::",  # unspecified
    "::1",
    "fc00::1",
    "fd12:3456::1",
    "fe80::1",  # IPv6 loopback, unique-local, link-local
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",  # IPv4-mapped forms
    "64:ff9b::7f00:1",
    "2002:7f00:1::",  # NAT64 and 6to4 wrappings of 127.0.0.1
]
ALLOWED = ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"]


@pytest.mark.parametrize("address", BLOCKED)
def test_non_public_addresses_are_blocked(address):
    assert not UrlPolicy(allow_private=False).address_allowed(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_are_allowed(address):
    assert UrlPolicy(allow_private=False).address_allowed(ipaddress.ip_address(address))


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
    ],
)
def test_urls_that_fail_the_syntax_check(url):
    with pytest.raises(UrlRejected):
        UrlPolicy(allow_private=False).check_syntax(url)


async def test_a_host_name_that_resolves_to_loopback_is_refused_when_saved():
    with pytest.raises(UrlRejected, match="non-public"):
        await UrlPolicy(allow_private=False).check("https://localhost:8443/hook")


class StubResolver:
    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses

    async def resolve(self, host, port=0, family=0):
        return [
            {"hostname": host, "host": address, "port": port, "family": 2, "proto": 0, "flags": 0}
            for address in self.addresses
        ]

    async def close(self):
        pass


async def test_the_connection_is_pinned_to_checked_addresses():
    """DNS rebinding: whatever the name resolves to at connect time is checked again, and only
    the addresses that pass are dialled."""
    resolver = GuardedResolver(UrlPolicy(allow_private=False))
    resolver._resolver = StubResolver("127.0.0.1")  # the name now points inside
    with pytest.raises(OSError, match="non-public"):
        await resolver.resolve("rebinding.example", 443)
    resolver._resolver = StubResolver("10.0.0.5", "93.184.216.34")
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
