"""API keys: made here and shown once, stored as their SHA-256 hash, checked on every /v1 request.

Keys set in VIDEOHOOKS_API_KEYS are the only ones accepted while it is set; otherwise the stored
keys are. A stored key, once found, is trusted for `CACHE_TTL` seconds without asking the
database again, so a key revoked by any process is refused by every process within that time.
Its last use is recorded at most once a minute.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import time
from collections.abc import Collection

from storage import StorageError, Store
from storage.ids import new_id
from storage.records import ApiKey

CACHE_TTL = 5.0
TOUCH_EVERY = 60.0
# "vhk_" and four characters of the key: enough to tell keys apart, nothing to guess with.
PREFIX_LENGTH = 8


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_api_key(name: str | None = None) -> tuple[str, ApiKey]:
    """A new key, and the record that is stored of it."""
    key = "vhk_" + secrets.token_urlsafe(32)
    record = ApiKey(
        id=new_id("key"),
        hash=hash_api_key(key),
        name=name,
        prefix=key[:PREFIX_LENGTH],
        created_at=time.time(),
    )
    return key, record


class KeyCheck:
    def __init__(self, store: Store, configured_hashes: Collection[str]) -> None:
        self.store = store
        self.configured = frozenset(configured_hashes)
        # Stored keys found valid, until when they are trusted without asking again.
        self._valid_until: dict[str, float] = {}
        self._touched: dict[str, float] = {}

    async def check(self, key: str) -> str | None:
        """The key's hash when it is accepted, else None."""
        key_hash = hash_api_key(key)
        return key_hash if await self.check_hash(key_hash) else None

    async def check_hash(self, key_hash: str) -> bool:
        """Whether the key with this hash is accepted (a dashboard session holds the hash)."""
        if self.configured:
            return key_hash in self.configured
        now = time.monotonic()
        if self._valid_until.get(key_hash, 0.0) <= now:
            if not await self.store.api_key_known(key_hash):
                self._valid_until.pop(key_hash, None)
                return False
            self._valid_until[key_hash] = now + CACHE_TTL
        await self._touch(key_hash)
        return True

    async def _touch(self, key_hash: str) -> None:
        now = time.time()
        if now - self._touched.get(key_hash, 0.0) < TOUCH_EVERY:
            return
        self._touched[key_hash] = now
        # "Last used" is advice for operators: a busy database must not fail the request.
        with contextlib.suppress(StorageError):
            await self.store.touch_api_key(key_hash, now, now - TOUCH_EVERY)
