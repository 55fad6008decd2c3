"""The console assembled: its login, one router per page, and its static files (the CSS and
script of ``static/``, and htmx from npm's ``node_modules``)."""

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from api.console import auth
from api.console.pages import (
    audit,
    escrow,
    overview,
    payouts,
    reconciliation,
    subscriptions,
    tickets,
    transfers,
    webhooks,
)
from api.console.web import PREFIX, STATIC_DIR, VENDOR_DIR

# Every page module; add a new one here and its entry to ``nav.NAV``.
PAGES = [
    overview,
    payouts,
    escrow,
    transfers,
    subscriptions,
    tickets,
    reconciliation,
    webhooks,
    audit,
]


def install(app: FastAPI) -> None:
    app.include_router(auth.router)
    for page in PAGES:
        app.include_router(page.router)
    # More specific first: /admin/static/vendor is htmx's dist folder.
    app.mount(
        f"{PREFIX}/static/vendor",
        StaticFiles(directory=VENDOR_DIR, check_dir=False),
        name="console-vendor",
    )
    app.mount(f"{PREFIX}/static", StaticFiles(directory=STATIC_DIR), name="console-static")
