"""A browsable API: the OpenAPI document describes the outgoing events (`webhooks`), tags every
operation and names the server; /docs serves an interactive reference from our own origin only;
/ leads a person there."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from service.api.openapi import OPERATIONS
from tests.support.servers import eventually
from tests.support.service import running_service
from tests.support.subscriber import recording_subscriber


class References(HTMLParser):
    """Every URL a page makes the browser load: scripts, stylesheets, icons, images."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        for name in ("src", "href"):
            if found.get(name) and tag in ("script", "link", "img", "iframe"):
                self.urls.append(str(found[name]))


EXTERNAL = re.compile(r"""(?:https?:)?//[a-z0-9.-]+""", re.I)


async def test_slash_leads_to_the_reference(env):
    # GET / is the dashboard: a stranger lands on its sign-in page, which links to the reference.
    async with running_service(env, worker=False) as svc:
        followed = await svc.api.get("/", follow_redirects=True)
        assert followed.status_code == 200 and "text/html" in followed.headers["content-type"]
        assert str(followed.url).endswith("/sign-in")
        assert 'href="/docs"' in followed.text


async def test_the_reference_and_every_asset_it_loads_come_from_our_own_origin(env):
    async with running_service(env, worker=False) as svc:
        page = await svc.api.get("/docs", headers={"authorization": ""})
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        parser = References()
        parser.feed(page.text)
        assert len(parser.urls) >= 3  # a stylesheet, Swagger UI, the start script
        assert not EXTERNAL.search(page.text), "the page names another origin"
        scripts = []
        for url in parser.urls:
            assert url.startswith("/") and not url.startswith("//"), url
            asset = await svc.api.get(url, headers={"authorization": ""})
            assert asset.status_code == 200, url
            assert asset.content, url
            if url.endswith(".css"):
                for ref in re.findall(r"url\(([^)]+)\)", asset.text):
                    ref = ref.strip("'\"")
                    assert ref.startswith("data:") or not EXTERNAL.match(ref), ref
            if url.endswith(".js"):
                scripts.append(asset.text)
        start = scripts[-1]
        # The reference reads our document, and never sends it to Swagger's public validator.
        assert 'url: "/openapi.json"' in start and "validatorUrl: null" in start
        assert not EXTERNAL.search(start)
        assert "SwaggerUIBundle" in scripts[0]


async def test_the_openapi_document_is_valid_and_describes_the_outgoing_events(env):
    async with running_service(env, worker=False) as svc:
        document = (await svc.api.get("/openapi.json")).json()
        validate(document)  # OpenAPI 3.1, webhooks included
        assert set(document["webhooks"]) == {"video.completed", "video.failed", "webhook.test"}
        for name, item in document["webhooks"].items():
            operation = item["post"]
            headers = {p["name"] for p in operation["parameters"] if p["in"] == "header"}
            assert headers == {"webhook-id", "webhook-timestamp", "webhook-signature"}, name
            schema = operation["requestBody"]["content"]["application/json"]["schema"]
            assert "EventOut" in str(schema) or "TestEventOut" in str(schema), name
        tags = {tag["name"] for tag in document["tags"]}
        for path, methods in document["paths"].items():
            for method, operation in methods.items():
                assert operation["tags"] and set(operation["tags"]) <= tags, (method, path)
        assert document["servers"] == [{"url": svc.url}]
        assert document["info"]["version"] != "0.0.0"
    async with running_service(env, public=False, worker=False) as svc:
        assert "servers" not in (await svc.api.get("/openapi.json")).json()


async def test_every_operation_is_in_the_document(env):
    async with running_service(env, worker=False) as svc:
        document = (await svc.api.get("/openapi.json")).json()
        documented = {(m, p) for p, ms in document["paths"].items() for m in ms}
        assert {(o.method, o.path) for o in OPERATIONS} <= documented
        assert ("post", "/v1/hooks") in documented and ("get", "/v1/events/sample") in documented


async def test_a_real_delivery_matches_its_webhook_schema(env):
    """The `webhooks` section describes what receivers really get: a delivery validates."""
    async with recording_subscriber() as subscriber, running_service(env) as svc:
        await svc.subscribe(subscriber.url)
        await svc.submit({"after_s": 0.1, "outcome": "failed"})
        document = (await svc.api.get("/openapi.json")).json()
        await eventually(lambda: subscriber.received)
        body = subscriber.received[0].event
        assert webhook_schema(document, "video.failed").is_valid(body)
        assert not webhook_schema(document, "video.completed").is_valid(body)
        sub = (await svc.api.get("/v1/subscriptions")).json()["data"][0]
        ping = await svc.api.post(f"/v1/subscriptions/{sub['id']}/test")
        assert webhook_schema(document, "webhook.test").is_valid(ping.json()["event"])
        assert webhook_schema(document, "webhook.test").is_valid(subscriber.received[-1].event)


def webhook_schema(document, name):
    content = document["webhooks"][name]["post"]["requestBody"]["content"]
    schema = content["application/json"]["schema"]
    return Draft202012Validator({"components": document["components"]} | schema)
