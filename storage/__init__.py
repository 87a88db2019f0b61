"""Persistence: the `Store` interface and its backends, chosen by the database URL's scheme."""

from __future__ import annotations

from storage.base import Cipher, StorageError, Store


async def open_store(url: str, cipher: Cipher) -> Store:
    """Opens the backend for `url`, keeping secrets sealed with `cipher`; drivers are imported
    only when their scheme is used."""
    if url.startswith("sqlite:///"):
        from storage.sqlite import SQLiteStore

        return await SQLiteStore.open(url, cipher)
    if url.startswith(("postgresql://", "postgres://")):
        from storage.postgres import PostgresStore  # type: ignore[import-not-found]

        return await PostgresStore.open(url, cipher)  # type: ignore[no-any-return]
    raise StorageError(f"unsupported database URL scheme: {url.split(':', 1)[0]}")


__all__ = ["Cipher", "StorageError", "Store", "open_store"]
