from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.helpers import start_greeters
from transport import Server


@pytest.fixture
async def greeters() -> AsyncIterator[list[Server]]:
    """Four real Greeter servers (pod-1 .. pod-4) on 127.0.0.1 ephemeral ports."""
    servers = await start_greeters(4)
    yield servers
    for server in servers:
        await server.stop(grace=0.5)
