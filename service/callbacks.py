"""The secrets that sign deliveries to per-job callback URLs, and their rotation.

From VIDEOHOOKS_CALLBACK_SECRET when set (rotate by listing the new secret first and removing the
old one later). Otherwise generated and kept in the database (sealed, see service/encryption.py),
where `rotate` puts a new one in front and keeps the old one signing too until the grace period
ends. Workers re-read them every
few seconds, so a rotation reaches every process without a restart.
"""

from __future__ import annotations

import json
import time

from service.signing import new_secret
from storage import Store

KEY = "callback_secrets"
REFRESH = 5.0


class CallbackSecretsFromEnvironment(Exception):
    pass


class CallbackSecrets:
    def __init__(self, store: Store, configured: tuple[str, ...]) -> None:
        self.store = store
        self.configured = list(configured)
        self._cached: list[str] = self.configured
        self._read_at = 0.0

    async def load(self) -> list[str]:
        """The secrets that sign now, newest first."""
        if self.configured:
            return self.configured
        now = time.time()
        if now - self._read_at > REFRESH:
            state = await self._state()
            self._cached = [state["current"]] + [
                entry["secret"] for entry in state["previous"] if entry["until"] > now
            ]
            self._read_at = now
        return self._cached

    async def rotate(self, grace: float) -> tuple[str, float]:
        """A new secret, and when the old one stops signing."""
        if self.configured:
            raise CallbackSecretsFromEnvironment(
                "VIDEOHOOKS_CALLBACK_SECRET is set: rotate by listing the new secret first"
            )
        state = await self._state()
        now, secret = time.time(), new_secret()
        previous = [entry for entry in state["previous"] if entry["until"] > now]
        state = {
            "current": secret,
            "previous": [{"secret": state["current"], "until": now + grace}, *previous],
        }
        await self.store.meta_set(KEY, self._seal(state))
        self._read_at = 0.0
        return secret, now + grace

    async def _state(self) -> dict:  # type: ignore[type-arg]
        initial = self._seal({"current": new_secret(), "previous": []})
        return dict(
            json.loads(self.store.cipher.open(await self.store.meta_get_or_set(KEY, initial)))
        )

    def _seal(self, state: dict) -> str:  # type: ignore[type-arg]
        return self.store.cipher.seal(json.dumps(state))
