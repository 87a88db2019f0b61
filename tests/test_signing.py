"""Outgoing signatures are made by hand on the hot path (service/signing.py): they must be
exactly what the `standardwebhooks` package makes and accepts, for every form of secret."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook

from service import signing

BODY = json.dumps({"id": "evt_1", "type": "video.completed", "data": {"prompt": "ünïcode"}})


def unpadded(secret: str) -> str:
    return secret.rstrip("=")


def raw_base64(secret: str) -> str:
    return secret.removeprefix("whsec_")


@pytest.mark.parametrize("form", [lambda s: s, unpadded, raw_base64])
def test_a_signature_is_the_packages_own(form) -> None:  # type: ignore[no-untyped-def]
    secret = form("whsec_" + base64.b64encode(b"k" * 23).decode())  # 23 bytes: padded base64
    timestamp = int(time.time())
    header = signing.signature_header([secret], "evt_1", timestamp, BODY.encode())
    assert header == Webhook(secret).sign("evt_1", datetime.fromtimestamp(timestamp, UTC), BODY)


def test_every_secret_of_a_rotation_signs_and_each_verifies() -> None:
    new, old = signing.new_secret(), signing.new_secret()
    headers = signing.headers([new, old], "evt_2", int(time.time()), BODY.encode())
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (new, old):
        assert Webhook(secret).verify(BODY, headers) == json.loads(BODY)
    with pytest.raises(Exception, match="No matching signature"):
        Webhook(signing.new_secret()).verify(BODY, headers)


def test_an_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError):
        signing.signature_header(["whsec_"], "evt_3", int(time.time()), b"{}")
