"""Persistence: the `Store` interface and its backends, chosen by the database URL's scheme."""

from __future__ import annotations

from storage.base import StorageError, Store


async def open_store(url: str) -> Store:
    """Opens the backend for `url`; drivers are imported only when their scheme is used."""
    if url.startswith("sqlite:///"):
        from storage.sqlite import SQLiteStore

        return await SQLiteStore.open(url)
    if url.startswith(("postgresql://", "postgres://")):
        from storage.postgres import PostgresStore  # type: ignore[import-not-found]

        return await PostgresStore.open(url)  # type: ignore[no-any-return]
    raise StorageError(f"unsupported database URL scheme: {url.split(':', 1)[0]}")


__all__ = ["StorageError", "Store", "open_store"]
