"""Rough requests-per-second of the sandbox: cart revokeEarn, each request a distinct earn.

    .venv/bin/python bench/sandbox_rps.py [--seconds 5] [--concurrency 50] [--in-process]
                                          [--client httpx|aiohttp]

By default the sandbox runs in a child process (through ``serve_forever``, stopped with
SIGTERM) so that the load generator and the server do not share one event loop. httpx is
the load generator the service uses; at 50 concurrent requests it is itself the bottleneck
(encode/httpx#3215), so ``--client aiohttp`` shows what the server can take.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import signal
import time
from multiprocessing.connection import Connection

import aiohttp
import httpx

from capillary_sandbox import Sandbox, SandboxConfig, demo_seed, serve_forever
from capillary_sandbox.state import CartEarn, SandboxSeed

PROMOTION = "69117663b1cfc114606fd7fb"
CUSTOMER = 566881933
EARNS = 200_000


def bench_seed() -> SandboxSeed:
    seed = demo_seed()
    seed.cart_earns.extend(
        CartEarn.model_construct(
            id=f"{n:024x}",
            promotion_id=PROMOTION,
            customer_id=CUSTOMER,
            redeemed=False,
            revoked=False,
        )
        for n in range(EARNS)
    )
    return seed


def _child(conn: Connection, seed_path: str) -> None:
    config = SandboxConfig(port=0, seed_path=seed_path)
    asyncio.run(serve_forever(config, on_ready=conn.send))


PATH = "/api_gateway/v1/promotions/revokeEarn"


async def _load(
    base_url: str, seconds: float, concurrency: int, client: str
) -> tuple[int, dict[int, int]]:
    counter = iter(range(EARNS))
    statuses: dict[int, int] = {}
    deadline = time.monotonic() + seconds

    def body() -> dict[str, object]:
        earn = f"{next(counter):024x}"
        return {
            "customerId": CUSTOMER,
            "earnRevokeDetails": [{"promotionId": PROMOTION, "earnIds": [earn]}],
        }

    def count(status: int) -> None:
        statuses[status] = statuses.get(status, 0) + 1

    if client == "aiohttp":
        auth = {"Authorization": aiohttp.encode_basic_auth("demo", "demo")}
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(base_url, headers=auth, connector=connector) as session:

            async def aiohttp_worker() -> None:
                while time.monotonic() < deadline:
                    async with session.post(PATH, json=body()) as response:
                        await response.read()
                        count(response.status)

            await asyncio.gather(*(aiohttp_worker() for _ in range(concurrency)))
        return sum(statuses.values()), statuses

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, auth=("demo", "demo"), limits=limits) as http:

        async def httpx_worker() -> None:
            while time.monotonic() < deadline:
                count((await http.post(PATH, json=body())).status_code)

        await asyncio.gather(*(httpx_worker() for _ in range(concurrency)))
    return sum(statuses.values()), statuses


async def _in_process(seconds: float, concurrency: int, client: str) -> tuple[int, dict[int, int]]:
    async with Sandbox(SandboxConfig(port=0), seed=bench_seed()) as sandbox:
        return await _load(sandbox.base_url, seconds, concurrency, client)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--in-process", action="store_true")
    parser.add_argument("--client", choices=["httpx", "aiohttp"], default="httpx")
    args = parser.parse_args()
    if args.in_process:
        total, statuses = asyncio.run(_in_process(args.seconds, args.concurrency, args.client))
    else:
        seed_path = f"/tmp/sandbox-bench-seed-{os.getpid()}.json"
        with open(seed_path, "w", encoding="utf-8") as handle:
            handle.write(bench_seed().model_dump_json())
        parent, child = multiprocessing.Pipe()
        process = multiprocessing.Process(target=_child, args=(child, seed_path))
        process.start()
        try:
            base_url = parent.recv()
            total, statuses = asyncio.run(
                _load(base_url, args.seconds, args.concurrency, args.client)
            )
        finally:
            if process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
            process.join(10)
            os.unlink(seed_path)
    mode = ("in-process" if args.in_process else "separate process") + f", {args.client}"
    print(
        f"{total} requests in {args.seconds:.0f} s with {args.concurrency} concurrent "
        f"({mode}): {total / args.seconds:.0f} req/s, statuses {statuses}"
    )


if __name__ == "__main__":
    main()
