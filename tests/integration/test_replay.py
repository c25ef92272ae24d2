"""``return-handler replay`` on the real broker, with the service running and the sandbox.

One story, as an operator lives it:

1. Live traffic: returns are taken back, three customers have an open cart (their events
   fail: 737 with no retry left), and a broken producer sends three events with a
   lower-case currency (dead letters). Two customers then cancel their returns: what those
   returns took (an enrolment and its earn) is given back (ENROL, EARN).
2. The causes are fixed: the carts close, and corrected copies of the broken events are put
   on the dead-letter topic (what a dead-letter editor does).
3. The dead letters are replayed: the corrected ones run, the broken originals are listed as
   still invalid and not published.
4. The failed events are replayed from the outcomes topic.
5. The whole returns topic is replayed with --include-done in a window of 2, stopped after a
   few outcomes, and resumed from its manifest on disk. The two cancelled returns are held
   back: taking them back again would undo their give-backs.

Then: every replayed event has exactly one outcome, no replay record was published twice,
and the sandbox's ledger shows no benefit taken back twice and no earn issued twice.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from capillary_sandbox import Sandbox, SandboxSeed, demo_seed
from capillary_sandbox.state import CartEarn as SandboxCartEarn
from capillary_sandbox.state import Coupon, Customer, Enrolment, LoyaltyEarn
from service.clock import SystemClock
from service.kafka.span import TopicRecord, read_span
from service.operate.connect import client_options
from service.operate.preview import Selection
from service.operate.replay import (
    ReplayRequest,
    RunOptions,
    RunProgress,
    RunResult,
    new_manifest,
    outgoing_of,
    prepare,
    run,
)
from service.operate.replay.manifest import load, save
from service.operate.sources import Filters, SourceKind
from service.outcome import ActionStatus, OutcomeEvent, OutcomeStatus
from service.policy_file import load_policy
from service.settings import KafkaSettings, ReliabilitySettings, Settings
from service.wiring import build_service, make_planner
from tests.factories import event_dict
from tests.integration.sandbox_config import sandbox_capillary
from tests.integration.waiting import until

ROOT = Path(__file__).resolve().parents[2]
DEADLINE_S = 60.0
PROGRAM, DIRECT, ENROL_PROMOTION = 2714, 202090, 202779
VOUCHER = "69058646b1cfc114606f7bbe"  # PAYMENT_VOUCHER: taken back by deactivation (737 if open)
SERIES = 415446


def _settings(kafka: KafkaSettings, sandbox: Sandbox) -> Settings:
    # An open cart fails the event at once: the failure an operator replays later.
    capillary = sandbox_capillary(sandbox, retry={"open_cart_attempts": 1})
    return Settings(
        kafka=kafka, capillary=capillary, reliability=ReliabilitySettings(retry_max_attempts=1)
    )


class World:
    """The sandbox's customers and benefits, and the events that act on them."""

    def __init__(self) -> None:
        base = demo_seed()
        self.seed = SandboxSeed(
            programs=base.programs,
            loyalty_promotions=base.loyalty_promotions,
            cart_promotions=base.cart_promotions,
            coupon_series=base.coupon_series,
        )
        self.events: list[tuple[int, dict[str, Any]]] = []
        self.cancellations: list[tuple[int, dict[str, Any]]] = []
        self.due_revoked: set[str] = set()
        self.due_earns: set[tuple[int, int]] = set()
        self.open_carts: list[int] = []

    def take_back(self, n: int, *, open_cart: bool = False) -> dict[str, Any]:
        """A full return of an order that earned a direct loyalty earn and a coupon."""
        customer = 730_000_000 + n
        earn, coupon = 40_000_000 + n, 3_900_000_000 + n
        self.seed.customers.append(Customer(id=customer, open_cart=open_cart))
        self.seed.loyalty_earns.append(
            LoyaltyEarn(earn_id=earn, promotion_id=DIRECT, customer_id=customer, issual_id=n + 1)
        )
        self.seed.coupons.append(
            Coupon(id=coupon, code=f"RP{coupon}", series_id=SERIES, customer_id=customer)
        )
        self.due_revoked |= {f"loyalty_earn:{earn}", f"coupon:{coupon}"}
        earned: dict[str, Any] = {
            "loyalty_promotions": [
                {
                    "program_id": PROGRAM,
                    "promotion_id": DIRECT,
                    "promotion_type": "DIRECT",
                    "earn_ids": [earn],
                }
            ],
            "coupons": [{"series_id": SERIES, "codes": [f"RP{coupon}"]}],
        }
        if open_cart:
            voucher = f"{n:024x}"
            self.seed.cart_earns.append(
                SandboxCartEarn(id=voucher, promotion_id=VOUCHER, customer_id=customer)
            )
            self.due_revoked.add(f"cart_earn:{voucher}")
            earned["cart_promotions"] = [
                {"promotion_id": VOUCHER, "mode": "PAYMENT_VOUCHER", "earn_ids": [voucher]}
            ]
            self.open_carts.append(customer)
        event = event_dict(
            event_id=f"rp-take-{n}",
            customer={"id": customer, "registration_source": "INSTORE"},
            earned=earned,
        )
        self.events.append((customer, event))
        return event

    def give_back(self, n: int) -> None:
        """A return that takes back an enrolment and its earn, and its cancellation.

        The return (``rp-give-N-prior``) joins the live traffic; the cancellation
        (``rp-give-N``) goes to :attr:`cancellations`, sent once the return's outcome is
        there: the ledger gives back what the return took, and only that.
        """
        customer = 730_500_000 + n
        issual, earn = 50_000_000 + n, 60_000_000 + n
        self.seed.customers.append(Customer(id=customer))
        self.seed.enrolments.append(
            Enrolment(issual_id=issual, promotion_id=ENROL_PROMOTION, customer_id=customer)
        )
        self.seed.loyalty_earns.append(
            LoyaltyEarn(
                earn_id=earn, promotion_id=ENROL_PROMOTION, customer_id=customer, issual_id=issual
            )
        )
        promotion = {
            "program_id": PROGRAM,
            "promotion_id": ENROL_PROMOTION,
            "promotion_type": "LOYALTY_EARNING",
            "issual_id": str(issual),
        }
        taken = {"loyalty_promotions": [{**promotion, "earn_ids": [earn]}]}
        order = {
            "order_id": f"ORD-rp-give-{n}",
            "transaction_id": f"TX-rp-give-{n}",
            "ordered_at": "2026-11-10T09:00:00Z",
            "currency": "EUR",
        }
        self.due_revoked |= {f"loyalty_earn:{earn}", f"loyalty_enrolment:{issual}"}
        self.due_earns.add((ENROL_PROMOTION, customer))
        who = {"id": customer, "registration_source": "INSTORE"}
        ret = event_dict(event_id=f"rp-give-{n}-prior", order=order, customer=who, earned=taken)
        self.events.append((customer, ret))
        cancel = event_dict(
            event_id=f"rp-give-{n}",
            return_type="CANCELLED",
            order=order,
            customer=who,
            amounts={"before": "0", "after": "120.00"},
            earned={},
            cancelled_return={
                "return_event_id": f"rp-give-{n}-prior",
                "taken_back": taken,
                "enrolments_revoked": [promotion],
            },
        )
        self.cancellations.append((customer, cancel))


