"""Signing in to the dashboard over HTTP, as a browser's form would."""

from __future__ import annotations

import re

import httpx2 as httpx

from tests.support.service import API_KEY

_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_token(html: str) -> str:
    match = _TOKEN.search(html)
    assert match is not None, "the page has no form with a CSRF token"
    return match.group(1)


async def sign_in(client: httpx.AsyncClient, key: str = API_KEY) -> httpx.Response:
    form = await client.get("/sign-in")
    return await client.post(
        "/sign-in", data={"csrf_token": csrf_token(form.text), "api_key": key, "next": "/"}
    )


async def page_token(client: httpx.AsyncClient, path: str = "/") -> str:
    """The CSRF token of the signed-in session, as the page's forms carry it."""
    return csrf_token((await client.get(path)).text)
