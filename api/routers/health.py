"""``/healthz``: the database, Temporal, the chain and Stripe, each checked for real."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

router = APIRouter(tags=["operations"])

HealthCheck = Callable[[], Awaitable[dict[str, Any]]]
CHECK_TIMEOUT_SECONDS = 5.0


async def _run(check: HealthCheck) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        detail = await asyncio.wait_for(check(), CHECK_TIMEOUT_SECONDS)
        result = {"ok": True, **detail}
    except TimeoutError:
        result = {"ok": False, "error": f"no answer within {CHECK_TIMEOUT_SECONDS:.0f}s"}
    except Exception as exc:
        result = {"ok": False, "error": str(exc) or type(exc).__name__}
    result["latency_ms"] = round((time.perf_counter() - started) * 1000, 1)
    return result


async def component_health(request: Request) -> dict[str, dict[str, Any]]:
    checks: dict[str, HealthCheck] = request.app.state.health_checks
    results = await asyncio.gather(*(_run(check) for check in checks.values()))
    return dict(zip(checks, results, strict=True))


@router.get(
    "/healthz",
    responses={503: {"description": "Degraded: the same body, a component is not ok"}},
)
async def healthz(request: Request) -> JSONResponse:
    components = await component_health(request)
    healthy = all(result["ok"] for result in components.values())
    return JSONResponse(
        {"status": "ok" if healthy else "degraded", "components": components},
        status_code=200 if healthy else 503,
    )
