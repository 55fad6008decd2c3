"""The console's navigation, in one place: a page is listed here and lives in its own module
under ``api/console/pages/`` (registered in ``api.console.site.PAGES``)."""

from dataclasses import dataclass


@dataclass(frozen=True)
class NavItem:
    key: str  # what a page passes as ``active`` to ``render``
    label: str
    path: str


NAV: list[NavItem] = [
    NavItem("overview", "Overview", "/admin"),
    NavItem("payouts", "Payout schedules", "/admin/payouts"),
    NavItem("escrow", "Escrow holds", "/admin/escrow"),
    NavItem("transfers", "Transfers", "/admin/transfers"),
    NavItem("subscriptions", "Subscriptions", "/admin/subscriptions"),
    NavItem("tickets", "Tickets", "/admin/tickets"),
    NavItem("reconciliation", "Reconciliation", "/admin/reconciliation"),
    NavItem("webhooks", "Webhooks", "/admin/webhooks"),
    NavItem("audit", "Audit log", "/admin/audit"),
]
