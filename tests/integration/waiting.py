"""Waiting for a condition another process makes true: polled, with a deadline."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest


async def until(check: Callable[[], Awaitable[bool]], what: str, seconds: float = 60.0) -> None:
    """Poll ``check`` until it is true; fail naming ``what`` after ``seconds``."""
    try:
        async with asyncio.timeout(seconds):
            # The condition lives in Kafka or another process's HTTP answer: nothing to await.
            while not await check():  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    except TimeoutError:
        pytest.fail(f"not within {seconds:.0f} s: {what}")
