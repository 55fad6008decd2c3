"""/healthz names what is down; /metrics speaks Prometheus."""

from httpx import AsyncClient


async def test_healthz_reports_each_component_and_503_when_one_is_down(api: AsyncClient) -> None:
    # The test settings point Temporal, the chain and Stripe at closed ports.
    response = await api.get("/healthz")
    assert response.status_code == 503
    components = response.json()["components"]
    assert set(components) == {"database", "temporal", "chain", "stripe"}
    assert components["database"]["ok"] is True
    for down in ("temporal", "chain", "stripe"):
        assert components[down]["ok"] is False
        assert components[down]["error"]


async def test_metrics_count_requests_by_route_template(api: AsyncClient) -> None:
    await api.get("/api/v1/ledger/accounts/anything")
    text = (await api.get("/metrics")).text
    assert "tollgate_http_requests_total" in text
    assert 'accounts/{code}"' in text
    assert "anything" not in text  # labels are templates: cardinality stays bounded


async def test_unknown_route_uses_the_envelope(api: AsyncClient) -> None:
    response = await api.get("/api/v1/nope")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "route_not_found"
