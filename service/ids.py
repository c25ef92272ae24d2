"""Identifiers as a collaborator, like the clock: random UUIDs in production, counted in tests.

Outcome and dead-letter ids are CloudEvents ids (``ce_id``), which consumers deduplicate on
together with ``ce_source``: they must never repeat, across deployments and topic re-creations.
"""

from __future__ import annotations

import uuid
from typing import Protocol


class Ids(Protocol):
    """Makes a new identifier each time it is called. Passed in, never read from a global."""

    def __call__(self) -> uuid.UUID: ...


class RandomIds:
    """Random (version 4) UUIDs: unique without coordination between instances."""

    def __call__(self) -> uuid.UUID:
        return uuid.uuid4()


class CountingIds:
    """UUIDs 00000000-0000-4000-8000-000000000001, ...2, ...: predictable, for tests."""

    def __init__(self) -> None:
        self._count = 0

    def __call__(self) -> uuid.UUID:
        self._count += 1
        return uuid.UUID(int=(0x4000 << 64) | (0x8 << 60) | self._count)


__all__ = ["CountingIds", "Ids", "RandomIds"]
