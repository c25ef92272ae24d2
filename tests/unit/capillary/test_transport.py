"""The pools build each request byte for byte as httpx itself would, and send it."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from service.capillary.transport import AiohttpTransport, HttpPools

LOYALTY = "https://eu.api.capillarytech.com/v2/promotion/bulk/revokeEnrolAndEarn"
COUPON = "http://127.0.0.1:8080/v2/coupon/revoke"
BODY = {
    "bulkAction": "REVOKE_EARN",
    "promotionDetails": {"programId": 1, "promotionId": 55},
    "customers": [{"identifierValue": "Zoë 7", "source": "INSTORE", "earnIds": [1, 2]}],
}
TIMEOUT = httpx.Timeout(connect=1.0, read=2.0, write=3.0, pool=4.0)


def _pools(transport: httpx.AsyncBaseTransport | None = None) -> HttpPools:
    return HttpPools([transport or httpx.MockTransport(lambda r: httpx.Response(200))], 2, TIMEOUT)


def _as_httpx_builds_it(
    url: str,
    *,
    json: dict[str, Any] | None,
    content: bytes | None,
    params: dict[str, str] | None,
    headers: dict[str, str],
) -> httpx.Request:
    """How the pools built a request before: httpx's own ``Request``."""
    return httpx.Request(
        "POST",
        url,
        params=params,
        headers={"Accept": "application/json", **headers},
        json=json,
        content=content,
        extensions={"timeout": TIMEOUT.as_dict()},
    )


CASES: list[dict[str, Any]] = [
    {"url": LOYALTY, "json": BODY, "content": None, "params": None},
    {
        "url": COUPON,
        "json": {"couponCodes": ["A"]},
        "content": None,
        "params": {"couponCodeCase": "UPPER"},
    },
    {"url": COUPON + "?x=1", "json": None, "content": None, "params": {"a": "b c"}},
    {"url": COUPON, "json": None, "content": b"{}", "params": None},
    {"url": COUPON, "json": None, "content": b"", "params": None},
    {"url": COUPON, "json": BODY, "content": b"[1]", "params": None},
    {"url": COUPON, "json": None, "content": None, "params": {}},
]
HEADERS: list[dict[str, str]] = [
    {"Authorization": "Basic abc=="},
    {
        "Authorization": "Bearer t",
        "X-CAP-API-ATTRIBUTION-ENTITY-TYPE": "TILL",
        "X-CAP-API-ATTRIBUTION-ENTITY-ID": "t-1",
        "Content-Type": "application/json",
    },
    {"content-type": "text/plain", "accept": "*/*"},
    {"Host": "elsewhere", "Content-Length": "3"},
    {"Transfer-Encoding": "chunked"},
]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("headers", HEADERS)
def test_requests_are_byte_identical_to_httpx_own(
    case: dict[str, Any], headers: dict[str, str]
) -> None:
    pools = _pools()
    for _ in range(2):  # the second time from the parsed URL kept
        built = pools.request(headers=dict(headers), **case)
        expected = _as_httpx_builds_it(headers=dict(headers), **case)
        assert built.method == expected.method
        assert str(built.url) == str(expected.url)
        assert built.url.raw_path == expected.url.raw_path
        assert built.headers.raw == expected.headers.raw
        assert built.content == expected.content
        assert built.extensions == expected.extensions


def test_non_ascii_and_nan_are_encoded_as_httpx_does() -> None:
    pools = _pools()
    body = {"name": "Zoë", "n": 1.5}
    built = pools.request(LOYALTY, json=body, content=None, params=None, headers={})
    assert built.content == '{"name":"Zoë","n":1.5}'.encode()
    with pytest.raises(ValueError, match="Out of range float"):
        pools.request(LOYALTY, json={"n": float("nan")}, content=None, params=None, headers={})


def test_a_header_outside_ascii_fails_as_with_httpx() -> None:
    headers = {"X-CAP-API-ATTRIBUTION-ENTITY-ID": "tïll"}
    with pytest.raises(UnicodeEncodeError):
        _as_httpx_builds_it(LOYALTY, json=None, content=None, params=None, headers=headers)
    with pytest.raises(UnicodeEncodeError):
        _pools().request(LOYALTY, json=None, content=None, params=None, headers=headers)


def test_the_parsed_urls_kept_are_bounded() -> None:
    pools = _pools()
    for promotion in range(1000):
        request = pools.request(
            f"{COUPON}/{promotion}", json=None, content=None, params=None, headers={}
        )
        assert request.url.path == f"/v2/coupon/revoke/{promotion}"
    assert len(pools._urls) <= 256


def test_send_reads_the_answer_and_frees_the_slot() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True}, headers={"X-CAP-REQUEST-ID": "r-1"})

    pools = _pools(httpx.MockTransport(answer))

    async def run() -> httpx.Response:
        request = pools.request(LOYALTY, json=BODY, content=None, params=None, headers={})
        return await pools.send(request, 5.0)

    response = asyncio.run(run())
    assert response.json() == {"ok": True}
    assert response.headers["X-CAP-REQUEST-ID"] == "r-1"
    assert (
        seen[0].content
        == _as_httpx_builds_it(LOYALTY, json=BODY, content=None, params=None, headers={}).content
    )
    assert pools._busy == [0]


def test_send_spreads_over_the_least_busy_transport() -> None:
    gate = asyncio.Event()
    both_sent = asyncio.Event()
    used: list[int] = []

    def transport(index: int) -> httpx.AsyncBaseTransport:
        async def answer(request: httpx.Request) -> httpx.Response:
            used.append(index)
            if len(used) == 2:
                both_sent.set()
            await gate.wait()
            return httpx.Response(200)

        return httpx.MockTransport(answer)

    pools = HttpPools([transport(0), transport(1)], 1, TIMEOUT)

    async def run() -> None:
        request = pools.request(COUPON, json=None, content=None, params=None, headers={})
        sends = [asyncio.create_task(pools.send(request, 5.0)) for _ in range(2)]
        # Each transport has one slot: both requests are in flight at once only if the
        # second went to the other transport (on the same one it would wait, and time out).
        await asyncio.wait_for(both_sent.wait(), 5.0)
        gate.set()
        await asyncio.gather(*sends)

    asyncio.run(run())
    assert sorted(used) == [0, 1]
    assert pools._busy == [0, 0]


def test_aiohttp_timeouts_are_made_once_per_set() -> None:
    transport = AiohttpTransport(max_connections=1)
    first = transport._timeout(4.0, 1.0, 2.0)
    assert first is transport._timeout(4.0, 1.0, 2.0)
    assert (first.total, first.connect, first.sock_connect, first.sock_read) == (
        None,
        4.0,
        1.0,
        2.0,
    )
    assert transport._timeout(None, None, None) is not first
