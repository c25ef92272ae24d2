"""Fixtures: a real sandbox on an ephemeral port and an httpx client authenticated for it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from capillary_sandbox import Sandbox, SandboxConfig
from tests.unit.sandbox.helpers import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def config() -> SandboxConfig:
    return SandboxConfig(port=0)


@pytest.fixture
async def sandbox(config: SandboxConfig, clock: FakeClock) -> AsyncIterator[Sandbox]:
    async with Sandbox(config, clock=clock) as running:
        yield running


@pytest.fixture
async def client(sandbox: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=sandbox.base_url, auth=("demo", "demo"), timeout=5.0
    ) as http:
        yield http


@pytest.fixture
async def anonymous(sandbox: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sandbox.base_url, timeout=5.0) as http:
        yield http
