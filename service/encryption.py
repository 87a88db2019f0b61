"""Secrets at rest: subscription secrets, the receiver-token key and the callback secrets are
stored encrypted, as envelopes `enc1:<key id>:<base64 of nonce ‖ ciphertext>` (AES-256-GCM from
`cryptography`; the key id is the start of the key's SHA-256, naming the key without revealing it).

The keys are VIDEOHOOKS_ENCRYPTION_KEY (newest first): values are sealed with the first and opened
with the key their envelope names, so keys rotate. Without it (the zero-configuration default), a
key is generated once into a file readable by its owner only: beside the database for SQLite, in
the working directory for PostgreSQL — where every other process sharing the database must be
given the same key, or it stops at start, as below, rather than misread a secret.

Every start, and `videohooks migrate`, seals again under the newest key what an older version
stored in clear and what an older key sealed (`seal_stored_secrets`); a value sealed with a key
that is not configured stops the process with exit status 2.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import secrets
from collections.abc import Sequence
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from service.settings import ConfigError, Settings
from storage import Store

log = logging.getLogger("videohooks.encryption")

VARIABLE = "VIDEOHOOKS_ENCRYPTION_KEY"
# Where a generated key is kept for a database that is not a file (PostgreSQL).
KEY_FILE = "videohooks.key"
ENVELOPE = "enc1"
NONCE_BYTES = 12
# Opened values kept, so that the delivery path decrypts each secret once, not on every claim.
OPENED_CACHE = 10_000
# Meta values that hold secrets (service/context.py, service/callbacks.py).
SECRET_META = ("secret_key", "callback_secrets")


class SecretUnreadable(Exception):
    """A stored secret is sealed with a key that is not configured, or was tampered with."""


def key_id(key: bytes) -> str:
    return hashlib.sha256(b"videohooks encryption key " + key).hexdigest()[:8]


class Cipher:
    """Seals and opens stored secrets with a list of keys, newest first."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError("at least one key")
        self._newest = key_id(keys[0])
        self._keys = {key_id(key): AESGCM(key) for key in keys}
        self._opened: dict[str, str] = {}

    @property
    def prefix(self) -> str:
        """What every value sealed with the newest key starts with."""
        return f"{ENVELOPE}:{self._newest}:"

    def seal(self, value: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._keys[self._newest].encrypt(nonce, value.encode(), None)
        return self.prefix + base64.b64encode(nonce + sealed).decode()

    def open(self, value: str) -> str:
        """The clear value; a value an older version stored in clear is returned as it is."""
        if not value.startswith(f"{ENVELOPE}:"):
            return value
        opened = self._opened.get(value)
        if opened is None:
            opened = self._decrypt(value)
            if len(self._opened) >= OPENED_CACHE:
                self._opened.clear()
            self._opened[value] = opened
        return opened

    def _decrypt(self, value: str) -> str:
        _, kid, data = value.split(":", 2)
        aead = self._keys.get(kid)
        if aead is None:
            raise SecretUnreadable(
                f"a stored secret is encrypted with key {kid}, which {VARIABLE} does not list"
            )
        try:
            raw = base64.b64decode(data, validate=True)
            return aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], None).decode()
        except (binascii.Error, ValueError, InvalidTag):
            raise SecretUnreadable(f"a stored secret does not decrypt with key {kid}") from None


def cipher_for(settings: Settings) -> Cipher:
    if settings.encryption_keys:
        return Cipher(settings.encryption_keys)
    return Cipher([_key_from_file(key_file(settings.database_url))])


def key_file(database_url: str) -> Path:
    if not database_url.startswith("sqlite:///"):
        return Path(KEY_FILE)
    database = Path(database_url.removeprefix("sqlite:///"))
    return database.with_name(database.name + ".key")


def _key_from_file(path: Path) -> bytes:
    if path.exists():
        return _read_key(path)
    key = AESGCM.generate_key(bit_length=256)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written whole under another name, then linked into place: a process starting at the same
    # moment either finds no file or a complete one, and only one key wins.
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(base64.b64encode(key).decode() + "\n")
    try:
        os.link(temporary, path)
    except FileExistsError:
        return _read_key(path)
    finally:
        temporary.unlink()
    log.warning(
        f"generated the key that encrypts stored secrets; in production set {VARIABLE} instead, "
        "the same in every process that shares the database",
        extra={"key_file": str(path)},
    )
    return key


def _read_key(path: Path) -> bytes:
    try:
        key = base64.b64decode(path.read_text().strip(), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise ConfigError(VARIABLE, f"unset, and the key file {path} holds no base64 32-byte key")
    return key


async def seal_stored_secrets(store: Store, cipher: Cipher) -> None:
    """Seals under the newest key every stored secret that is in clear or under an older key."""
    try:
        resealed = await store.reseal_secrets()
        for name in SECRET_META:
            value = await store.meta_get(name)
            if value is not None and not value.startswith(cipher.prefix):
                resealed += await store.meta_replace(name, value, cipher.seal(cipher.open(value)))
    except SecretUnreadable as exc:
        raise ConfigError(VARIABLE, str(exc)) from None
    if resealed:
        log.info("encrypted stored secrets under the newest key", extra={"count": resealed})
