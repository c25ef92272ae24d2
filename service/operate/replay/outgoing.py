"""The records a run publishes: from a new selection, or read again to resume a run."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from service.errors import OperatorInputError
from service.events import ReturnEvent
from service.operate.connect import client_options
from service.operate.preview import Selection
from service.operate.replay.manifest import Manifest, ManifestEntry
from service.operate.sources import candidate, fetch
from service.pipeline.replays import Replay
from service.settings import Settings
from service.tools import key_for


@dataclass(frozen=True)
class Outgoing:
    """One event as it is published for the service."""

    sequence: int
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


def outgoing(
    manifest: Manifest, entry: ManifestEntry, event: ReturnEvent, value: bytes
) -> Outgoing:
    """The record that re-drives one entry: the event's bytes, keyed by customer, replay headers."""
    replay = Replay(
        replay_id=manifest.replay_id,
        reason=manifest.reason,
        source=entry.source,
        sequence=entry.sequence,
        issued=frozenset(entry.issued),
        allow_reissue=entry.allow_reissue,
        allow_cancelled=entry.allow_cancelled,
    )
    return Outgoing(
        sequence=entry.sequence, key=key_for(event), value=value, headers=replay.headers()
    )


def outgoing_of(manifest: Manifest, selection: Selection) -> list[Outgoing]:
    """The records of a new run, from the selection it was made of."""
    by_sequence = {chosen.sequence: chosen for chosen in selection.chosen}
    return [
        outgoing(
            manifest,
            entry,
            by_sequence[entry.sequence].event,
            by_sequence[entry.sequence].candidate.value,
        )
        for entry in manifest.entries
    ]


async def reload(settings: Settings, manifest: Manifest, sequences: set[int]) -> list[Outgoing]:
    """The records of a resumed run's entries, read again from where they were found.

    The bytes must still be the event the manifest names: a file edited since, or a
    record gone with the topic's retention, stops the resume with what to do.
    """
    entries = [e for e in manifest.entries if e.sequence in sequences]
    found: dict[str, bytes | None] = {}
    files = [e for e in entries if e.source.startswith("file:")]
    if files:
        path = Path(manifest.parameters.file or "")
        try:
            text = await asyncio.to_thread(path.read_text, encoding="utf-8")
        except OSError as exc:
            raise OperatorInputError(
                f"{path} cannot be read to resume the replay: {exc}", file=str(path)
            ) from exc
        lines = text.splitlines()
        for entry in files:
            number = int(entry.source.rpartition(":")[2])
            found[entry.source] = lines[number - 1].encode() if number <= len(lines) else None
    records = await fetch(
        client_options(settings.kafka), [e.source for e in entries if e.source not in found]
    )
    found.update({position: record.value for position, record in records.items()})
    result = []
    for entry in entries:
        read = candidate(entry.source, found.get(entry.source))
        if read.event is None or read.event.event_id != entry.event_id:
            raise OperatorInputError(
                f"{entry.source} no longer holds event {entry.event_id} (sequence "
                f"{entry.sequence}); start a new replay of what is left instead",
                replay_id=manifest.replay_id,
            )
        result.append(outgoing(manifest, entry, read.event, read.value))
    return result


__all__ = ["Outgoing", "outgoing", "outgoing_of", "reload"]