async def _produce(
    bootstrap: str, topic: str, records: list[tuple[bytes, bytes, list[tuple[str, bytes]]]]
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key, value, headers in records:
            await producer.send_and_wait(topic, value=value, key=key, headers=headers)
    finally:
        await producer.stop()


async def _read(kafka: KafkaSettings, topic: str) -> list[TopicRecord]:
    return [r async for r in read_span(client_options(kafka), topic)]


async def _outcomes(kafka: KafkaSettings) -> list[OutcomeEvent]:
    return [
        OutcomeEvent.model_validate_json(r.value)
        for r in await _read(kafka, kafka.outcomes_topic)
        if r.value
    ]


async def _replay(
    settings: Settings,
    request: ReplayRequest,
    state_dir: Path,
    *,
    window: int = 50,
    stop: asyncio.Event | None = None,
    progress: Callable[[RunProgress], None] | None = None,
) -> tuple[str, RunResult, Selection]:
    """Preview and execute one replay as the command does; (replay id, result, selection)."""
    now = SystemClock().now()
    selection = await prepare(settings, request, planner=make_planner(load_policy(None)), now=now)
    manifest = new_manifest(selection, request, settings, now)
    save(manifest, state_dir)
    result = await run(
        settings,
        manifest,
        items=outgoing_of(manifest, selection),
        options=RunOptions(window=window, stop=stop or asyncio.Event()),
        progress=progress,
    )
    return manifest.replay_id, result, selection


async def test_replays_fix_dead_letters_and_failures_resume_and_never_do_anything_twice(
    kafka: KafkaSettings, sandbox: Sandbox, tmp_path: Path
) -> None:
    world = World()
    for n in range(4):
        world.take_back(n)
    for n in range(4, 7):
        world.take_back(n, open_cart=True)
    for n in range(2):
        world.give_back(n)
    broken = [world.take_back(n) for n in range(7, 10)]
    sandbox.load_seed(world.seed)
    settings = _settings(kafka, sandbox)
    bootstrap = kafka.bootstrap_servers

    # 1. Live traffic; the broken producer writes the currency in lower case.
    records: list[tuple[bytes, bytes, list[tuple[str, bytes]]]] = []
    for customer, event in world.events:
        value = dict(event)
        if event in broken:
            value["order"] = {**event["order"], "currency": "eur"}
        records.append((str(customer).encode(), json.dumps(value).encode(), []))
    service = build_service(settings)
    stop_service = asyncio.Event()
    serving = asyncio.create_task(service.runner.run(stop_service))
    try:
        await _produce(bootstrap, kafka.returns_topic, records)

        async def first_results() -> bool:
            return len(await _outcomes(kafka)) >= 9 and (
                len(await _read(kafka, kafka.dead_letter_topic)) >= 3
            )

        await until(first_results, "9 outcomes and 3 dead letters")
        # Two customers cancel their returns, now that the ledger holds what those took.
        await _produce(
            bootstrap,
            kafka.returns_topic,
            [(str(c).encode(), json.dumps(e).encode(), []) for c, e in world.cancellations],
        )

        async def cancellations_answered() -> bool:
            return len(await _outcomes(kafka)) >= 11

        await until(cancellations_answered, "the outcomes of the 2 cancellations")
        first = {o.event.event_id: o for o in await _outcomes(kafka)}
        assert {e for e, o in first.items() if o.status is OutcomeStatus.FAILED} == {
            "rp-take-4",
            "rp-take-5",
            "rp-take-6",
        }
        for cancelled in ("rp-give-0", "rp-give-1"):
            given = [
                (a.kind, a.status)
                for a in first[cancelled].actions
                if a.kind in ("enrol_loyalty", "issue_loyalty_earn")
            ]
            assert given == [
                ("enrol_loyalty", ActionStatus.RESTORED),
                ("issue_loyalty_earn", ActionStatus.RESTORED),
            ]
            assert first[cancelled].status is OutcomeStatus.COMPLETED

        # 2. The fixes: the carts close; corrected copies go on the dead-letter topic.
        for customer in world.open_carts:
            sandbox.state.customers_by_id[customer].open_cart = False
        dead = await _read(kafka, kafka.dead_letter_topic)
        fixed = [
            (r.key or b"", json.dumps(broken[n]).encode(), list(r.headers))
            for n, r in enumerate(
                sorted(dead, key=lambda r: json.loads(r.value or b"")["event_id"])
            )
        ]
        await _produce(bootstrap, kafka.dead_letter_topic, fixed)

        # 3. Dead letters: the corrected ones run; the broken originals stay out.
        dead_request = ReplayRequest(
            source=SourceKind.DEAD_LETTERS,
            reason="producer fixed (lower-case currency)",
            filters=Filters(error_types=frozenset({"invalid_event"})),
        )
        selection = await prepare(
            settings, dead_request, planner=make_planner(load_policy(None)), now=SystemClock().now()
        )
        assert (selection.selected, len(selection.invalid), len(selection.chosen)) == (6, 3, 3)
        dead_id, dead_run, _ = await _replay(settings, dead_request, tmp_path)
        assert dead_run.finished
        assert dead_run.by_status() == Counter({"completed": 3})

        # 4. The failed events, from the outcomes topic.
        failed_request = ReplayRequest(
            source=SourceKind.OUTCOMES,
            reason="carts closed",
            filters=Filters(statuses=frozenset({OutcomeStatus.FAILED})),
        )
        failed_id, failed_run, failed = await _replay(settings, failed_request, tmp_path)
        assert len(failed.chosen) == 3
        assert failed_run.finished
        assert failed_run.by_status() == Counter({"completed": 3})

        # 5. Everything again, interrupted after a few outcomes, then resumed from disk.
        all_request = ReplayRequest(
            source=SourceKind.RETURNS, reason="audit: everything again", include_done=True
        )
        interrupt = asyncio.Event()

        def stop_after_four(where: RunProgress) -> None:
            if where.answered >= 4:
                interrupt.set()

        all_id, stopped, everything = await _replay(
            settings, all_request, tmp_path, window=2, stop=interrupt, progress=stop_after_four
        )
        all_count = len(everything.chosen)
        # 7 returns, the 2 cancellations and the 3 fixed ones (their copies on returns).
        assert all_count == 12
        # The cancelled returns are held back: taken back again, what their cancellations
        # gave back would be gone.
        assert sorted((h.event_id, h.why.split(" since")[0]) for h in everything.held_back) == [
            ("rp-give-0-prior", "cancelled by rp-give-0"),
            ("rp-give-1-prior", "cancelled by rp-give-1"),
        ]
        assert stopped.stopped
        assert 4 <= len(stopped.answered) < all_count
        resumed = await run(
            settings, load(tmp_path, all_id), items=None, options=RunOptions(window=2)
        )
        assert resumed.finished
        assert resumed.published_now == all_count - stopped.published
    finally:
        stop_service.set()
        await serving
        await service.aclose()

    # Every replayed event has exactly one outcome, and its record was published once.
    outcomes = await _outcomes(kafka)
    answers = Counter(
        (o.replay.replay_id, o.replay.sequence) for o in outcomes if o.replay is not None
    )
    expected = {(dead_id, s) for s in range(1, 4)} | {(failed_id, s) for s in range(1, 4)}
    expected |= {(all_id, s) for s in range(1, all_count + 1)}
    assert set(answers) == expected
    assert set(answers.values()) == {1}
    published = Counter(
        (r.header("rh-replay-id"), r.header("rh-replay-seq"))
        for r in await _read(kafka, kafka.returns_topic)
        if r.header("rh-replay-id")
    )
    assert len(published) == len(expected)
    assert set(published.values()) == {1}

    replays = [(o, o.replay) for o in outcomes if o.replay is not None]
    assert {o.status for o, _ in replays} == {OutcomeStatus.COMPLETED}
    # What an earlier outcome shows given back was not given back again.
    give_backs = [
        a.status
        for o, replay in replays
        if replay.replay_id == all_id
        for a in o.actions
        if a.kind in ("enrol_loyalty", "issue_loyalty_earn")
    ]
    assert give_backs
    assert set(give_backs) == {ActionStatus.ALREADY_RESTORED}
    # A dead letter's replay names the dead letter it re-drove.
    assert {
        replay.of.topic if replay.of else None
        for _, replay in replays
        if replay.replay_id == dead_id
    } == {kafka.dead_letter_topic}

    ledger = sandbox.ledger()
    assert ledger.revoked_more_than_once == 0
    assert ledger.earns_issued_more_than_once == 0
    assert {k for k, n in ledger.revoked.items() if n == 1} >= world.due_revoked
    assert {(p.promotion_id, p.customer_id) for p in ledger.earns_issued} == world.due_earns


def _env(kafka: KafkaSettings) -> dict[str, str]:
    return {
        **os.environ,
        "RETURN_HANDLER_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "RETURN_HANDLER_KAFKA__RETURNS_TOPIC": kafka.returns_topic,
        "RETURN_HANDLER_KAFKA__OUTCOMES_TOPIC": kafka.outcomes_topic,
        "RETURN_HANDLER_KAFKA__DEAD_LETTER_TOPIC": kafka.dead_letter_topic,
        # The replay reads the ledger: what was given back, which returns were cancelled since.
        "RETURN_HANDLER_KAFKA__STATE_TOPIC": kafka.state_topic,
        "COLUMNS": "120",
    }


async def _command(env: dict[str, str], *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "service", "replay", *args,
        env=env, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def test_the_command_previews_stops_on_ctrl_c_and_resumes(
    kafka: KafkaSettings, sandbox: Sandbox, tmp_path: Path
) -> None:
    world = World()
    events = [world.take_back(n) for n in range(20, 26)]
    sandbox.load_seed(world.seed)
    lines = tmp_path / "events.jsonl"
    lines.write_text("".join(json.dumps(event) + "\n" for event in events))
    env = _env(kafka)
    state = str(tmp_path / "replays")
    select = ["--source", "file", "--file", str(lines), "--reason", "late events from a till"]

    preview = await _command(env, *select, "--json")
    out, err = await preview.communicate()
    assert preview.returncode == 0, err.decode()
    summary = json.loads(out)
    assert (summary["to_replay"], summary["calls_by_endpoint"]) == (
        6,
        {"coupon_revoke": 6, "loyalty_revoke": 6},
    )
    # The preview published nothing.
    assert await _read(kafka, kafka.returns_topic) == []

    # No service runs: the first window is published and nothing comes back; Ctrl-C.
    execute = await _command(
        env, *select, "--execute", "--window", "2", "--grace", "1", "--state-dir", state
    )

    async def window_published() -> bool:
        return len(await _read(kafka, kafka.returns_topic)) >= 2

    await until(window_published, "the first window of the replay")
    execute.send_signal(signal.SIGINT)
    async with asyncio.timeout(30):
        out, err = await execute.communicate()
    text = " ".join(out.decode().split())
    assert execute.returncode == 130, text + err.decode()
    assert (
        "0 of 6 answered (none yet); 2 published and waiting for the service, 4 not published"
        in text
    )
    replay_id = text.split("return-handler replay --resume ")[1].split()[0]
    assert len(await _read(kafka, kafka.returns_topic)) == 2

    # The service comes; the resume publishes the four others and waits for all six.
    service = build_service(_settings(kafka, sandbox))
    stop_service = asyncio.Event()
    serving = asyncio.create_task(service.runner.run(stop_service))
    try:
        resume = await _command(env, "--resume", replay_id, "--state-dir", state, "--window", "2")
        async with asyncio.timeout(DEADLINE_S):
            out, err = await resume.communicate()
    finally:
        stop_service.set()
        await serving
        await service.aclose()
    text = " ".join(out.decode().split())
    assert resume.returncode == 0, text + err.decode()
    assert "6 of 6 answered (completed 6); 4 published by this run" in text
    ledger = sandbox.ledger()
    assert ledger.revoked_more_than_once == 0
    assert {k for k, n in ledger.revoked.items() if n == 1} == world.due_revoked
