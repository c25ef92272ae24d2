"""The service's one small HTTP port: /healthz, /readyz, /metrics and /schemas/, in its loop.

Served by aiohttp (already the transport under httpx) inside the service's own event loop,
so a blocked loop cannot answer its liveness probe either.

/schemas/<file> serves the documents ``return-handler schemas`` writes (``render_all()``),
so the ``ce_dataschema`` of an outcome is an address that answers with its schema.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client.aiohttp import make_aiohttp_handler

from service.errors import ConfigurationError
from service.logging import get_logger
from service.observe.health import Health, Verdict
from service.observe.metrics import Metrics

log = get_logger(__name__)


def _route(check: Callable[[], Verdict]) -> Handler:
    async def answer(_: web.Request) -> web.Response:
        verdict = check()
        return web.json_response(
            {"ok": verdict.ok, "reason": verdict.reason}, status=200 if verdict.ok else 503
        )

    return answer


SCHEMAS_PATH = "/schemas/"
_MEDIA_TYPES = {".json": "application/schema+json", ".yaml": "application/yaml"}


def _documents(documents: Mapping[str, str]) -> Handler:
    async def answer(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        content = documents.get(name)
        if content is None:
            return web.json_response(
                {"error": f"no schema {name!r}; published: {', '.join(sorted(documents))}"},
                status=404,
            )
        media_type = next(
            (kind for suffix, kind in _MEDIA_TYPES.items() if name.endswith(suffix)),
            "text/plain",
        )
        return web.Response(text=content, content_type=media_type, charset="utf-8")

    return answer


class HttpPort:
    """Serves health, readiness, metrics and the published schemas until stopped."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        health: Health,
        metrics: Metrics,
        schemas: Mapping[str, str] | None = None,
    ) -> None:
        """``schemas``: file name to content, served at /schemas/<name>."""
        self._host = host
        self._port = port
        app = web.Application()
        app.router.add_get("/healthz", _route(health.live))
        app.router.add_get("/readyz", _route(health.ready))
        app.router.add_get("/metrics", make_aiohttp_handler(metrics.exposed))
        app.router.add_get(SCHEMAS_PATH + "{name}", _documents(dict(schemas or {})))
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        self.port: int | None = None
        """The bound port, once started (useful when ``port`` was 0)."""
        self.listening = asyncio.Event()
        """Set once the port is bound."""

    async def start(self) -> int:
        """Listen; a port already taken stops the service with what to change."""
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise ConfigurationError(
                f"cannot listen on {self._host}:{self._port}: {exc.strerror}",
                setting="RETURN_HANDLER_OBSERVABILITY__PORT",
            ) from exc
        server = site._server  # aiohttp has no public accessor for the bound socket
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self._port
        self.listening.set()
        log.info("http_listening", host=self._host, port=self.port)
        return self.port

    async def stop(self) -> None:
        """Stop listening."""
        await self._runner.cleanup()


__all__ = ["HttpPort"]
