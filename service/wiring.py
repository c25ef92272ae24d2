"""Turns settings into collaborators. The one place that knows which class goes where."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta

from service import __version__
from service.actions import Plan
from service.capillary.client import CapillaryClient
from service.capillary.coalesce import Coalescer
from service.clock import Clock, SystemClock
from service.errors import ConfigurationError
from service.events import ReturnEvent
from service.ids import Ids, RandomIds
from service.kafka.committer import KafkaCommitter
from service.kafka.headers import Envelope, deployment_source
from service.kafka.source import KafkaSource
from service.kafka.state_reader import KafkaStateReader
from service.ledger import LedgerFacts
from service.observe.health import Health
from service.observe.http import SCHEMAS_PATH, HttpPort
from service.observe.metrics import Metrics, Watch
from service.observe.tracing import Tracing
from service.pipeline.execute import Executor
from service.pipeline.flood import DeadLetterCap
from service.pipeline.plan import Planner
from service.pipeline.process import Processor
from service.pipeline.retries import RetryPolicy
from service.pipeline.route import Router
from service.pipeline.run import Runner
from service.pipeline.state import StateStore
from service.policy_file import load_policy
from service.rules import Policy, plan
from service.schemas import OUTCOME_EVENT_FILE, render_all
from service.secret_files import check_readable
from service.settings import Settings


@dataclass
class Service:
    """Everything ``return-handler run`` needs, built and connected, not yet started."""

    runner: Runner
    client: CapillaryClient
    coalescer: Coalescer
    state_reader: KafkaStateReader
    policy: Policy
    metrics: Metrics
    tracing: Tracing
    http: HttpPort

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop``, serving health and metrics once Kafka let us in."""
        try:
            await self.runner.run(stop, started=self.http.start)
        finally:
            await self.http.stop()

    async def aclose(self) -> None:
        """Release what the runner does not own (bulk calls being gathered, the HTTP pool)."""
        await self.coalescer.aclose()
        await self.client.aclose()
        await self.state_reader.aclose()
        self.tracing.shutdown()


def make_planner(policy: Policy) -> Planner:
    """The rules with this policy bound: exactly what ``return-handler plan`` uses."""

    def planner(event: ReturnEvent, now: datetime, facts: LedgerFacts | None = None, /) -> Plan:
        return plan(event, policy, now, facts)

    return planner


def build_service(
    settings: Settings, *, clock: Clock | None = None, ids: Ids | None = None
) -> Service:
    """Build the consumer, scheduler, coalescer, Capillary client, executor and producers."""
    clock = clock or SystemClock()
    ids = ids or RandomIds()
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
    observability = settings.observability
    metrics = Metrics(process=True, created_series=observability.created_series)
    tracing = Tracing.build(
        otlp_endpoint=observability.otlp_endpoint,
        service_name="return-handler",
        instance=settings.kafka.group_instance_id or settings.kafka.client_id,
        version=__version__,
    )
    client = CapillaryClient(settings.capillary, clock=clock, metrics=metrics, tracing=tracing)
    # The configured limits are the brand's: each replica paces at its partitions' share.
    source.on_share = client.share_limits
    # Events in flight call as if alone; the coalescer merges what one request can carry.
    # It times, counts and traces with the client's clock, metrics and tracing.
    coalescer = Coalescer(client, linger_seconds=settings.concurrency.linger_ms / 1000)
    executor = Executor(coalescer, flag_redeemed_for_clawback=policy.redeemed.flag_for_clawback)
    host_name = socket.gethostname()

    def cloudevents_source() -> str:
        # Learnt when the consumer first connects, before any output is published.
        return observability.cloudevents_source or deployment_source(
            source.cluster_id, kafka.group_id
        )

    def outcome_schema() -> str:
        # The bound port, once listening: port 0 takes any free one.
        base = observability.schemas_url or (
            f"http://{host_name}:{http.port or observability.port}{SCHEMAS_PATH}"
        )
        return base + OUTCOME_EVENT_FILE

    committer = KafkaCommitter(
        kafka,
        clock=clock,
        ids=ids,
        envelope=Envelope(source=cloudevents_source, outcome_schema=outcome_schema),
        metrics=metrics,
    )
    state_reader = KafkaStateReader(kafka)
    state = StateStore(state_reader, window=timedelta(days=reliability.dedupe_window_days))
    processor = Processor(
        planner=make_planner(policy),
        executor=executor,
        clock=clock,
        ids=ids,
        state=state,
        starts=committer,
        retry_policy=RetryPolicy(
            max_attempts=reliability.retry_max_attempts,
            initial_delay_seconds=reliability.retry_initial_delay_seconds,
            max_delay_seconds=reliability.retry_max_delay_seconds,
        ),
        # Ten commit intervals: a commit that takes longer is in trouble (the retry path).
        commit_wait_seconds=max(2.0, kafka.commit_interval_ms / 100),
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
        metrics=metrics,
        tracing=tracing,
        router=Router(kafka.returns_topic),
    )
    metrics.watch(
        Watch(
            in_flight=lambda: runner.in_flight,
            ready=lambda: runner.not_ready() is None,
            paused_reason=lambda: runner.paused_reason,
            lag=runner.lag,
            last_progress=runner.last_progress_unix,
        )
    )
    health = Health(
        clock=clock,
        stall_seconds=observability.stall_seconds,
        progress_at=lambda: runner.progress_at,
        not_ready=runner.not_ready,
    )
    http = HttpPort(
        host=observability.host,
        port=observability.port,
        health=health,
        metrics=metrics,
        schemas=render_all(),
    )
    return Service(
        runner=runner,
        client=client,
        coalescer=coalescer,
        state_reader=state_reader,
        policy=policy,
        metrics=metrics,
        tracing=tracing,
        http=http,
    )


__all__ = ["Service", "build_service", "make_planner"]
