"""The egress guard on the handlers' side: user- and payload-supplied URLs are fetched through the
same policy as deliveries, at the address that was checked, and redirects only to allowed URLs."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import httpx2 as httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from handlers import handler_class
from handlers.base import PermanentError, ProviderConfig
from handlers.http import fetch
from service.urls import GuardedTransport, UrlPolicy, guarded_client
from tests.handlers.fakes.apifree import Fake as FakeApiFree
from tests.handlers.fakes.base import serve
from tests.support.dns import FakeDns
from tests.support.servers import eventually
from tests.support.service import running_service
from tests.support.tls import counting_listener, self_signed, serving_tls

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))
LOOPBACK = ipaddress.ip_network("127.0.0.1/32")


class ImageHost:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.app = Starlette(routes=[Route("/{name}", self.serve)])

    async def serve(self, request: Request) -> Response:
        self.requests.append((request.url.path, request.headers["host"]))
        if "to" in request.query_params:
            return RedirectResponse(request.query_params["to"], status_code=302)
        return Response(PNG, media_type="image/png")


@pytest.fixture
async def images(tmp_path: Path):
    """An https image host for the name images.test, on 127.0.0.1; yields (host, port, client
    TLS context)."""
    cert = self_signed(tmp_path, "images.test")
    host = ImageHost()
    async with serving_tls(host.app, cert) as port:
        yield host, port, cert.trusted_by()


async def read(client: httpx.AsyncClient, url: str) -> bytes:
    async with fetch(client, url) as response:
        return await response.aread()


async def test_a_user_url_is_fetched_from_the_address_that_was_checked(images):
    """images.test exists only in the guard's resolver: the connection went to the address it
    answered, and TLS verified the certificate against the name."""
    host, port, trust = images
    dns = FakeDns(images_test="127.0.0.1")
    policy = UrlPolicy(allow_private=False, allowed_cidrs=[LOOPBACK], lookup=dns)
    async with guarded_client(policy, 5.0, verify=trust) as client:
        assert await read(client, f"https://images.test:{port}/fox.png") == PNG
    assert host.requests == [("/fox.png", f"images.test:{port}")]
    assert dns.lookups == ["images.test"]


async def test_a_name_that_re_resolves_inside_after_its_check_is_never_dialled():
    async with counting_listener() as (port, connections):
        dns = FakeDns()
        dns.answer("images.test", "93.184.216.34", "127.0.0.1")
        policy = UrlPolicy(allow_private=False, lookup=dns)
        url = f"https://images.test:{port}/fox.png"
        await policy.check(url)  # public when saved
        async with guarded_client(policy, 5.0) as client:
            with pytest.raises(PermanentError, match=r"egress policy.*non-public.*loopback"):
                await read(client, url)
        assert connections == []
        assert dns.lookups == ["images.test", "images.test"]


@pytest.mark.parametrize(
    ("target", "refusal"),
    [
        ("http://images.test:{port}/fox.png", "must be an https URL"),
        ("https://inside.test:{port}/fox.png", "non-public.*private use"),
        ("https://[::1]:{port}/fox.png", "non-public.*loopback"),
        ("https://[::ffff:169.254.169.254]/latest", "non-public.*link local"),
        ("https://[64:ff9b:1::7f00:1]:{port}/fox.png", "non-public"),
    ],
)
async def test_a_redirect_to_a_refused_url_is_not_followed(images, target, refusal):
    host, port, trust = images
    dns = FakeDns(images_test="127.0.0.1", inside_test="10.0.0.7")
    policy = UrlPolicy(allow_private=False, allowed_cidrs=[LOOPBACK], lookup=dns)
    hop = httpx.URL(f"https://images.test:{port}/hop", params={"to": target.format(port=port)})
    async with guarded_client(policy, 5.0, verify=trust) as client:
        with pytest.raises(PermanentError, match=rf"egress policy.*{refusal}"):
            await read(client, str(hop))
    assert [path for path, _ in host.requests] == ["/hop"]


async def test_a_redirect_to_an_allowed_url_is_followed(images):
    host, port, trust = images
    policy = UrlPolicy(False, [LOOPBACK], lookup=FakeDns(images_test="127.0.0.1"))
    hop = httpx.URL(
        f"https://images.test:{port}/hop", params={"to": f"https://images.test:{port}/fox.png"}
    )
    async with guarded_client(policy, 5.0, verify=trust) as client:
        assert await read(client, str(hop)) == PNG
    assert [path for path, _ in host.requests] == ["/hop", "/fox.png"]


async def test_a_handler_built_without_the_guard_fetches_no_user_url():
    async with counting_listener() as (port, connections), httpx.AsyncClient() as http:
        apifree = handler_class("apifree")(ProviderConfig(api_key="k"), http)
        with pytest.raises(PermanentError, match="no egress client"):
            await apifree.image(f"http://127.0.0.1:{port}/fox.png")
    assert connections == []


async def test_every_handler_of_the_service_gets_the_guarded_client(env):
    async with running_service(env, worker=False) as svc:
        egress = svc.context.egress
        assert isinstance(egress._transport, GuardedTransport)
        assert egress._transport.policy is svc.context.url_policy
        assert {name: p.egress for name, p in svc.context.providers.items()} == {
            name: egress for name in svc.context.providers
        }


async def test_apifree_never_fetches_an_image_url_that_now_resolves_inside(env):
    """End to end: the image_url passed the check when the job was created (the guard's resolver
    answered a public address); at submission the name answers 127.0.0.1, where a listener counts
    connections. The job fails and nothing is dialled (a fetch that bypassed the guard would ask
    the system resolver, which answers 127.0.0.1 for localhost, and connect)."""
    env["VIDEOHOOKS_ALLOW_PRIVATE_URLS"] = "false"
    async with (
        serve(FakeApiFree()) as provider,
        counting_listener() as (port, connections),
        running_service(env | provider.env(), public=False) as svc,
    ):
        dns = FakeDns()
        dns.answer("localhost", "93.184.216.34", "127.0.0.1")
        svc.context.url_policy.lookup = dns
        video = await svc.submit(
            model=f"apifree/{FakeApiFree.model}", image_url=f"https://localhost:{port}/a.png"
        )
        failed = await eventually(lambda: _failed(svc, video["id"]), timeout=15)
        assert "egress policy" in failed["error"]["message"]
        assert "non-public" in failed["error"]["message"]
    assert connections == []
    assert provider.submissions() == []


async def _failed(svc, video_id):
    video = await svc.video(video_id)
    return video if video["status"] == "failed" else None
