"""Generated hostile requests to every route of a running `videohooks serve`: bodies (deep
nesting, NaN and Infinity, numbers past any range, lone surrogates, U+0000, invalid UTF-8,
valid bodies with one value swapped for a hostile one), query strings (Unicode digits, overlong
numbers), headers and path parameters. Each answer is a success or a 4xx in the contract's error
shape, and the service's log holds no traceback.

Bounded and derandomized (the same requests on every run); VIDEOHOOKS_FUZZ_EXAMPLES raises the
number per route for a deeper search by hand. Everything the service could be made to call stays
on loopback: URLs must be https on 127.0.0.0/8 (VIDEOHOOKS_ALLOWED_CIDRS), generated URLs come from
a fixed list, providers' APIs point at a closed loopback port, and no generated body gives the
simulator a callback URL.
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx2 as httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.api.openapi import OPERATIONS
from service.tokens import ReceiverTokens
from tests.support.fuzzing import fuzz_env, tracebacks, videohooks
from tests.support.servers import free_port
from tests.support.service import API_KEY

SECRET_KEY = "fuzz-secret-key-0123456789"
ROUTES = sorted(
    {(operation.method, operation.path) for operation in OPERATIONS}
    | {
        ("get", "/metrics"),
        ("get", "/openapi.json"),
        ("post", "/simulator/v1/videos"),
        ("get", "/simulator/v1/videos/{video_id}"),
        ("get", "/simulator/files/{video_id}.mp4"),
        ("put", "/v1/videos"),
        ("get", "/v1/{anything}"),
    }
)

# -- JSON text, written by hand so that it can hold what json.dumps never writes --------------

URLS = [
    "https://127.0.0.1:9/hook",
    "https://a..b/x",
    "https://" + "a" * 100 + ".example/x",
    "https://[::127.0.0.1]/x",
    "https://[64:ff9b:1::7f00:1]/x",
    "https://169.254.169.254/latest/meta-data",
    "http://127.0.0.1:9/x",
    "https://user:pw@127.0.0.1/x",
    "https://[::1",
    "data:image/png;base64,AAAA",
    "https://127.0.0.1:99999/x",
]
ATOMS = st.one_of(
    st.sampled_from(
        [
            "NaN",
            "Infinity",
            "-Infinity",
            "1e400",
            "-1e400",
            "1e-400",
            "1" + "0" * 5000,
            "-" + "9" * 400,
            "1227.0",
            "-0",
            '"\\ud800"',
            '"a\\udfffb"',
            '"\\u0000"',
            '"²"',
            '"٣"',
            '"' + "x" * 30_000 + '"',
            "true",
            "null",
            '""',
            "[]",
            "{}",
            "[" * 3000 + "]" * 3000,
            "[" * 70 + "]" * 70,
        ]
    ),
    st.sampled_from(URLS).map(json.dumps),
    st.integers().map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.text(max_size=20).map(lambda text: json.dumps(text, ensure_ascii=False)),
)
FIELDS = [
    "model",
    "prompt",
    "duration",
    "seed",
    "image_url",
    "input",
    "simulate",
    "metadata",
    "fallback_models",
    "url",
    "events",
    "filter",
    "rate_limit",
    "max_in_flight",
    "status",
    "since",
    "until",
    "subscription_id",
    "description",
    "after_s",
    "duplicates",
]
KEYS = st.one_of(st.sampled_from(FIELDS), st.text(max_size=8)).map(json.dumps)


def _array(items: list[str]) -> str:
    return "[" + ",".join(items) + "]"


def _object(pairs: list[tuple[str, str]]) -> str:
    return "{" + ",".join(f"{key}:{value}" for key, value in pairs) + "}"


VALUES = st.recursive(
    ATOMS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(_array),
        st.lists(st.tuples(KEYS, inner), max_size=4).map(_object),
    ),
    max_leaves=12,
)
# Bodies that pass validation but for one value, so that the hostile value reaches deep.
TEMPLATES = [
    {"model": "simulator/default", "prompt": "a fox", "input": {"simulate": {"after_s": 0}}},
    {"model": "apifree/m", "image_url": "https://127.0.0.1:9/a.png", "metadata": {"k": "v"}},
    {"url": "https://127.0.0.1:9/hook", "events": ["video.completed"], "rate_limit": 1},
    {"since": 0, "until": 1},
    {"subscription_id": "sub_x"},
    {"model": "default", "prompt": "a fox", "simulate": {"after_s": 0, "duplicates": 1}},
]


@st.composite
def swapped(draw: st.DrawFn) -> bytes:
    template = draw(st.sampled_from(TEMPLATES))
    key = draw(st.sampled_from([*template, "input"]))
    pairs = [(json.dumps(k), json.dumps(v)) for k, v in template.items() if k != key]
    pairs.append((json.dumps(key), draw(VALUES)))
    return _object(pairs).encode("utf-8", "surrogatepass")


class Body(bytes):
    """A body that a falsifying example prints by its start, not whole (up to 1 MiB)."""

    def __repr__(self) -> str:
        return f"<{len(self)} bytes: {bytes(self[:200])!r}>"


BODIES = st.one_of(
    swapped(),
    VALUES.map(lambda text: text.encode("utf-8", "surrogatepass")),
    st.sampled_from([b"[" * 100_000, b"{" * 50_000, b'{"a":' * 20_000, b"", b"\xff\xfe{}"]),
    st.binary(max_size=300),
).map(Body)

# -- query strings, headers, path parameters ----------------------------------------------

QUERY_VALUES = st.one_of(
    st.sampled_from(["²", "٣", "1" * 400, "-1", "1.5", "0", "100", "101", "1e3", "", " 5"]),
    st.sampled_from(["vid_x", "sub_x", "evt_x", "completed", "video.failed", "%00"]),
    st.text(max_size=30),
)
QUERY = st.dictionaries(
    st.one_of(
        st.sampled_from(
            ["limit", "since", "output", "after", "status", "type", "subscription_id", "url"]
        ),
        st.text(min_size=1, max_size=6),
    ),
    QUERY_VALUES,
    max_size=3,
)
# What h11 lets a client send: latin-1 without controls, no whitespace at either end.
HEADER_TEXT = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="\x7f"),
    max_size=300,
).map(str.strip)
HEADERS = st.fixed_dictionaries(
    {"authorization": st.sampled_from([f"Bearer {API_KEY}", f"Bearer {API_KEY}", "Bearer x"])},
    optional={
        "content-type": st.sampled_from(
            ["application/json", "text/plain", "multipart/form-data; boundary=x", "\xe9/\xe9"]
        ),
        "idempotency-key": HEADER_TEXT,
        "webhook-id": HEADER_TEXT,
        "webhook-timestamp": st.sampled_from(["1", "9" * 400, "-1", "²", "nan"]),
        "webhook-signature": HEADER_TEXT,
        "x-fal-webhook-signature": HEADER_TEXT,
        "accept-encoding": st.sampled_from(["gzip", "identity;q=0", "\xff"]),
    },
).map(lambda headers: {name: value.encode("latin-1") for name, value in headers.items()})


def _forged_simulator_id(payload: bytes) -> str:
    return "sim_" + base64.urlsafe_b64encode(payload).decode().rstrip("=")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    folder = tmp_path_factory.mktemp("hostile")
    port = free_port()
    env = fuzz_env(
        folder,
        allowed_cidrs="127.0.0.0/8",
        public_url=f"http://127.0.0.1:{port}",
        secret_key=SECRET_KEY,
        retry_schedule="1h",
    )
    log = folder / "serve.log"
    with videohooks("serve", env, log, port) as url:
        headers = {"authorization": f"Bearer {API_KEY}"}
        with httpx.Client(base_url=url, headers=headers, timeout=30) as api:
            subscription = api.post("/v1/subscriptions", json={"url": URLS[0]}).json()
            video = api.post("/v1/videos", json=TEMPLATES[0]).json()
            event = _first_event(api)
            yield {
                "url": url,
                "log": log,
                "ids": {
                    "video_id": [video["id"], event["data"]["provider_job_id"]],
                    "subscription_id": [subscription["id"]],
                    "event_id": [event["id"]],
                    "provider": ["simulator", "replicate", "openai", "fal", "nope"],
                    "token": [
                        ReceiverTokens([SECRET_KEY]).issue(video["id"], provider, 0)
                        for provider in ("simulator", "replicate", "fal")
                    ],
                },
            }


def _first_event(api: httpx.Client) -> dict[str, Any]:
    for _ in range(600):
        events = json.loads(api.get("/v1/events").text)["data"]
        if events:
            return dict(events[0])
        time.sleep(0.05)
    raise AssertionError("the setup job made no event")


def path_values(ids: dict[str, list[str]], name: str) -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(ids.get(name, ["x"])),
        st.sampled_from(["%00", "..", "%2F", "²", "a" * 5000, "%ED%A0%80", "%FF"]),
        st.binary(min_size=1, max_size=40).map(_forged_simulator_id),
        st.sampled_from([b"[" * 2000, b'{"m":"x","t":NaN,"s":{}}', b"1" * 5000]).map(
            _forged_simulator_id
        ),
        st.text(
            alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/?#"),
            min_size=1,
            max_size=20,
        ),
    )


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_no_hostile_request_gets_a_5xx_or_a_traceback(service, method: str, path: str) -> None:
    names = re.findall(r"{(\w+)}", path)
    params = st.fixed_dictionaries({name: path_values(service["ids"], name) for name in names})

    @settings(
        max_examples=int(os.environ.get("VIDEOHOOKS_FUZZ_EXAMPLES", "20")),
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(params=params, query=QUERY, headers=HEADERS, body=BODIES)
    def check(
        params: dict[str, str], query: dict[str, str], headers: dict[str, bytes], body: bytes
    ):
        if path.startswith("/simulator") and b"callback" in body:
            return  # the simulator's own relay is not this test's to exercise
        url = service["url"] + path.format(
            **{name: quote(value, safe="%:@!$&'()*+,;=") for name, value in params.items()}
        )
        answer = client.request(method.upper(), url, params=query, headers=headers, content=body)
        request = f"{method.upper()} {url} {query} {headers} {body[:300]!r}"
        assert answer.status_code < 500, f"{request}\n-> {answer.status_code} {answer.text[:500]}"
        if answer.status_code >= 400 and not path.startswith("/simulator"):
            error = answer.json()["error"]
            assert isinstance(error["code"], str) and isinstance(error["message"], str), request
            assert "details" in error, request
        assert tracebacks(service["log"]) == [], request

    with httpx.Client(timeout=60) as client:
        check()
