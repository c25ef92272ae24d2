"""The outage probe against the real sandbox: only the documented request that changes nothing.

The sandbox's call log records every request it receives; the tests read what the probe
sent while Capillary was down, refusing credentials and back, alone and inside the service.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from capillary_sandbox import FaultConfig, FaultRule, Sandbox
from capillary_sandbox.server import CallRecord
from service.capillary.client import CapillaryClient
from service.outcome import OutcomeStatus
from service.settings import KafkaSettings
from service.wiring import build_service
from tests.factories import event_bytes
from tests.integration.test_end_to_end import _produce, _settings
from tests.integration.test_reliability import _fast, _outcomes, _until

# The coupon page's "No coupon code or customer info is passed": answered 756.
NAMING_NOTHING: dict[str, object] = {}


def _probe_like(call: CallRecord) -> bool:
    """A request that names nothing: what a probe sends (and no event's request is)."""
    if call.endpoint == "deactivate":  # its request has no body: it names in the URL
        return "customerId" not in call.query
    return call.body in (None, {}, [])


async def test_probe_sends_only_a_coupon_revoke_naming_nothing(sandbox: Sandbox) -> None:
    settings = _settings(KafkaSettings(), sandbox)  # only the Capillary part is used
    assert settings.capillary is not None
    before = sandbox.state.snapshot()
    async with CapillaryClient(settings.capillary) as client:
        sandbox.faults.configure(FaultConfig(default=FaultRule(error_rate=1.0)))
        down = await client.probe()
        sandbox.faults.configure(FaultConfig())
        up = await client.probe()
        sandbox.refuse_credentials(True)
        refused = await client.probe()

    assert down is not None
    assert "503" in down
    assert up is None
    assert refused is not None
    assert "401" in refused
    assert [(c.method, c.endpoint, c.body, c.status) for c in sandbox.calls] == [
        ("POST", "coupon_revoke", NAMING_NOTHING, 503),
        ("POST", "coupon_revoke", NAMING_NOTHING, 400),  # the page's 756
        ("POST", "coupon_revoke", NAMING_NOTHING, 401),
    ]
    assert sandbox.state.snapshot() == before


async def test_service_outage_probes_with_the_documented_request_only(
    kafka: KafkaSettings, sandbox: Sandbox
) -> None:
    sandbox.faults.configure(FaultConfig(default=FaultRule(error_rate=1.0)))
    settings = _fast(kafka, sandbox)
    await _produce(
        kafka.bootstrap_servers,
        kafka.returns_topic,
        *(event_bytes(event_id=f"evt-probe-{n}") for n in range(3)),
    )
    service = build_service(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(service.runner.run(stop))
    try:
        stats = service.runner.stats
        await _until(service.runner, lambda: stats.pauses >= 1 and stats.probes >= 2)
        sandbox.faults.configure(FaultConfig())
        outcomes = await _outcomes(kafka, 3)
    finally:
        stop.set()
        await task
        await service.aclose()

    assert {o.status for o in outcomes} == {OutcomeStatus.COMPLETED}
    probes = [c for c in sandbox.calls if _probe_like(c)]
    # The paused loop's probes, and the shared one before each retry-alone decision.
    assert len(probes) >= stats.probes >= 2
    assert [(c.method, c.endpoint, c.body) for c in probes] == [
        ("POST", "coupon_revoke", NAMING_NOTHING)
    ] * len(probes)
    assert Counter(c.status for c in probes if c.fault is None) == Counter({400: 1}), (
        "down until the documented 756 came back, then no more probes"
    )
    # Every cart request named a customer and its earns: none was a malformed write.
    assert [
        c.body
        for c in sandbox.calls
        if c.endpoint == "cart_revoke_earn"
        and not (
            isinstance(c.body, dict)
            and c.body.get("customerId")
            and c.body.get("earnRevokeDetails")
        )
    ] == []
