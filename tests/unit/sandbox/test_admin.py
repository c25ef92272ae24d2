"""Admin API and seed handling of the sandbox."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from capillary_sandbox import (
    Sandbox,
    SandboxConfig,
    SandboxSeed,
    demo_seed,
    serve_forever,
)
from capillary_sandbox.state import load_seed_file

EXAMPLE_SEED = Path(__file__).parents[3] / "examples" / "sandbox-seed.json"
COUPON = "/v2/coupon/revoke"


async def test_state_shows_what_a_revoke_changed(client: httpx.AsyncClient) -> None:
    await client.post(COUPON, json={"couponCodes": ["3138309782"]})

    state = (await client.get("/__admin/state")).json()

    coupon = next(c for c in state["coupons"] if c["code"] == "3138309782")
    assert coupon["revoked"] is True


async def test_posted_seed_replaces_state_and_reset_returns_to_it(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    seed = demo_seed()
    seed.coupons = [c for c in seed.coupons if c.code != "3636820421"]
    posted = await client.post("/__admin/seed", content=seed.model_dump_json())
    await client.post(COUPON, json={"couponCodes": ["3138309782"]})

    reset = await client.post("/__admin/reset")

    assert (posted.status_code, reset.status_code) == (200, 200)
    assert "3636820421" not in sandbox.state.coupons_by_code
    assert not sandbox.state.coupons_by_code["3138309782"][0].revoked


async def test_invalid_seed_is_refused_and_state_kept(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    bad = demo_seed().model_dump(mode="json")
    bad["loyalty_earns"].append({"earn_id": 1, "promotion_id": 1, "customer_id": 555567088})

    response = await client.post("/__admin/seed", json=bad)

    assert response.status_code == 400
    assert response.json()["ok"] is False
    assert 974 in sandbox.state.loyalty_earns


async def test_call_log_records_api_calls_and_can_be_cleared(client: httpx.AsyncClient) -> None:
    response = await client.post(
        COUPON, params={"couponCodeCase": "AS_IT_IS"}, json={"couponCodes": ["3138309782"]}
    )

    calls = (await client.get("/__admin/calls")).json()

    assert len(calls) == 1
    call = calls[0]
    assert call["method"] == "POST"
    assert call["path"] == COUPON
    assert call["query"] == {"couponCodeCase": "AS_IT_IS"}
    assert call["body"] == {"couponCodes": ["3138309782"]}
    assert call["status"] == 200
    assert call["endpoint"] == "coupon_revoke"
    assert call["request_id"] == response.headers["X-CAP-REQUEST-ID"]
    assert call["timestamp"]
    await client.delete("/__admin/calls")
    assert (await client.get("/__admin/calls")).json() == []


async def test_faults_are_set_and_read_over_admin(client: httpx.AsyncClient) -> None:
    posted = await client.post(
        "/__admin/faults/fail_next", json={"endpoint": "coupon_revoke", "kind": "error"}
    )
    pending = (await client.get("/__admin/faults")).json()["fail_next"]
    failed = await client.post(COUPON, json={"couponCodes": ["3138309782"]})
    after = (await client.get("/__admin/faults")).json()["fail_next"]
    replaced = await client.post("/__admin/faults", json={"default": {"error_rate": 1.0}})
    all_failing = await client.post(COUPON, json={"couponCodes": ["3138309782"]})

    assert posted.status_code == 200
    assert [p["endpoint"] for p in pending] == ["coupon_revoke"]
    assert failed.status_code == 503
    assert after == []
    assert replaced.status_code == 200
    assert all_failing.status_code == 503


async def test_invalid_fault_config_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post("/__admin/faults", json={"default": {"error_rate": 2}})

    assert response.status_code == 400


async def test_sandbox_starts_from_seed_file(tmp_path: Path) -> None:
    seed = demo_seed()
    seed.coupons = seed.coupons[:1]
    path = tmp_path / "seed.json"
    path.write_text(seed.model_dump_json())

    async with Sandbox(SandboxConfig(port=0, seed_path=path)) as sandbox:
        assert list(sandbox.state.coupons_by_code) == ["3138309782"]


def test_example_seed_file_is_the_demo_seed() -> None:
    assert load_seed_file(EXAMPLE_SEED) == demo_seed()
    assert json.loads(EXAMPLE_SEED.read_text())["customers"][0]["id"] == 555567088


def test_seed_with_duplicate_coupon_codes_is_refused() -> None:
    seed = demo_seed().model_dump(mode="json")
    seed["coupons"][1]["code"] = seed["coupons"][0]["code"].lower()

    with pytest.raises(ValidationError, match="duplicate coupon code"):
        SandboxSeed.model_validate(seed)


def _generic_copy(**fields: object) -> dict[str, object]:
    """A second coupon of the demo's generic code SALE20 (Tom holds the first)."""
    return {"id": 1247326290, "code": "sale20", "series_id": 415500, **fields}


def test_seed_takes_a_generic_code_issued_to_several_customers() -> None:
    seed = demo_seed().model_dump(mode="json")
    seed["coupons"].append(_generic_copy(customer_id=555567089))

    loaded = SandboxSeed.model_validate(seed)

    assert [c.customer_id for c in loaded.coupons if c.code.upper() == "SALE20"] == [
        555567088,
        555567089,
    ]


@pytest.mark.parametrize(
    "extra",
    [
        _generic_copy(customer_id=555567088),  # twice to Tom
        _generic_copy(),  # issued to no one
        _generic_copy(customer_id=555567089, series_id=415446),  # in another series
        {"id": 1, "code": "3138309782", "series_id": 415446, "customer_id": 555567089},
    ],
)
def test_seed_refuses_a_code_shared_other_than_by_generic_holders(
    extra: dict[str, object],
) -> None:
    seed = demo_seed().model_dump(mode="json")
    seed["coupons"].append(extra)

    with pytest.raises(ValidationError, match="duplicate coupon code"):
        SandboxSeed.model_validate(seed)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("mobile", "+919986000586"),
        ("mobile", "91 9986000586"),
        ("mobile", "0919986000586"),
        ("source", "POS"),
        ("source", "ALL"),
    ],
)
def test_seed_refuses_customer_fields_outside_the_pages_forms(field: str, value: str) -> None:
    seed = demo_seed().model_dump(mode="json")
    seed["customers"][1][field] = value

    with pytest.raises(ValidationError, match=field):
        SandboxSeed.model_validate(seed)


async def test_serve_forever_reports_url_and_stops_on_sigterm() -> None:
    ready: asyncio.Queue[str] = asyncio.Queue()
    task = asyncio.create_task(serve_forever(SandboxConfig(port=0), on_ready=ready.put_nowait))
    url = await asyncio.wait_for(ready.get(), 5)
    async with httpx.AsyncClient(base_url=url) as http:
        health = await http.get("/__admin/health")

    # serve_forever has its own handler for SIGTERM installed while it runs.
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(task, 5)

    assert health.json() == {"ok": True}
