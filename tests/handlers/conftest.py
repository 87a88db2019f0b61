"""The fixture every per-provider test module shares."""

from __future__ import annotations

import pytest

from tests.handlers.fakes.base import serve


@pytest.fixture
async def fake(request):
    """The test module's fake provider (the `Fake` class it imports), served over loopback."""
    async with serve(request.module.Fake()) as running:
        yield running
