"""The HTTP transport: httpx's client API over aiohttp's connection pool.

The client speaks httpx (requests, responses, ``MockTransport`` in tests); what carries
the bytes in production is this transport. Measured on this 2-core machine against the
sandbox (``README.md``, "The HTTP client under load"): httpx's own transport spent about
630 µs of CPU per request, this one about 190 µs, because httpcore checks every pooled
connection on each request (encode/httpx#3215) while aiohttp's pool and C parser do not.

The package ``httpx-aiohttp`` does the same job but maps a connection dropped in the
middle of a request to ``httpx.ConnectTimeout``, which reads as "never sent": the call
loop would then repeat an EARN that may have been made. Here only failures before the
request left map to ``ConnectError``/``ConnectTimeout``; everything after is a read error
or timeout, which the call loop treats as "may have been processed".
"""

from __future__ import annotations

import aiohttp
import httpx


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


__all__ = ["AiohttpTransport"]
