"""The replay manifest: written whole before publishing, read back exactly for --resume."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from service.errors import OperatorInputError
from service.operate.replay.manifest import (
    Manifest,
    ManifestEntry,
    ReplayParameters,
    load,
    manifest_path,
    new_replay_id,
    save,
)


def _manifest() -> Manifest:
    return Manifest(
        replay_id=new_replay_id(),
        created_at=datetime(2026, 11, 25, 10, tzinfo=UTC),
        reason="cart closed; INC-4711",
        returns_topic="returns",
        outcomes_topic="return-outcomes",
        dead_letter_topic="returns-dead-letter",
        parameters=ReplayParameters(
            source="outcomes",
            statuses=["failed"],
            since=datetime(2026, 11, 24, tzinfo=UTC),
            allow_reissue=["evt-2"],
            include_cancelled=True,
        ),
        entries=[
            ManifestEntry(sequence=1, source="returns:0:4", event_id="evt-1", allow_cancelled=True),
            ManifestEntry(
                sequence=2,
                source="returns-dead-letter:2:9",
                event_id="evt-2",
                issued=["issue_loyalty_earn:2714/202779:974"],
                allow_reissue=True,
            ),
        ],
    )


def test_a_manifest_reads_back_as_it_was_written(tmp_path: Path) -> None:
    manifest = _manifest()
    state_dir = tmp_path / "deep" / "replays"
    path = save(manifest, state_dir)
    assert path == manifest_path(state_dir, manifest.replay_id)
    assert load(state_dir, manifest.replay_id) == manifest
    assert list(state_dir.iterdir()) == [path]  # no partial file left behind


def test_loading_an_unknown_or_malformed_replay_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(OperatorInputError, match="--state-dir"):
        load(tmp_path, new_replay_id())
    # Not an id: never turned into a path (no ../ tricks).
    with pytest.raises(OperatorInputError, match="not a replay id"):
        load(tmp_path, "../etc/passwd")
    broken = new_replay_id()
    (tmp_path / f"{broken}.json").write_text('{"replay_id": "x"}')
    with pytest.raises(OperatorInputError, match="not a replay manifest"):
        load(tmp_path, broken)


def test_a_manifest_written_before_include_cancelled_existed_still_reads() -> None:
    written = _manifest().model_dump(mode="json")
    del written["parameters"]["include_cancelled"]
    for entry in written["entries"]:
        del entry["allow_cancelled"]
    old = Manifest.model_validate(written)
    assert not old.parameters.include_cancelled
    assert not any(entry.allow_cancelled for entry in old.entries)
