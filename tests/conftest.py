from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from service.encryption import Cipher
from storage import Store, open_store
from tests.support.databases import database, database_env
from tests.support.processes import kill_leftovers, reap_leftovers
from tests.support.service import fast_env


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def no_process_outlives_its_test() -> Iterator[None]:
    yield
    kill_leftovers()


@pytest.fixture
async def processes_reaped() -> AsyncIterator[None]:
    """For modules of async tests that start processes (pytestmark): what a failing test left
    running is killed and reaped in the test's loop, before the synchronous backstop above."""
    yield
    await reap_leftovers()


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """SQLite, unless the module runs its tests on every backend:
    pytestmark = pytest.mark.parametrize("backend", BACKENDS, indirect=True)"""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
async def database_url(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    async with database(backend, tmp_path) as url:
        yield url


@pytest.fixture
def env(tmp_path: Path, database_url: str) -> dict[str, str]:
    return fast_env(tmp_path) | database_env(database_url)


@pytest.fixture
def cipher() -> Cipher:
    return Cipher([os.urandom(32)])


@pytest.fixture
async def store(database_url: str, cipher: Cipher) -> AsyncIterator[Store]:
    """A migrated store on the test's backend, opened directly (no service around it)."""
    opened = await open_store(database_url, cipher)
    await opened.migrate()
    yield opened
    await opened.close()
