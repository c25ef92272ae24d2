from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.unit.capillary.helpers import Harness, make_harness


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    h = make_harness()
    yield h
    await h.client.aclose()
