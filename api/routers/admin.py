"""The admin landing page: where each operator tool lives, and the stack's health."""

import html

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from api.routers.health import component_health

router = APIRouter(tags=["operations"])


@router.get("/admin", response_class=HTMLResponse, include_in_schema=False)
async def admin_home(request: Request) -> HTMLResponse:
    settings = request.app.state.settings
    components = await component_health(request)
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{'ok' if c['ok'] else 'DOWN'}</td>"
        f"<td>{html.escape(str(c.get('error', '')))}</td></tr>"
        for name, c in components.items()
    )
    links = {
        "API reference (OpenAPI)": "/docs",
        "Temporal Web UI: workflows, signals, schedules": settings.temporal_ui_url,
        "Health (JSON)": "/healthz",
        "Prometheus metrics": "/metrics",
    }
    items = "".join(
        f'<li><a href="{html.escape(url)}">{html.escape(label)}</a></li>'
        for label, url in links.items()
    )
    return HTMLResponse(
        "<!doctype html><html><head><title>Tollgate admin</title></head><body>"
        "<h1>Tollgate admin</h1>"
        f"<ul>{items}</ul>"
        "<h2>Health</h2><table border=1 cellpadding=4>"
        f"<tr><th>component</th><th>state</th><th>error</th></tr>{rows}</table>"
        "<p>Admin API (bearer token, role billing_admin or platform_admin): "
        "<code>/api/v1/ledger/accounts</code>, <code>/api/v1/ledger/transactions</code>, "
        "<code>/api/v1/audit-events</code>.</p></body></html>",
        status_code=200 if all(c["ok"] for c in components.values()) else 503,
    )
