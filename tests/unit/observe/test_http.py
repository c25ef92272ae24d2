"""The HTTP port as the composition root builds it: /metrics without ``*_created`` unless
asked for, and the published schemas at /schemas/."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import httpx
import pytest
from jsonschema import Draft202012Validator
from prometheus_client.parser import text_string_to_metric_families

from service.capillary.config import CapillaryConfig
from service.schemas import OUTCOME_EVENT_FILE, render_all
from service.settings import ObservabilitySettings, Settings
from service.wiring import build_service

HttpClient = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def served() -> HttpClient:
    """``async with served(created_series=...) as http``: the service's port, nothing else."""

    @asynccontextmanager
    async def serve(**observability: object) -> AsyncIterator[httpx.AsyncClient]:
        settings = Settings(
            capillary=CapillaryConfig(username="u", password="p"),
            observability=ObservabilitySettings.model_validate(
                {"host": "127.0.0.1", "port": 0, **observability}
            ),
        )
        service = build_service(settings)
        port = await service.http.start()
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                yield http
        finally:
            await service.http.stop()
            await service.aclose()

    return serve


def _sample_names(text: str) -> set[str]:
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


async def test_metrics_have_no_created_series_by_default(served: HttpClient) -> None:
    async with served() as http:
        names = _sample_names((await http.get("/metrics")).text)
    assert "return_handler_outcomes_total" in names
    assert sorted(n for n in names if n.endswith("_created")) == []


async def test_metrics_have_created_series_when_asked_for(served: HttpClient) -> None:
    async with served(created_series=True) as http:
        names = _sample_names((await http.get("/metrics")).text)
    assert "return_handler_outcomes_created" in names
    assert "return_handler_transactions_created" in names


async def test_openmetrics_scrapes_have_no_created_series_either(served: HttpClient) -> None:
    async with served() as http:
        response = await http.get(
            "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
        )
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert "_created" not in response.text


@pytest.mark.parametrize("name", sorted(render_all()))
async def test_every_published_document_is_served_as_rendered(
    served: HttpClient, name: str
) -> None:
    async with served() as http:
        response = await http.get(f"/schemas/{name}")
    assert response.status_code == 200
    assert response.text == render_all()[name]
    expected = "application/schema+json" if name.endswith(".json") else "application/yaml"
    assert response.headers["content-type"].split(";")[0] == expected


async def test_the_outcome_schema_served_is_a_json_schema(served: HttpClient) -> None:
    async with served() as http:
        schema = (await http.get(f"/schemas/{OUTCOME_EVENT_FILE}")).json()
    Draft202012Validator.check_schema(schema)
    assert schema["title"] == "OutcomeEvent"


@pytest.mark.parametrize("name", ["nope.json", "..%2Fsettings.py", "outcome-event.v2.json"])
async def test_an_unknown_schema_is_404_naming_the_published_ones(
    served: HttpClient, name: str
) -> None:
    async with served() as http:
        response = await http.get(f"/schemas/{name}")
    assert response.status_code == 404
    assert OUTCOME_EVENT_FILE in json.loads(response.text)["error"]
