"""The service's profile: py-spy sampling it during the measured events, and the top entries.

``bench/throughput.py --profile SECONDS`` (``make profile``) starts :class:`PySpy` on the
service's pid just before the measured events are published::

    py-spy record --pid PID --duration SECONDS --rate 100 --function --format raw
        --output bench/results/logs/<run>/profile.txt

and stops it (SIGINT: py-spy writes what it has) once every event has its outcome, if the
duration has not run out by then. ``--function`` files each sample under the line a
function starts at, not the line it was on, so a function is one entry however many of
its lines were sampled. The raw format is the collapsed stacks of Brendan Gregg's
flamegraph tools (``root;caller;callee COUNT`` a line); :func:`top_entries` turns them into
the top functions by own (self) samples and by total samples, which the result JSON keeps
under ``profile``. Idle threads (waiting in epoll, say) are not sampled: a share is of the
samples where the service was running Python code.

Run as a script, it prints those tables for the notes, from a result JSON or a raw file::

    PYTHONPATH=. .venv/bin/python bench/profiling.py bench/results/profile.json [--top 25]

(Not ``profile.py``: the bench scripts import each other from the bench folder as top-level
modules, and ``cProfile`` imports the standard library's ``profile`` by that name.)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[1]
PY_SPY = ROOT / ".venv" / "bin" / "py-spy"
RATE = 100
"""Samples a second: py-spy's default, about 1% of one core's time spent pausing the service."""
TOP = 25

# "name (file:line)"; a frame py-spy could not place has no parentheses.
_FRAME = re.compile(r"^(?P<function>.*?) \((?P<location>[^()]*)\)$")
_SAMPLES = re.compile(r"Samples: (?P<samples>\d+) Errors: (?P<errors>\d+)")


@dataclass(frozen=True)
class Entry:
    """One function of the profile and the samples it was in."""

    function: str
    location: str
    """``file:line``, the line the function starts at (py-spy's ``--function``)."""
    samples: int
    percent: float
    """Of all the profile's samples."""

    def as_json(self) -> dict[str, Any]:
        """For the result JSON."""
        return {
            "function": self.function,
            "location": self.location,
            "samples": self.samples,
            "percent": self.percent,
        }


def parse_collapsed(text: str) -> list[tuple[tuple[str, ...], int]]:
    """Collapsed stacks (``root;...;leaf COUNT`` a line) as (frames root first, count).

    Blank and unreadable lines are skipped: a profile cut short by a kill may end mid-line.
    """
    stacks: list[tuple[tuple[str, ...], int]] = []
    for line in text.splitlines():
        stack, _, count = line.strip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        stacks.append((tuple(stack.split(";")), int(count)))
    return stacks


def split_frame(frame: str) -> tuple[str, str]:
    """``"handle (service/x.py:12)"`` as ``("handle", "service/x.py:12")``; no location: ``""``."""
    match = _FRAME.match(frame)
    if match is None:
        return frame, ""
    return match["function"], match["location"]


def _entries(counts: Counter[str], total: int, top: int) -> list[Entry]:
    # Ties by name, so the same profile always gives the same list.
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:top]
    return [
        Entry(*split_frame(frame), samples, round(100 * samples / total, 2) if total else 0.0)
        for frame, samples in ranked
    ]


def top_entries(
    stacks: Iterable[tuple[Sequence[str], int]], top: int = TOP
) -> tuple[int, list[Entry], list[Entry]]:
    """All samples, and the ``top`` functions by own samples and by total samples.

    Own: the samples a function was the innermost frame of. Total: the samples it was
    anywhere in the stack of, once per sample however deep it recursed.
    """
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for frames, count in stacks:
        if not frames:
            continue
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    return samples, _entries(own, samples, top), _entries(total, samples, top)


def summarise(text: str, top: int = TOP) -> dict[str, Any]:
    """The ``profile`` part of the result from a raw profile: samples and both top lists."""
    samples, own, total = top_entries(parse_collapsed(text), top)
    return {
        "samples": samples,
        "top_own": [e.as_json() for e in own],
        "top_total": [e.as_json() for e in total],
    }


