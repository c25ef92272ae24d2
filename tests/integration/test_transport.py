"""The aiohttp transport under httpx, against the sandbox's real server: answers, and
failures mapped so the call loop can tell "never sent" from "may have been processed"."""

from __future__ import annotations

import socket

import httpx
import pytest

from capillary_sandbox.faults import FaultConfig, FaultRule
from capillary_sandbox.server import Sandbox
from service.capillary.transport import AiohttpTransport

REVOKE = "/v2/promotion/bulk/revokeEnrolAndEarn"
TIMEOUT = {"connect": 2.0, "read": 2.0, "write": 2.0, "pool": 2.0}


def _post(url: str, *, read_timeout: float = 2.0) -> httpx.Request:
    return httpx.Request(
        "POST",
        url,
        json={"bulkAction": "REVOKE_EARN"},
        headers={"Accept": "application/json", "X-Probe": "yes"},
        extensions={"timeout": {**TIMEOUT, "read": read_timeout}},
    )


async def _send(transport: AiohttpTransport, request: httpx.Request) -> httpx.Response:
    response = await transport.handle_async_request(request)
    await response.aread()
    return response


async def test_a_request_and_its_answer_go_through_unchanged(sandbox: Sandbox) -> None:
    transport = AiohttpTransport(max_connections=4)
    try:
        response = await _send(
            transport,
            httpx.Request(
                "GET", f"{sandbox.base_url}/__admin/health", extensions={"timeout": TIMEOUT}
            ),
        )
        # An endpoint without credentials: Capillary's 401, body and headers as sent.
        refused = await _send(transport, _post(sandbox.base_url + REVOKE))
    finally:
        await transport.aclose()
    assert response.status_code == 200
    assert isinstance(response.json(), dict)
    assert refused.status_code == 401
    assert refused.headers.get("content-type", "").startswith("application/json")


async def test_nothing_listening_is_a_connect_error_the_request_never_left() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    transport = AiohttpTransport(max_connections=1)
    try:
        with pytest.raises(httpx.ConnectError):
            await _send(transport, _post(f"http://127.0.0.1:{port}{REVOKE}"))
    finally:
        await transport.aclose()


async def test_a_connection_dropped_after_the_request_is_a_read_error_not_a_connect_error(
    sandbox: Sandbox,
) -> None:
    # The request reached the server: an EARN in it may have been made. Reading this as
    # "never sent" (httpx-aiohttp maps it to ConnectTimeout) would let it be repeated.
    sandbox.faults.configure(FaultConfig(default=FaultRule(drop_rate=1.0)))
    transport = AiohttpTransport(max_connections=1)
    try:
        with pytest.raises(httpx.TransportError) as raised:
            await _send(transport, _post(sandbox.base_url + REVOKE))
    finally:
        await transport.aclose()
    assert isinstance(raised.value, httpx.ReadError)
    assert not isinstance(raised.value, httpx.ConnectError | httpx.ConnectTimeout)


async def test_an_answer_that_never_comes_is_a_read_timeout(sandbox: Sandbox) -> None:
    sandbox.faults.configure(FaultConfig(default=FaultRule(hang_rate=1.0)))
    transport = AiohttpTransport(max_connections=1)
    try:
        with pytest.raises(httpx.ReadTimeout):
            await _send(
                transport,
                _post(sandbox.base_url + REVOKE, read_timeout=0.2),
            )
    finally:
        await transport.aclose()
