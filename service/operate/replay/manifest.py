"""A replay run's manifest: what it re-drives, written before the first event is published.

``--resume ID`` needs the run exactly as it was decided: the events in their order, where
each was read, what each must not give back again, and the parameters. Which of them were
published and answered is not kept here: Kafka knows (the returns topic's ``rh-replay-*``
headers, the outcomes' ``replay``), so a run killed at any point resumes correctly.

A JSON file per run under the state directory (``--state-dir``); it holds event ids and
record positions, no event bodies, so nothing personal is copied out of Kafka. A new run's
manifest is made from its selection (:func:`new_manifest`).
"""

from __future__ import annotations

import os
import re
import uuid
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from service.errors import OperatorInputError
from service.operate.preview import Selection
from service.settings import Settings

if TYPE_CHECKING:
    # Only for the annotation: the request module takes DEFAULT_STATE_DIR from here.
    from service.operate.replay.request import ReplayRequest

DEFAULT_STATE_DIR = Path(".return-handler/replays")
MANIFEST_VERSION: Literal["1"] = "1"
_REPLAY_ID = re.compile(r"^[0-9a-f]{32}$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ManifestEntry(_Model):
    """One event of the run."""

    sequence: int = Field(ge=1)
    """Its place in the run; the ``rh-replay-seq`` header and the outcome's ``replay.sequence``."""
    source: str
    """Where its bytes are read: ``topic:partition:offset`` or ``file:NAME:LINE``."""
    event_id: str
    issued: list[str] = Field(default_factory=list)
    """Give-back action ids earlier outcomes show as made: not made again."""
    allow_reissue: bool = False
    """The operator allowed those give-backs again for this event (``--allow-reissue``)."""
    allow_cancelled: bool = False
    """A return the ledger showed cancelled since, taken back again (``--include-cancelled``)."""


class ReplayParameters(_Model):
    """The command line that chose the events, for the record and for resuming."""

    source: Literal["dead-letters", "outcomes", "returns", "file"]
    file: str | None = None
    """The file source's absolute path: a resume reads the lines again from it."""
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None
    offsets: list[str] = Field(default_factory=list)
    error_types: list[str] = Field(default_factory=list)
    statuses: list[str] = Field(default_factory=list)
    promotion: str | None = None
    event_ids: list[str] = Field(default_factory=list)
    include_done: bool = False
    allow_reissue: list[str] = Field(default_factory=list)
    include_cancelled: bool = False


class Manifest(_Model):
    """A replay run, as decided when it started."""

    schema_version: Literal["1"] = MANIFEST_VERSION
    replay_id: str = Field(pattern=_REPLAY_ID.pattern)
    created_at: AwareDatetime
    reason: str = Field(min_length=1)
    returns_topic: str
    """Where the events are published; a resume with other settings is refused."""
    outcomes_topic: str
    dead_letter_topic: str
    parameters: ReplayParameters
    entries: list[ManifestEntry]


def new_manifest(
    selection: Selection, request: ReplayRequest, settings: Settings, now: datetime
) -> Manifest:
    """The manifest of a new run of this selection (a new id)."""
    filters = request.filters
    return Manifest(
        replay_id=new_replay_id(),
        created_at=now,
        reason=request.reason,
        returns_topic=settings.kafka.returns_topic,
        outcomes_topic=settings.kafka.outcomes_topic,
        dead_letter_topic=settings.kafka.dead_letter_topic,
        parameters=ReplayParameters(
            source=request.source.value,
            file=str(request.file) if request.file is not None else None,
            since=filters.span.since,
            until=filters.span.until,
            offsets=list(request.offsets),
            error_types=sorted(filters.error_types),
            statuses=sorted(str(s) for s in filters.statuses),
            promotion=filters.promotion,
            event_ids=sorted(filters.event_ids),
            include_done=request.include_done,
            allow_reissue=sorted(request.allow_reissue),
            include_cancelled=request.include_cancelled,
        ),
        entries=[
            ManifestEntry(
                sequence=chosen.sequence,
                source=chosen.candidate.source,
                event_id=chosen.event.event_id,
                issued=sorted(chosen.issued),
                allow_reissue=chosen.allow_reissue,
                allow_cancelled=chosen.allow_cancelled,
            )
            for chosen in selection.chosen
        ],
    )


def new_replay_id() -> str:
    """A fresh run id: 32 hex digits."""
    return uuid.uuid4().hex


def manifest_path(state_dir: Path, replay_id: str) -> Path:
    """Where a run's manifest lives."""
    return state_dir / f"{replay_id}.json"


def save(manifest: Manifest, state_dir: Path) -> Path:
    """Write the manifest (whole or not at all) and return its path."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = manifest_path(state_dir, manifest.replay_id)
    partial = path.with_suffix(".json.partial")
    partial.write_text(manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")
    # A rename is atomic: a crash leaves the old file or the new one, never half of one.
    os.replace(partial, path)
    return path


def load(state_dir: Path, replay_id: str) -> Manifest:
    """The manifest of run ``replay_id``."""
    if not _REPLAY_ID.match(replay_id):
        raise OperatorInputError(
            f"{replay_id!r} is not a replay id (32 hex digits, as the replay printed)",
            option="--resume",
        )
    path = manifest_path(state_dir, replay_id)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise OperatorInputError(
            f"no replay {replay_id} in {state_dir}; give the --state-dir it was started with",
            option="--state-dir",
        ) from exc
    try:
        return Manifest.model_validate_json(text)
    except ValidationError as exc:
        raise OperatorInputError(
            f"{path} is not a replay manifest: {exc.errors(include_url=False)[0]['msg']}",
            file=str(path),
        ) from exc


__all__ = [
    "DEFAULT_STATE_DIR",
    "Manifest",
    "ManifestEntry",
    "ReplayParameters",
    "load",
    "manifest_path",
    "new_manifest",
    "new_replay_id",
    "save",
]
