"""Turns settings into collaborators. The one place that knows which class goes where."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from service.actions import Plan
from service.capillary.client import CapillaryClient
from service.clock import Clock, SystemClock
from service.errors import ConfigurationError
from service.events import ReturnEvent
from service.pipeline.coalesce import Coalescer
from service.pipeline.commit import KafkaCommitter, KafkaStateReader
from service.pipeline.consume import KafkaSource
from service.pipeline.execute import Executor
from service.pipeline.flood import DeadLetterCap
from service.pipeline.process import Planner, Processor
from service.pipeline.retries import RetryPolicy
from service.pipeline.run import Runner
from service.pipeline.state import StateStore
from service.policy_file import load_policy
from service.rules import Policy, plan
from service.secret_files import check_readable
from service.settings import Settings


@dataclass
class Service:
    """Everything ``return-handler run`` needs, built and connected, not yet started."""

    runner: Runner
    client: CapillaryClient
    coalescer: Coalescer
    policy: Policy

    async def aclose(self) -> None:
        """Release what the runner does not own (bulk calls being gathered, the HTTP pool)."""
        await self.coalescer.aclose()
        await self.client.aclose()


def make_planner(policy: Policy) -> Planner:
    """The rules with this policy bound: exactly what ``return-handler plan`` uses."""

    def planner(event: ReturnEvent, now: datetime) -> Plan:
        return plan(event, policy, now)

    return planner


def build_service(settings: Settings, *, clock: Clock | None = None) -> Service:
    """Build the consumer, scheduler, coalescer, Capillary client, executor and producers."""
    clock = clock or SystemClock()
    if settings.capillary is None:
        raise ConfigurationError(
            "no Capillary credentials: set RETURN_HANDLER_CAPILLARY__USERNAME and "
            "RETURN_HANDLER_CAPILLARY__PASSWORD (basic), or RETURN_HANDLER_CAPILLARY__AUTH_MODE="
            "oauth with RETURN_HANDLER_CAPILLARY__OAUTH_KEY and __OAUTH_SECRET (or their _FILE)",
            setting="RETURN_HANDLER_CAPILLARY__USERNAME",
        )
    if settings.policy_path is not None:
        check_readable(settings.policy_path, "RETURN_HANDLER_POLICY_PATH")
    policy = load_policy(settings.policy_path)
    kafka, reliability = settings.kafka, settings.reliability
    # Kafka's pieces first: they load the TLS files, and fail before anything holds resources.
    source = KafkaSource(kafka)
    committer = KafkaCommitter(kafka, clock=clock)
    state = StateStore(
        KafkaStateReader(kafka), window=timedelta(days=reliability.dedupe_window_days)
    )
    client = CapillaryClient(settings.capillary, clock=clock)
    # Events in flight call as if alone; the coalescer merges what one request can carry.
    coalescer = Coalescer(client, linger_seconds=settings.concurrency.linger_ms / 1000, clock=clock)
    executor = Executor(coalescer, flag_redeemed_for_clawback=policy.redeemed.flag_for_clawback)
    processor = Processor(
        planner=make_planner(policy),
        executor=executor,
        clock=clock,
        state=state,
        starts=committer,
        retry_policy=RetryPolicy(
            max_attempts=reliability.retry_max_attempts,
            initial_delay_seconds=reliability.retry_initial_delay_seconds,
            max_delay_seconds=reliability.retry_max_delay_seconds,
        ),
    )
    runner = Runner(
        source=source,
        committer=committer,
        processor=processor,
        state=state,
        probe=client.probe,
        dead_letter_cap=DeadLetterCap(
            max_share=reliability.dead_letter_max_share,
            min_count=reliability.dead_letter_min_count,
        ),
        clock=clock,
        grace_seconds=settings.shutdown_grace_seconds,
        commit_interval_seconds=kafka.commit_interval_ms / 1000,
        events_in_flight=settings.concurrency.events_in_flight,
        probe_initial_seconds=reliability.probe_initial_seconds,
        probe_max_seconds=reliability.probe_max_seconds,
    )
    return Service(runner=runner, client=client, coalescer=coalescer, policy=policy)


__all__ = ["Service", "build_service", "make_planner"]
