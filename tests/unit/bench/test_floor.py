"""The floor bench's requests and records: what it sends is what the service would send."""

from __future__ import annotations

import json
import random

from bench_world import build_mix
from floor import revoke_bodies, sized

from service.capillary.models import LoyaltyBulkRequest


def test_sized_records_are_json_of_exactly_the_size_asked() -> None:
    for size in (150, 200, 1_627):
        value = sized('"event_id":"evt-1","phase":"done"', size)
        assert len(value) == size
        assert json.loads(value)["phase"] == "done"


def test_revoke_bodies_are_loyalty_bulk_requests_the_client_would_send() -> None:
    world = build_mix(600, random.Random(0), "floor-test")
    bodies = revoke_bodies(world)
    assert bodies
    for body in bodies:
        request = LoyaltyBulkRequest.model_validate_json(body)
        assert 1 <= len(request.customers) <= 4
        assert all(customer.earn_ids for customer in request.customers)