def markdown(profile: dict[str, Any], top: int = TOP) -> list[str]:
    """Both top lists as Markdown tables, for a note."""
    lines: list[str] = []
    for key, title in (("top_own", "own samples"), ("top_total", "total samples")):
        lines += [
            f"Top {top} by {title} ({profile.get('samples')} samples):",
            "",
            "| % | samples | function | where |",
            "| ---: | ---: | --- | --- |",
        ]
        lines += [
            f"| {e['percent']:.1f} | {e['samples']} | `{e['function']}` | `{e['location']}` |"
            for e in profile.get(key, [])[:top]
        ]
        lines.append("")
    return lines


class PySpy:
    """``py-spy record`` on one process, in a child process of its own."""

    def __init__(self, pid: int, seconds: int, folder: Path, rate: int = RATE) -> None:
        self.pid = pid
        self.seconds = seconds
        self.rate = rate
        self.output = folder / "profile.txt"
        self.log_path = folder / "py-spy.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._started = 0.0

    def start(self) -> None:
        """Start sampling; py-spy stops by itself after ``seconds``."""
        self._log = self.log_path.open("ab")
        self._started = time.monotonic()
        self.proc = subprocess.Popen(
            [
                str(PY_SPY),
                "record",
                "--pid",
                str(self.pid),
                "--duration",
                str(self.seconds),
                "--rate",
                str(self.rate),
                "--function",
                "--format",
                "raw",
                "--output",
                str(self.output),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # Its own session: a Ctrl-C at the terminal is the bench's to handle.
            start_new_session=True,
        )

    async def finish(self) -> dict[str, Any]:
        """Stop sampling (while the service still runs) and return the ``profile`` part."""
        proc = self.proc
        assert proc is not None, "start() first"
        if proc.poll() is None:
            # SIGINT is py-spy's Ctrl-C: it stops sampling and writes what it has.
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)
        code = await asyncio.to_thread(_wait, proc, 30)
        sampled = round(time.monotonic() - self._started, 1)
        self.stop_now()
        log = self.log_path.read_text(errors="replace")
        counted = _SAMPLES.search(log)
        result: dict[str, Any] = {
            "path": _shown(self.output),
            "log": _shown(self.log_path),
            "seconds": self.seconds,
            "sampled_seconds": sampled,
            "rate": self.rate,
            "py_spy_exit": code,
            # py-spy's own count of the samples it wrote (idle ones are not) and failed reads.
            "py_spy_samples": int(counted["samples"]) if counted else None,
            "py_spy_errors": int(counted["errors"]) if counted else None,
        }
        if code != 0 or not self.output.exists():
            tail = " ".join(log.strip().splitlines()[-3:])
            return result | {"error": f"py-spy exited {code}: {tail}"}
        return result | summarise(self.output.read_text(errors="replace"))

    def stop_now(self) -> None:
        """Last resort (the run failed): end py-spy without waiting for its profile."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None


def _wait(proc: subprocess.Popen[bytes], seconds: float) -> int | None:
    try:
        return proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        return None


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the top tables of a result JSON's ``profile``, or of a raw profile."""
    parser = argparse.ArgumentParser(description="the top entries of a bench profile")
    parser.add_argument("source", type=Path, help="a result JSON with a profile, or profile.txt")
    parser.add_argument("--top", type=int, default=TOP, help=f"entries a table ({TOP})")
    args = parser.parse_args(argv)
    text = args.source.read_text(errors="replace")
    if args.source.suffix == ".json":
        profile = json.loads(text).get("profile")
        if not profile or "path" not in profile:
            parser.error(f"{args.source} has no profile: run the bench with --profile")
        # The result keeps 25 a list; the raw file has them all.
        raw = ROOT / profile["path"]
        text = raw.read_text(errors="replace") if raw.exists() else ""
        if not text:
            print("\n".join(markdown(profile, args.top)))
            return 0
    print("\n".join(markdown(summarise(text, args.top), args.top)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
