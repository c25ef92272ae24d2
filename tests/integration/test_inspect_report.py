"""inspect and report on the real broker, over outcomes the in-process service wrote.

Three example events (a full return, a redeemed coupon, the cancellation of the full return)
and the full return delivered again go through the service against the sandbox with the
demo seed and policy; then the commands read the outcomes topic (and inspect the state
topic's ledger) as an operator would.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from capillary_sandbox import Sandbox, SandboxConfig
from service.cli import app
from service.events import ReturnType
from service.kafka.reader import read_topic
from service.operate.inspect import FoundLedger, FoundOutcome
from service.operate.report import OutcomeReport
from service.outcome import ActionStatus, OutcomeEvent, OutcomeStatus
from service.settings import KafkaSettings, Settings
from service.tools import publish_files
from service.wiring import build_service
from tests.integration.sandbox_config import sandbox_capillary

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "events"
FULL = EXAMPLES / "01-full-return.json"
REDEEMED = EXAMPLES / "08-redeemed-coupon.json"
CANCELLED = EXAMPLES / "09-cancelled-return.json"
READ_TIMEOUT_S = 60.0


@pytest.fixture
async def demo_sandbox() -> AsyncIterator[Sandbox]:
    """The sandbox with the demo seed: the brand the example events were written for."""
    async with Sandbox(
        SandboxConfig(port=0, seed_path=ROOT / "examples" / "sandbox-seed.json")
    ) as running:
        yield running


def _settings(kafka: KafkaSettings, sandbox: Sandbox) -> Settings:
    capillary = sandbox_capillary(sandbox)
    # The demo policy flags redeemed benefits for clawback.
    return Settings(kafka=kafka, capillary=capillary, policy_path=ROOT / "examples" / "policy.yaml")


async def _outcomes(kafka: KafkaSettings, count: int) -> list[OutcomeEvent]:
    """The first ``count`` committed outcomes, waiting for them (bounded), as the models."""
    records = await read_topic(
        kafka, kafka.outcomes_topic, count=count, wait_seconds=READ_TIMEOUT_S
    )
    assert len(records) >= count, f"only {len(records)} of {count} outcomes arrived"
    return [OutcomeEvent.model_validate_json(r.value) for r in records]


async def _run_until(settings: Settings, done: Callable[[], Awaitable[None]]) -> None:
    service = build_service(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(service.runner.run(stop))
    try:
        await done()
    finally:
        stop.set()
        await task
        await service.aclose()


def _items(outcome: OutcomeEvent, status: ActionStatus) -> dict[tuple[str, ActionStatus], int]:
    counted = Counter((a.kind, i.status) for a in outcome.actions for i in a.items)
    return {key: n for key, n in counted.items() if key[1] is status}


async def _cli(*args: str) -> Result:
    # The commands run their own event loop (asyncio.run): give them a thread of their own.
    return await asyncio.to_thread(CliRunner().invoke, app, list(args))


async def test_inspect_and_report_read_what_the_service_wrote(
    kafka: KafkaSettings,
    demo_sandbox: Sandbox,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    started = datetime.now(UTC) - timedelta(seconds=1)
    settings = _settings(kafka, demo_sandbox)

    async def handle_then_deliver_again() -> None:
        await publish_files(kafka, [FULL, REDEEMED, CANCELLED], kafka.returns_topic)
        await _outcomes(kafka, 3)
        await publish_files(kafka, [FULL], kafka.returns_topic)
        await _outcomes(kafka, 4)

    await _run_until(settings, handle_then_deliver_again)
    written = {(o.event.event_id, o.status): o for o in await _outcomes(kafka, 4)}
    full = written[("ret-20261120-0001", OutcomeStatus.COMPLETED)]
    cancel = written[("ret-20261120-0001-cancel", OutcomeStatus.COMPLETED)]
    assert ("ret-20261120-0001", OutcomeStatus.DUPLICATE) in written

    monkeypatch.setenv("RETURN_HANDLER_KAFKA__BOOTSTRAP_SERVERS", kafka.bootstrap_servers)
    monkeypatch.setenv("RETURN_HANDLER_KAFKA__OUTCOMES_TOPIC", kafka.outcomes_topic)
    monkeypatch.setenv("RETURN_HANDLER_KAFKA__STATE_TOPIC", kafka.state_topic)
    monkeypatch.setenv("COLUMNS", "200")

    # By order id: the full return, its cancellation and the repeated delivery, newest first.
    by_order = await _cli("inspect", "ORD-100231")
    assert by_order.exit_code == 0, by_order.output
    text = by_order.stdout
    heads = [line.split(" · ")[0] for line in text.splitlines() if " · order ORD-100231" in line]
    assert heads == ["ret-20261120-0001", "ret-20261120-0001-cancel", "ret-20261120-0001"]
    blocks = text.split(" · order ORD-100231")
    assert "duplicate · take_back · FULL" in blocks[1]
    assert "duplicate of" in blocks[1]
    assert "completed · give_back · CANCELLED" in blocks[2]
    assert "restored" in blocks[2]
    assert "completed · take_back · FULL" in blocks[3]
    assert f"{kafka.returns_topic}:" in blocks[3]
    assert f"{kafka.outcomes_topic}:" in blocks[3]
    # Every request id Capillary gave the full return is there for a support ticket.
    request_ids = [rid for a in full.actions for rid in a.request_ids]
    assert request_ids
    assert all(rid in blocks[3] for rid in request_ids)
    assert "revoke_loyalty_earn" in blocks[3]
    # Then the order's ledger: what the return took back and what its cancellation gave back.
    # The layout pads columns; what matters is what stands beside what.
    ledger = re.sub(r" +", " ", text.split(f"Ledger of ORD-100231 ({kafka.state_topic})")[1])
    assert "ret-20261120-0001 · FULL · done" in ledger
    assert "cancelled by ret-20261120-0001-cancel (first: gives back what this took back)" in ledger
    assert "ret-20261120-0001-cancel · CANCELLED · done" in ledger
    assert "take back loyalty_earn:974 revoked" in ledger
    assert "give back loyalty_issue:2714/202779 restored replaces loyalty_earn:974 earned_id=" in (
        ledger
    )

    # By event id, as JSON: the redeemed coupon, refused and flagged for clawback.
    by_event = await _cli("inspect", "ret-20261120-0008", "--json")
    assert by_event.exit_code == 0, by_event.output
    line, last = by_event.stdout.splitlines()
    found = FoundOutcome.model_validate_json(line)
    [redeemed] = FoundLedger.model_validate_json(last).ledger
    assert redeemed.event_id == "ret-20261120-0008"
    assert ("coupon", ActionStatus.REFUSED_REDEEMED) in [
        (i.item.split(":")[0], i.status) for i in redeemed.items
    ]
    assert found.position.topic == kafka.outcomes_topic
    assert found.outcome.event.order_id == "ORD-100315"
    [coupon] = [i for a in found.outcome.actions for i in a.items]
    assert coupon.status is ActionStatus.REFUSED_REDEEMED
    assert coupon.detail.get("clawback") == "flagged"

    missing = await _cli("inspect", "ORD-NOPE", "--since", started.isoformat())
    assert missing.exit_code == 1
    assert "no outcome for 'ORD-NOPE'" in missing.output
    # No outcome since then, but the ledger knows the order: found.
    later = datetime.now(UTC) + timedelta(minutes=1)
    ledger_only = await _cli("inspect", "ORD-100231", "--since", later.isoformat())
    assert ledger_only.exit_code == 0, ledger_only.output
    assert "Ledger of ORD-100231" in ledger_only.stdout
    assert "0 outcome(s) of 'ORD-100231'" in ledger_only.stderr

    # The report over the test's range, as JSON and as a chart.
    chart = tmp_path / "report.png"
    result = await _cli("report", "--since", started.isoformat(), "--json", "--chart", str(chart))
    assert result.exit_code == 0, result.output
    report = OutcomeReport.model_validate_json(result.stdout)
    totals = report.totals
    assert (totals.outcomes, totals.events, totals.duplicates, totals.replays) == (4, 3, 1, 0)
    assert [(e.return_type, e.status, e.outcomes) for e in report.events] == [
        (ReturnType.FULL, OutcomeStatus.COMPLETED, 2),
        (ReturnType.CANCELLED, OutcomeStatus.COMPLETED, 1),
    ]
    # What the report counts is what the outcomes say, item by item.
    assert {(c.kind, c.status): c.items for c in report.taken_back} == _items(
        full, ActionStatus.REVOKED
    )
    assert {(c.kind, c.status): c.items for c in report.given_back} == _items(
        cancel, ActionStatus.RESTORED
    )
    assert totals.taken_back >= 4
    assert totals.given_back >= 2
    assert [(c.kind, c.status, c.items, c.flagged_for_clawback) for c in report.refusals] == [
        ("revoke_coupon_codes", ActionStatus.REFUSED_REDEEMED, 1, 1)
    ]
    assert report.failures == []
    [today] = [d for d in report.days if d.events]
    assert (today.day, today.events, today.refused) == (full.processed_at.date(), 3, 1)
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert chart.stat().st_size > 15_000
