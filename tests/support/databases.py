"""The databases tests run against: SQLite always, PostgreSQL when a server is reachable.

Without one, PostgreSQL tests are skipped with a reason that says they were NOT RUN (pytest -ra
lists it); with VIDEOHOOKS_REQUIRE_POSTGRES=1 (as .ci/run sets) its absence is an error instead.
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest

POSTGRES_URL = os.environ.get(
    "VIDEOHOOKS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


def _reachable() -> bool:
    async def probe() -> None:
        connection = await asyncpg.connect(POSTGRES_URL, timeout=3)
        await connection.close()

    try:
        asyncio.run(probe())
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    return True


POSTGRES = _reachable()
if not POSTGRES and os.environ.get("VIDEOHOOKS_REQUIRE_POSTGRES") == "1":
    raise RuntimeError(
        f"VIDEOHOOKS_REQUIRE_POSTGRES=1 but PostgreSQL is unreachable at {POSTGRES_URL}"
    )

NOT_RUN = (
    f"PostgreSQL tests NOT RUN: no server at {POSTGRES_URL} (set VIDEOHOOKS_TEST_POSTGRES_URL)"
)
BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.skipif(not POSTGRES, reason=NOT_RUN)),
]


# The key tests give the service on PostgreSQL, which requires one (SQLite tests let the service
# generate its key file).
ENCRYPTION_KEY = base64.b64encode(bytes(range(32))).decode()


def database_env(url: str) -> dict[str, str]:
    """The variables that point the service at a test database."""
    env = {"VIDEOHOOKS_DATABASE_URL": url}
    if not url.startswith("sqlite:"):
        env["VIDEOHOOKS_ENCRYPTION_KEY"] = ENCRYPTION_KEY
    return env


@asynccontextmanager
async def database(backend: str, folder: Path) -> AsyncIterator[str]:
    """A fresh, empty database URL: a SQLite file, or a PostgreSQL schema of its own."""
    if backend == "sqlite":
        yield f"sqlite:///{folder}/videohooks.db"
        return
    schema = f"test_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        await admin.execute(f"CREATE SCHEMA {schema}")
        yield f"{POSTGRES_URL}?search_path={schema}"
    finally:
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        await admin.close()
