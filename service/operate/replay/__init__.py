"""``return-handler replay``: re-drive chosen events through the running service.

The tool decides and publishes; the service executes. ``--execute`` publishes each chosen
event again to the returns topic, keyed by customer like any event, with the replay
headers (``pipeline/replays.py``). The running service handles it like any event (the
same validation, rules, rate limits and transaction) except that it is a deliberate
replay: not a duplicate, tried before, and the give-backs an earlier outcome or the ledger
shows as made are not made again. Its outcome says it is a replay, why, and which record it
re-drives. Because the service makes the calls, a replay shares the service's own rate
limiters: no second client draws on Capillary's per-minute budget.

One module per job:

- ``options``: the command line as Typer declares it (types, help texts).
- ``request``: what is asked, checked once: the events and why (``ReplayRequest``), how the
  run goes (``RunOptions``), a new replay or a resume (``ReplayCommand``).
- ``selection``: the source, the outcomes' history and the ledger read; the choice made.
- ``manifest``: a run as decided, written before publishing starts, read by ``--resume``.
- ``outgoing``: the records a run publishes, from a selection or read again for a resume.
- ``drive``: publishing within the window and counting the answers, without Kafka.
- ``publisher``: the producer of the replayed records.
- ``watch``: the answers (outcomes, dead letters) tailed as they come; what is published.
- ``run``: one run against Kafka, new or resumed: the watch, the publisher, the drive.
- ``console``: what the command shows: the preview, the run's bar, how it ended.
- ``command``: the command from start to end, and how it ended (``operate/exits.py``).

The rest of a replay's choice is beside this package: ``operate/sources.py`` (each source
and its filters), ``operate/history.py`` (what earlier outcomes say) and
``operate/preview.py`` (the choice and its summary).
"""

from service.operate.replay.command import main
from service.operate.replay.console import progress_bar
from service.operate.replay.drive import Answers, Publisher, RunProgress, RunResult, drive
from service.operate.replay.manifest import new_manifest
from service.operate.replay.outgoing import Outgoing, outgoing, outgoing_of, reload
from service.operate.replay.publisher import KafkaPublisher
from service.operate.replay.request import ReplayCommand, ReplayRequest, RunOptions
from service.operate.replay.run import run
from service.operate.replay.selection import prepare
from service.operate.replay.watch import AnswerWatch, published_sequences

__all__ = [
    "AnswerWatch",
    "Answers",
    "KafkaPublisher",
    "Outgoing",
    "Publisher",
    "ReplayCommand",
    "ReplayRequest",
    "RunOptions",
    "RunProgress",
    "RunResult",
    "drive",
    "main",
    "new_manifest",
    "outgoing",
    "outgoing_of",
    "prepare",
    "progress_bar",
    "published_sequences",
    "reload",
    "run",
]
