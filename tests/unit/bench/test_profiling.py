"""The profile's top entries (``bench/profiling.py``), from a few collapsed stacks by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from profiling import Entry, main, markdown, parse_collapsed, split_frame, summarise, top_entries

# Three stacks of py-spy's raw format (--function: the line a function starts at), 10 samples:
# run -> handle -> validate (6), run -> handle (1, handle's own), run -> poll (3); a recursion
# (walk calls walk) counts once in total per sample.
RAW = """\
<module> (rh:8);run (service/app.py:40);handle (service/x.py:12);validate (pydantic/main.py:700) 6
<module> (rh:8);run (service/app.py:40);handle (service/x.py:12) 1
<module> (rh:8);run (service/app.py:40);poll (aiokafka/consumer.py:90) 2
<module> (rh:8);walk (service/tree.py:5);walk (service/tree.py:5) 1

a line cut short by a kill
"""


def test_collapsed_lines_become_stacks_root_first_with_their_counts() -> None:
    stacks = parse_collapsed(RAW)
    assert len(stacks) == 4
    frames, count = stacks[0]
    assert (frames[0], frames[-1], count) == (
        "<module> (rh:8)",
        "validate (pydantic/main.py:700)",
        6,
    )


@pytest.mark.parametrize(
    ("frame", "parts"),
    [
        ("handle (service/x.py:12)", ("handle", "service/x.py:12")),
        ("<lambda> (a b/c.py:3)", ("<lambda>", "a b/c.py:3")),
        ("process 1234", ("process 1234", "")),
    ],
)
def test_a_frame_splits_into_its_function_and_where_it_is(
    frame: str, parts: tuple[str, str]
) -> None:
    assert split_frame(frame) == parts


def test_own_samples_are_the_innermost_frames_and_total_counts_a_frame_once_a_sample() -> None:
    samples, own, total = top_entries(parse_collapsed(RAW), top=3)
    assert samples == 10
    assert own == [
        Entry("validate", "pydantic/main.py:700", 6, 60.0),
        Entry("poll", "aiokafka/consumer.py:90", 2, 20.0),
        # A tie (handle and walk, 1 each) goes by name.
        Entry("handle", "service/x.py:12", 1, 10.0),
    ]
    assert total[:3] == [
        Entry("<module>", "rh:8", 10, 100.0),
        Entry("run", "service/app.py:40", 9, 90.0),
        Entry("handle", "service/x.py:12", 7, 70.0),
    ]
    _, _, everything = top_entries(parse_collapsed(RAW), top=25)
    assert Entry("walk", "service/tree.py:5", 1, 10.0) in everything


def test_an_empty_profile_has_no_entries() -> None:
    assert summarise("") == {"samples": 0, "top_own": [], "top_total": []}


def test_the_summary_is_the_result_jsons_profile_and_prints_as_two_tables(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = summarise(RAW, top=2)
    json.dumps(profile)  # JSON-ready
    assert profile["top_own"][0] == {
        "function": "validate",
        "location": "pydantic/main.py:700",
        "samples": 6,
        "percent": 60.0,
    }
    lines = markdown(profile, top=2)
    assert lines[0] == "Top 2 by own samples (10 samples):"
    assert "| 60.0 | 6 | `validate` | `pydantic/main.py:700` |" in lines
    assert "Top 2 by total samples (10 samples):" in lines

    raw = tmp_path / "profile.txt"
    raw.write_text(RAW)
    assert main([str(raw), "--top", "1"]) == 0
    printed = capsys.readouterr().out
    assert "`validate`" in printed
    assert "`poll`" not in printed
