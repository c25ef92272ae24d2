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
import json as _json
import math
from collections.abc import Sequence
from typing import Any

import aiohttp
import httpx

from service.capillary.config import CapillaryConfig

_URLS_KEPT = 256
"""Parsed URLs kept at most (one per endpoint and query, one per deactivated promotion)."""

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
        self._urls: dict[tuple[str, tuple[tuple[str, str], ...] | None], httpx.URL] = {}

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
        """A POST as ``httpx.AsyncClient`` would build it, with our timeouts.

        Byte for byte what ``httpx.Request("POST", url, params=..., headers={"Accept":
        "application/json", **headers}, json=..., content=...)`` builds (the unit tests
        compare the two), without its per-request cost: the URL is parsed once per URL and
        query, and the headers are laid out here in the order httpx lays them out.
        """
        target = self._url(url, params)
        defaults: tuple[tuple[str, str], ...]
        if content is not None:
            body = content
            # httpx sends no Content-Length for an empty body, then adds "0" (below).
            defaults = (("Content-Length", str(len(body))),) if body else ()
        elif json is not None:
            body = _json_bytes(json)
            defaults = (("Content-Length", str(len(body))), ("Content-Type", "application/json"))
        else:
            body = b""
            defaults = ()
        merged = {"Accept": "application/json", **headers}
        given = {name.lower() for name in merged}
        # httpx: Host, then Content-Length 0 for a POST without one, then the headers
        # given, then those the body adds that were not given (the case of a name aside).
        # Names and values in ASCII, as httpx encodes them (and fails on anything else).
        items: list[tuple[bytes, bytes]] = []
        if "host" not in given and target.host:
            items.append((b"Host", target.netloc))
        lengths = given.intersection(("content-length", "transfer-encoding"))
        if not lengths and not defaults:
            items.append((b"Content-Length", b"0"))
        items.extend(
            (name.encode("ascii"), value.encode("ascii")) for name, value in merged.items()
        )
        items.extend(
            (name.encode("ascii"), value.encode("ascii"))
            for name, value in defaults
            if name.lower() not in given
        )
        request = httpx.Request(
            "POST",
            target,
            headers=items,
            stream=httpx.ByteStream(body),
            extensions={"timeout": self._timeouts},
        )
        request.read()  # as httpx does for a body given whole: ``request.content`` is set
        return request

    def _url(self, url: str, params: dict[str, str] | None) -> httpx.URL:
        """``url`` with ``params`` as its query, parsed once: a handful of URLs serve every
        call (a deactivate's carries its promotion id, so the cache is bounded)."""
        key = (url, tuple(params.items()) if params is not None else None)
        found = self._urls.get(key)
        if found is None:
            if len(self._urls) >= _URLS_KEPT:
                self._urls.clear()
            found = self._urls[key] = (
                httpx.URL(url) if params is None else httpx.URL(url, params=params)
            )
        return found

    async def send(self, request: httpx.Request, deadline: float) -> httpx.Response:
        """Send ``request`` on the least busy transport; its whole answer read in time.

        The slot first: time spent waiting for it is not the request's, and a request that
        never left must not count as one that may have been processed.
        """
        # Inline rather than an async context manager of its own: that cost a generator
        # and two awaits per request for the same bookkeeping.
        busy = self._busy
        index = 0 if len(busy) == 1 else min(range(len(busy)), key=busy.__getitem__)
        busy[index] += 1
        try:
            async with self._slots[index], asyncio.timeout(deadline):
                response = await self._transports[index].handle_async_request(request)
                try:
                    await response.aread()
                finally:
                    await response.aclose()
        finally:
            busy[index] -= 1
        return response

    async def aclose(self) -> None:
        """Close every transport."""
        for transport in self._transports:
            await transport.aclose()


def _json_bytes(value: Any) -> bytes:
    """The JSON body exactly as httpx encodes ``json=`` (``httpx._content.encode_json``)."""
    return _json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode(
        "utf-8"
    )


class AiohttpTransport(httpx.AsyncBaseTransport):
    """One aiohttp session with at most ``max_connections`` connections."""

    def __init__(self, *, max_connections: int, keepalive_seconds: float = 30.0) -> None:
        self._max_connections = max_connections
        self._keepalive = keepalive_seconds
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[
            tuple[float | None, float | None, float | None], aiohttp.ClientTimeout
        ] = {}

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
        timeout = self._timeout(timeouts.get("pool"), timeouts.get("connect"), timeouts.get("read"))
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

    def _timeout(
        self, pool: float | None, connect: float | None, read: float | None
    ) -> aiohttp.ClientTimeout:
        """aiohttp's timeouts for httpx's: one object per distinct set (they are frozen)."""
        key = (pool, connect, read)
        found = self._timeouts.get(key)
        if found is None:
            found = self._timeouts[key] = aiohttp.ClientTimeout(
                total=None, connect=pool, sock_connect=connect, sock_read=read
            )
        return found

    async def aclose(self) -> None:
        """Close the session and its connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None


__all__ = ["CONNECTIONS_PER_POOL", "AiohttpTransport", "HttpPools"]
