"""The HTTP transport: the pools every request goes through, and aiohttp under httpx.

The client speaks httpx (requests, responses, ``MockTransport`` in tests); what carries
the bytes in production is :class:`AiohttpTransport`, the one pool behind
:class:`HttpPools`. Measured on this 2-core machine against the sandbox
(``docs/develop/decisions.md``, "The HTTP client under load"): httpx's own transport
spent about 630 µs of CPU per request, this one about 190 µs, because httpcore checks
every pooled connection on each request (encode/httpx#3215) while aiohttp's pool and C
parser do not.

The package ``httpx-aiohttp`` does the same job but maps a connection dropped in the
middle of a request to ``httpx.ConnectTimeout``, which reads as "never sent": the call
loop would then repeat an EARN that may have been made. Here only failures before the
request left map to ``ConnectError``/``ConnectTimeout``; everything after is a read error
or timeout, which the call loop treats as "may have been processed".
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiohttp
import httpx

from service.capillary.config import CapillaryConfig

CONNECTIONS_PER_POOL = 8
"""Connections of one pool of httpx's own transport; ``max_connections`` is spread over as
many as it takes."""


class HttpPools:
    """Transports that share the requests; each request goes to the least busy one.

    Requests go straight to an httpx transport, not through ``httpx.AsyncClient``: the
    client's layers (merging, auth and redirect flows, cookies) cost as much CPU per
    request as the aiohttp transport under them, and we use none of them. A request waits
    for a free connection here, never inside the transport's pool.
    """

    def __init__(
        self,
        transports: Sequence[httpx.AsyncBaseTransport],
        connections_each: int,
        timeout: httpx.Timeout,
    ) -> None:
        self._transports = list(transports)
        self._slots = [asyncio.Semaphore(connections_each) for _ in self._transports]
        self._busy = [0] * len(self._transports)
        self.timeout = timeout
        self._timeouts = timeout.as_dict()

    @classmethod
    def from_config(
        cls, config: CapillaryConfig, transport: httpx.AsyncBaseTransport | None = None
    ) -> HttpPools:
        """The pools the settings ask for, or one pool on ``transport`` (tests)."""
        t = config.timeouts
        timeout = httpx.Timeout(connect=t.connect, read=t.read, write=t.write, pool=t.pool)
        if transport is not None:
            return cls([transport], config.max_connections, timeout)
        if config.http_transport == "aiohttp":
            # aiohttp's pool under httpx's requests: see the module docstring for why.
            aiohttp_pool = AiohttpTransport(max_connections=config.max_connections)
            return cls([aiohttp_pool], config.max_connections, timeout)
        # httpx's own pool checks every one of its connections on each request
        # (encode/httpx#3215): several small pools keep that cost down.
        pools = max(1, math.ceil(config.max_connections / CONNECTIONS_PER_POOL))
        per_pool = math.ceil(config.max_connections / pools)
        limits = httpx.Limits(max_connections=per_pool, max_keepalive_connections=per_pool)
        return cls(
            [httpx.AsyncHTTPTransport(limits=limits) for _ in range(pools)], per_pool, timeout
        )

    @property
    def first(self) -> httpx.AsyncBaseTransport:
        """The first transport (the token endpoint's plain client goes through it)."""
        return self._transports[0]

    def request(
        self,
        url: str,
        *,
        json: dict[str, Any] | None,
        content: bytes | None,
        params: dict[str, str] | None,
        headers: dict[str, str],
    ) -> httpx.Request:
        """A POST as ``httpx.AsyncClient`` would build it, with our timeouts."""
        return httpx.Request(
            "POST",
            url,
            params=params,
            headers={"Accept": "application/json", **headers},
            json=json,
            content=content,
            extensions={"timeout": self._timeouts},
        )

    async def send(self, request: httpx.Request, deadline: float) -> httpx.Response:
        """Send ``request`` on the least busy transport; its whole answer read in time.

        The slot first: time spent waiting for it is not the request's, and a request that
        never left must not count as one that may have been processed.
        """
        async with self._transport() as transport, asyncio.timeout(deadline):
            response = await transport.handle_async_request(request)
            try:
                await response.aread()
            finally:
                await response.aclose()
        return response

    @contextlib.asynccontextmanager
    async def _transport(self) -> AsyncIterator[httpx.AsyncBaseTransport]:
        """A transport with a free connection, held for one request."""
        index = min(range(len(self._transports)), key=self._busy.__getitem__)
        self._busy[index] += 1
        try:
            async with self._slots[index]:
                yield self._transports[index]
        finally:
            self._busy[index] -= 1

    async def aclose(self) -> None:
        """Close every transport."""
        for transport in self._transports:
            await transport.aclose()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """One aiohttp session with at most ``max_connections`` connections."""

    def __init__(self, *, max_connections: int, keepalive_seconds: float = 30.0) -> None:
        self._max_connections = max_connections
        self._keepalive = keepalive_seconds
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        # Created on first use: an aiohttp session belongs to the running event loop.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._max_connections, keepalive_timeout=self._keepalive
                ),
                # Bytes as they came: httpx decodes by Content-Encoding, as with its own.
                auto_decompress=False,
                # httpx already merged the client's headers; add none of aiohttp's own.
                skip_auto_headers=("User-Agent",),
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request``; the whole body is read (Capillary answers are small JSON)."""
        timeouts = request.extensions.get("timeout", {})
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=timeouts.get("pool"),
            sock_connect=timeouts.get("connect"),
            sock_read=timeouts.get("read"),
        )
        body = await request.aread()
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]
        try:
            async with self._open().request(
                request.method,
                str(request.url),
                headers=headers,
                data=body or None,
                timeout=timeout,
                allow_redirects=False,
                compress=False,
            ) as answer:
                content = await answer.read()
                return httpx.Response(
                    answer.status,
                    headers=list(answer.raw_headers),
                    content=content,
                    request=request,
                    extensions={"http_version": b"HTTP/1.1"},
                )
        except aiohttp.ConnectionTimeoutError as exc:
            raise httpx.ConnectTimeout(str(exc), request=request) from exc
        except aiohttp.ClientConnectorError as exc:
            raise httpx.ConnectError(str(exc), request=request) from exc
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise httpx.ReadTimeout(str(exc) or "read timed out", request=request) from exc
        except aiohttp.ClientError as exc:
            # Sent, or perhaps sent: the answer is what went missing.
            raise httpx.ReadError(str(exc) or type(exc).__name__, request=request) from exc

    async def aclose(self) -> None:
        """Close the session and its connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None


__all__ = ["CONNECTIONS_PER_POOL", "AiohttpTransport", "HttpPools"]
