"""Dashboard sign-in: an API key, checked by the API's own KeyCheck (service/api_keys.py), opens a
session stored in the database. The cookie holds the session's id, signed; never the key. A
session ends when it expires, when its owner signs out (the row is deleted, so a copied cookie
is dead too), or when its key stops being valid. Every state-changing form carries a CSRF token
bound to the session; the sign-in form one bound to a cookie of its own (double submit)."""

from __future__ import annotations

import hmac
import secrets
import time
from typing import Any

from itsdangerous import BadData, URLSafeSerializer, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

from service.context import Context
from storage.records import DashboardSession

COOKIE = "videohooks_session"
SIGN_IN_COOKIE = "videohooks_sign_in"
SESSION_TTL = 12 * 3600.0
SIGN_IN_TTL = 3600
FLASH_TTL = 60


class Sessions:
    def __init__(self, context: Context) -> None:
        self.context = context
        # itsdangerous signs with the last key and verifies with all; ours are newest first.
        keys = list(reversed(context.secret_keys))
        self._cookie = URLSafeTimedSerializer(keys, salt="videohooks.dashboard.session")
        self._csrf = URLSafeSerializer(keys, salt="videohooks.dashboard.csrf")
        self._sign_in = URLSafeTimedSerializer(keys, salt="videohooks.dashboard.sign-in")
        self._flash = URLSafeTimedSerializer(keys, salt="videohooks.dashboard.flash")

    async def open(self, api_key: str) -> str | None:
        """A new session for a valid key: the cookie value; None for a key the API refuses."""
        key_hash = await self.context.keys.check(api_key.strip()) if api_key.strip() else None
        if key_hash is None:
            return None
        now = time.time()
        session = DashboardSession(
            id=secrets.token_urlsafe(24),
            key_hash=key_hash,
            created_at=now,
            expires_at=now + SESSION_TTL,
        )
        await self.context.store.create_session(session)
        return str(self._cookie.dumps(session.id))

    async def current(self, request: Request) -> DashboardSession | None:
        cookie = request.cookies.get(COOKIE)
        if not cookie:
            return None
        try:
            session_id = self._cookie.loads(cookie, max_age=SESSION_TTL)
        except BadData:
            return None
        return await self.still_valid(str(session_id))

    async def still_valid(self, session_id: str) -> DashboardSession | None:
        session = await self.context.store.get_session(session_id)
        if session is None or session.expires_at <= time.time():
            return None
        if not await self.context.keys.check_hash(session.key_hash):
            return None
        return session

    async def close(self, session: DashboardSession) -> None:
        await self.context.store.delete_session(session.id)

    def csrf_token(self, session: DashboardSession) -> str:
        return str(self._csrf.dumps(session.id))

    def csrf_valid(self, session: DashboardSession, token: str) -> bool:
        try:
            return hmac.compare_digest(str(self._csrf.loads(token)), session.id)
        except BadData:
            return False

    # -- the sign-in form's own token (there is no session yet) -------------------------------

    def sign_in_token(self, nonce: str) -> str:
        return str(self._sign_in.dumps(nonce))

    def sign_in_valid(self, request: Request, token: str) -> bool:
        nonce = request.cookies.get(SIGN_IN_COOKIE, "")
        try:
            signed = self._sign_in.loads(token, max_age=SIGN_IN_TTL)
        except BadData:
            return False
        return bool(nonce) and hmac.compare_digest(str(signed), nonce)

    # -- the one-time message a page shows after a form's redirect --------------------------

    def flash(self, ok: bool, text: str) -> str:
        return str(self._flash.dumps({"ok": ok, "text": text}))

    def read_flash(self, value: str) -> dict[str, Any] | None:
        try:
            flash = self._flash.loads(value, max_age=FLASH_TTL) if value else None
        except BadData:
            return None
        return flash if isinstance(flash, dict) else None

    # -- cookies ----------------------------------------------------------------------------

    def secure(self, request: Request) -> bool:
        public_url = self.context.settings.public_url or ""
        return request.url.scheme == "https" or public_url.startswith("https://")

    def set_session(self, request: Request, response: Response, value: str) -> None:
        response.set_cookie(
            COOKIE,
            value,
            max_age=int(SESSION_TTL),
            httponly=True,
            samesite="lax",
            secure=self.secure(request),
            path="/",
        )
        response.delete_cookie(SIGN_IN_COOKIE, path="/sign-in")

    def clear_session(self, request: Request, response: Response) -> None:
        response.delete_cookie(
            COOKIE, path="/", httponly=True, samesite="lax", secure=self.secure(request)
        )

    def set_sign_in(self, request: Request, response: Response, nonce: str) -> None:
        response.set_cookie(
            SIGN_IN_COOKIE,
            nonce,
            max_age=SIGN_IN_TTL,
            httponly=True,
            samesite="strict",
            secure=self.secure(request),
            path="/sign-in",
        )
