"""Turns settings into collaborators. The one place that knows which class goes where."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from service.actions import Plan
from service.capillary.client import CapillaryClient
from service.clock import Clock, SystemClock
from service.errors import ConfigurationError
from service.events import ReturnEvent
from service.pipeline.consume import KafkaSource
from service.pipeline.execute import Executor
from service.pipeline.history import RecentAttempts
from service.pipeline.process import Planner, Processor
from service.pipeline.publish import KafkaSink
from service.pipeline.run import Runner
from service.policy_file import load_policy
from service.rules import Policy, plan
from service.settings import Settings


@dataclass
class Service:
    """Everything ``return-handler run`` needs, built and connected, not yet started."""

    runner: Runner
    client: CapillaryClient
    policy: Policy

    async def aclose(self) -> None:
        """Release what the runner does not own (the HTTP pool)."""
        await self.client.aclose()


def make_planner(policy: Policy) -> Planner:
    """The rules with this policy bound: exactly what ``return-handler plan`` uses."""

    def planner(event: ReturnEvent, now: datetime) -> Plan:
        return plan(event, policy, now)

    return planner


def build_service(settings: Settings, *, clock: Clock | None = None) -> Service:
    """Build the consumer, the Capillary client, the executor and the producer."""
    clock = clock or SystemClock()
    if settings.capillary is None:
        raise ConfigurationError(
            "no Capillary credentials: set RETURN_HANDLER_CAPILLARY__USERNAME and "
            "RETURN_HANDLER_CAPILLARY__PASSWORD (basic), or RETURN_HANDLER_CAPILLARY__AUTH_MODE="
            "oauth with RETURN_HANDLER_CAPILLARY__OAUTH_KEY and __OAUTH_SECRET (or their _FILE)",
            setting="RETURN_HANDLER_CAPILLARY__USERNAME",
        )
    policy = load_policy(settings.policy_path)
    client = CapillaryClient(settings.capillary, clock=clock)
    executor = Executor(client, flag_redeemed_for_clawback=policy.redeemed.flag_for_clawback)
    sink = KafkaSink(
        bootstrap_servers=settings.kafka.bootstrap_servers,
        client_id=settings.kafka.client_id,
        outcomes_topic=settings.kafka.outcomes_topic,
        dead_letter_topic=settings.kafka.dead_letter_topic,
        clock=clock,
    )
    processor = Processor(
        planner=make_planner(policy),
        executor=executor,
        sink=sink,
        clock=clock,
        history=RecentAttempts(),
    )
    runner = Runner(
        source=KafkaSource(settings.kafka),
        sink=sink,
        processor=processor,
        grace_seconds=settings.shutdown_grace_seconds,
    )
    return Service(runner=runner, client=client, policy=policy)


__all__ = ["Service", "build_service", "make_planner"]
