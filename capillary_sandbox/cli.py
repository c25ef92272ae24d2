"""The ``capillary-sandbox`` command: run the stand-in Capillary on a port.

A development tool beside the product: the service's image does not ship it, and it
imports nothing from ``service``.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Annotated

import structlog
import typer
import yaml
from pydantic import ValidationError

from capillary_sandbox.faults import FaultConfig, FaultRule
from capillary_sandbox.server import SandboxConfig, serve_forever

app = typer.Typer(
    name="capillary-sandbox",
    help="A local stand-in for Capillary's five endpoints, with state and fault injection.",
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _configure_logging() -> None:
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer(colors=False)
        if sys.stderr.isatty()
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free port).")] = 8765,
    seed: Annotated[
        Path | None, typer.Option(help="JSON state to start from.", exists=True, dir_okay=False)
    ] = None,
    faults: Annotated[
        Path | None,
        typer.Option(
            help="Faults to start with (JSON or YAML of FaultConfig); change them later "
            "with POST /__admin/faults.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    latency_ms: Annotated[float, typer.Option(help="Added latency on every call.")] = 0.0,
    error_rate: Annotated[float, typer.Option(help="Share of calls answered 503.")] = 0.0,
    throttle_rate: Annotated[
        float, typer.Option(help="Share of calls answered 429 with Retry-After.")
    ] = 0.0,
    rate_limit: Annotated[
        int | None, typer.Option(help="Requests a minute per endpoint; beyond: 429.")
    ] = None,
    oauth_header_name: Annotated[
        str,
        typer.Option(help="The one header that carries an OAuth token (others answer 401)."),
    ] = "X-CAP-API-OAUTH-TOKEN",
) -> None:
    """Run the Capillary sandbox: the five endpoints, stateful, with fault injection."""
    try:
        if faults is not None:
            fault_config = FaultConfig.model_validate(yaml.safe_load(faults.read_text()))
        else:
            fault_config = FaultConfig(
                default=FaultRule(
                    latency_ms=latency_ms, error_rate=error_rate, throttle_rate=throttle_rate
                )
            )
    except (ValidationError, yaml.YAMLError) as exc:
        typer.echo(f"error: {faults} is not a valid fault configuration:\n{exc}", err=True)
        raise typer.Exit(2) from exc
    try:
        config = SandboxConfig(
            host=host,
            port=port,
            seed_path=seed,
            faults=fault_config,
            rate_limit_per_minute={"*": rate_limit} if rate_limit else {},
            oauth_header_name=oauth_header_name,
        )
    except ValidationError as exc:
        typer.echo(f"error: invalid sandbox settings:\n{exc}", err=True)
        raise typer.Exit(2) from exc
    # Only now: configuring structlog points it at this process's stderr for good, which a
    # refused configuration (or a test runner's captured stream) must not leave behind.
    _configure_logging()
    try:
        asyncio.run(serve_forever(config))
    except OSError as exc:
        typer.echo(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}", err=True)
        raise typer.Exit(1) from exc


def main() -> None:
    """Console-script entry point."""
    app()
