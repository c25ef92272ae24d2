"""Partitions coming and going: set up when assigned, settled before they are given up.

A partition is taken only once its transactions are open (fencing the previous owner) and
its state restored. On revocation, what of it has not started is the next owner's; what
runs finishes and is committed here before the rebalance completes, so a partition never
changes owner with work half done.
"""

from __future__ import annotations

import asyncio

from service.logging import get_logger
from service.pipeline.commit import CommitStep
from service.pipeline.consume import Intake
from service.pipeline.schedule import Scheduler

log = get_logger(__name__)


class Rebalance:
    """The source's ``on_assigned`` and ``on_revoked``."""

    def __init__(self, *, commits: CommitStep, intake: Intake, scheduler: Scheduler) -> None:
        self._commits = commits
        self._intake = intake
        self._scheduler = scheduler

    async def assigned(self, partitions: list[int]) -> None:
        """Set up the partitions not set up yet; one that fails is tried again on its first
        record (``consume.py``)."""
        new = [p for p in partitions if not self._commits.owned(p).ready]
        opened = self._commits.open
        results = await asyncio.gather(*(opened(p) for p in new), return_exceptions=True)
        for partition, result in zip(new, results, strict=True):
            if isinstance(result, BaseException):
                log.warning("partition_setup_failed", partition=partition, error=str(result))

    async def revoked(self, partitions: list[int]) -> None:
        """Finish and commit what runs of the partitions, then give them up."""
        revoked = set(partitions)
        for partition in revoked:
            self._commits.owned(partition).closing = True
        try:
            self._intake.drop(revoked, read_again=False)
            self._scheduler.withdraw(revoked)
            await self._scheduler.drain(revoked)
            await self._commits.commit(revoked)
            for partition in partitions:
                await self._commits.close(partition)
        finally:
            for partition in revoked:
                self._commits.reopen(partition)


__all__ = ["Rebalance"]
