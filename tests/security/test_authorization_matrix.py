"""The authorization matrix: every route of the app, called by every role (and by no one),
against a declared policy.

``MATRIX`` says, for each API route, which roles may call it and, for things a customer, a
driver or a vendor owns, whose they are. Each route is called with real objects
(``tests/security/world.py``: owned by ``cus_a``, ``drv_a``, ``ven_a``) in its path, query and
body, by:

- no token: 401;
- a role the route does not allow: 403 (404 where the API hides the object from that role);
- the owner: allowed, and a GET answers 200;
- another caller of the owner's role (``cus_b``, ``drv_b``, ``ven_b``): refused, 403 or 404
  as the route says;
- impostors: a token of another role whose subject is the owner's id (``driver:cus_a``),
  refused like their role: a check must look at the role, not only at the id;
- admins: allowed.

"Allowed" is never 401 or 403, and never a 5xx but 503 from a provider this test keeps down
(Temporal, Stripe, the chain: that answer comes after the role check). Non-admin callers who
are not the owner never find the owner's object ids in a 2xx answer (lists are scoped).

A route missing from ``MATRIX`` fails the test: add it. Console pages (``/admin``, cookie
sessions) are checked by one rule for every page, so new pages are covered as they come.
"""

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from fastapi.routing import iter_route_contexts
from httpx import AsyncClient, Response

from api.app import create_app
from api.console.web import SESSION_COOKIE, ConsoleRoute
from domain.actors import Role
from settings import Settings
from tests.security.conftest import bearer
from tests.security.world import NOW, World

ADMINS = frozenset({Role.BILLING_ADMIN, Role.PLATFORM_ADMIN})
PLATFORM_ONLY = frozenset({Role.PLATFORM_ADMIN})
CUSTOMERS = frozenset({Role.CUSTOMER})
VENDORS = frozenset({Role.VENDOR})
EVERYONE = frozenset(Role) - {Role.SYSTEM}
TICKET_READERS = frozenset({Role.CUSTOMER, Role.DRIVER}) | ADMINS
SCANNERS = frozenset({Role.DRIVER, Role.PLATFORM_ADMIN})

# Owners of the world's objects, by the role that owns them.
CUSTOMER_A = {Role.CUSTOMER: "cus_a"}
VENDOR_A = {Role.VENDOR: "ven_a"}
TICKET_A = {Role.CUSTOMER: "cus_a", Role.DRIVER: "drv_a"}  # the passenger, the assigned driver
USER_A = {Role.CUSTOMER: "cus_a", Role.DRIVER: "cus_a", Role.VENDOR: "cus_a"}  # markets: any role

Body = Callable[["World"], Any]


@dataclass(frozen=True)
class Rule:
    roles: frozenset[Role]
    # Of those roles, the ones that may call it only for what they own, by owner id.
    own: dict[Role, str] = field(default_factory=dict)
    # What another caller of an owning role gets.
    stranger: frozenset[int] = frozenset({403, 404})
    # Roles not allowed may get 404 (the API hides the object) instead of 403.
    hides: bool = False
    public: bool = False
    body: Body | None = None
    query: Callable[["World"], dict[str, str]] | None = None
    # Path values of this route only: the name of a world value, or the value itself.
    path: dict[str, str] = field(default_factory=dict)


def rule(
    roles: frozenset[Role],
    own: dict[Role, str] | None = None,
    *,
    stranger: int | None = None,
    hides: bool = False,
    public: bool = False,
    body: Body | None = None,
    query: Callable[["World"], dict[str, str]] | None = None,
    path: dict[str, str] | None = None,
) -> Rule:
    return Rule(
        roles=roles,
        own=own or {},
        stranger=frozenset({stranger}) if stranger else frozenset({403, 404}),
        hides=hides,
        public=public,
        body=body,
        query=query,
        path=path or {},
    )


def admins(body: Body | None = None, **kw: Any) -> Rule:
    return rule(ADMINS, body=body, **kw)


def platform(body: Body | None = None, **kw: Any) -> Rule:
    return rule(PLATFORM_ONLY, body=body, **kw)


def customers_own(stranger: int, *, hides: bool = False, **kw: Any) -> Rule:
    """A customer for its own (``cus_a``'s), admins for anyone's."""
    return rule(CUSTOMERS | ADMINS, CUSTOMER_A, stranger=stranger, hides=hides, **kw)


def vendors_own(stranger: int, *, hides: bool = False, **kw: Any) -> Rule:
    return rule(VENDORS | ADMINS, VENDOR_A, stranger=stranger, hides=hides, **kw)


def users_own(**kw: Any) -> Rule:
    return rule(EVERYONE, USER_A, stranger=403, **kw)


def _scan(w: "World") -> dict[str, Any]:
    return {
        "scans": [
            {
                "nonce": f"nonce-{uuid.uuid4().hex}",
                "payload": "not-a-ticket",
                "driver_id": "drv_a",
                "scanned_at": NOW.isoformat(),
            }
        ]
    }


REASON: Body = lambda w: {"reason": "matrix"}  # noqa: E731

MATRIX: dict[str, Rule] = {
    # Admin console's codec server (bearer or console cookie; admins).
    "POST /admin/codec/decode": admins(lambda w: {"payloads": []}),
    "POST /admin/codec/encode": admins(lambda w: {"payloads": []}),
    # Ledger and audit.
    "POST /api/v1/ledger/accounts": admins(),
    "GET /api/v1/ledger/accounts": admins(),
    "GET /api/v1/ledger/accounts/{code}": admins(),
    "POST /api/v1/ledger/transactions": platform(),
    "GET /api/v1/ledger/transactions": admins(),
    "GET /api/v1/ledger/transactions/{txn_id}": admins(),
    "POST /api/v1/ledger/transactions/{txn_id}/reverse": platform(),
    "GET /api/v1/ledger/totals": admins(),
    "GET /api/v1/audit-events": admins(),
    "GET /api/v1/audit-log": admins(),
    # Tickets. README: revocations are for "drivers, admins"; the code lets platform admins
    # only (the scanner role), stricter, and that is what is checked.
    "POST /api/v1/tickets": platform(),
    "GET /api/v1/tickets/keys": rule(EVERYONE, public=True),
    "GET /api/v1/tickets/revocations": rule(SCANNERS),
    "POST /api/v1/tickets/verify": rule(
        SCANNERS,
        {Role.DRIVER: "drv_a"},
        stranger=403,
        body=lambda w: {"payload": "not-a-ticket", "driver_id": "drv_a"},
    ),
    "POST /api/v1/tickets/scans": rule(SCANNERS, {Role.DRIVER: "drv_a"}, stranger=403, body=_scan),
    "GET /api/v1/tickets": rule(EVERYONE),
    "GET /api/v1/tickets/{ticket_id}": rule(TICKET_READERS, TICKET_A, stranger=404, hides=True),
    "GET /api/v1/tickets/{ticket_id}/qr": rule(TICKET_READERS, TICKET_A, stranger=404, hides=True),
    "GET /api/v1/tickets/{ticket_id}/proof": rule(
        TICKET_READERS, TICKET_A, stranger=404, hides=True
    ),
    "GET /api/v1/tickets/{ticket_id}/verifications": admins(),
    # The passenger or an admin; the assigned driver sees the ticket but may not cancel it.
    "DELETE /api/v1/tickets/{ticket_id}": customers_own(404, hides=True),
    # Anchoring.
    "GET /api/v1/anchors/batches": admins(),
    "GET /api/v1/anchors/batches/{batch_id}": admins(path={"batch_id": "1"}),
    "POST /api/v1/anchors/run": platform(),
    # Escrow holds and payout schedules.
    "GET /api/v1/escrow-holds": admins(),
    "GET /api/v1/escrow-holds/stats": admins(),
    "GET /api/v1/escrow-holds/export.csv": admins(),
    "POST /api/v1/escrow-holds": platform(),
    "GET /api/v1/escrow-holds/{hold_id}": admins(),
    "POST /api/v1/escrow-holds/{hold_id}/release": platform(),
    "POST /api/v1/escrow-holds/bulk-release": platform(),
    "POST /api/v1/escrow-holds/{hold_id}/extend": platform(),
    "PATCH /api/v1/escrow-holds/{hold_id}": platform(),
    "DELETE /api/v1/escrow-holds/{hold_id}": platform(),
    "POST /api/v1/escrow-holds/{hold_id}/refund": platform(),
    "POST /api/v1/escrow-holds/{hold_id}/dispute": platform(),
    "POST /api/v1/escrow-holds/{hold_id}/resolve": platform(),
    "POST /api/v1/escrow-holds/{hold_id}/approve": platform(),
    "GET /api/v1/payout-schedules": admins(),
    "GET /api/v1/payout-schedules/stats": admins(),
    "GET /api/v1/payout-schedules/export.csv": admins(),
    "POST /api/v1/payout-schedules": platform(),
    "GET /api/v1/payout-schedules/{schedule_id}": admins(),
    "PATCH /api/v1/payout-schedules/{schedule_id}": platform(),
    "DELETE /api/v1/payout-schedules/{schedule_id}": platform(),
    "POST /api/v1/payout-schedules/{schedule_id}/trigger": admins(),
    "POST /api/v1/payout-schedules/bulk-trigger": admins(),
    "POST /api/v1/placements/{placement_id}/activate": platform(),
    # Prediction markets: tokens, commitments and payouts belong to a user id.
    "POST /api/v1/markets/token-grants": platform(),
    "GET /api/v1/markets/token-balances/{user_id}": users_own(),
    "GET /api/v1/markets/payouts": users_own(query=lambda w: {"user_id": "cus_a"}),
    "POST /api/v1/markets": platform(),
    "GET /api/v1/markets": rule(EVERYONE),
    "GET /api/v1/markets/{market_id}": rule(EVERYONE),
    "POST /api/v1/markets/{market_id}/commitments": rule(
        CUSTOMERS, body=lambda w: {"amount": 1, "position": "yes"}
    ),
    "GET /api/v1/markets/{market_id}/commitments": users_own(query=lambda w: {"user_id": "cus_a"}),
    "GET /api/v1/markets/{market_id}/commitments/{commitment_id}/audit": users_own(),
    "GET /api/v1/markets/{market_id}/distribution": admins(),
    "GET /api/v1/markets/{market_id}/distributions": admins(),
    "GET /api/v1/markets/{market_id}/distribution/payouts": admins(),
    "POST /api/v1/markets/{market_id}/resolve": platform(),
    "POST /api/v1/markets/{market_id}/dispute": platform(REASON),
    "POST /api/v1/markets/{market_id}/uphold": platform(),
    "POST /api/v1/markets/{market_id}/rollback": platform(REASON),
    # Payment methods: another customer's method or list is a 403 (README).
    "POST /api/v1/payment-methods": customers_own(
        403, body=lambda w: {"token": "pm_card_visa", "customer_id": "cus_a"}
    ),
    "GET /api/v1/payment-methods/customer/{customer_id}": customers_own(403),
    "GET /api/v1/payment-methods/customer/{customer_id}/active": customers_own(403),
    "GET /api/v1/payment-methods/customer/{customer_id}/type/{method_type}": customers_own(403),
    "GET /api/v1/payment-methods/customer/{customer_id}/default": customers_own(403),
    "GET /api/v1/payment-methods/{method_id}": customers_own(403),
    "PUT /api/v1/payment-methods/{method_id}/set-default": customers_own(403),
    "PUT /api/v1/payment-methods/{method_id}/verification-status": admins(
        lambda w: {"status": "verified"}
    ),
    "DELETE /api/v1/payment-methods/{method_id}": customers_own(403),
    # Payments: a customer sees its own; another's is missing (404).
    "POST /api/v1/payments": customers_own(
        403,
        body=lambda w: {
            "amount": 100,
            "currency": "USD",
            "customer_id": "cus_a",
            "payment_method_id": w.method_id,
        },
    ),
    "GET /api/v1/payments": customers_own(403, query=lambda w: {"customer_id": "cus_a"}),
    "GET /api/v1/payments/customer/{customer_id}": customers_own(403),
    "GET /api/v1/payments/order/{order_id}": rule(CUSTOMERS | ADMINS),
    "GET /api/v1/payments/status/{status}": admins(path={"status": "pending"}),
    "GET /api/v1/payments/number/{number}": customers_own(404, hides=True),
    "GET /api/v1/payments/transaction/{transaction_id}": customers_own(404, hides=True),
    "GET /api/v1/payments/{payment_id}": customers_own(404, hides=True),
    "POST /api/v1/payments/{payment_id}/capture": admins(),
    "PUT /api/v1/payments/{payment_id}/capture": admins(),
    "POST /api/v1/payments/{payment_id}/cancel": customers_own(403, body=REASON),
    "PUT /api/v1/payments/{payment_id}/cancel": customers_own(403, body=REASON),
    "POST /api/v1/payments/{payment_id}/fail": admins(REASON),
    "PUT /api/v1/payments/{payment_id}/fail": admins(REASON),
    # Refunds: as payments.
    "POST /api/v1/refunds": customers_own(
        403, body=lambda w: {"payment_id": w.payment_id, "amount": 1}
    ),
    "GET /api/v1/refunds": rule(CUSTOMERS | ADMINS),
    "GET /api/v1/refunds/payment/{payment_id}": rule(CUSTOMERS | ADMINS),
    "GET /api/v1/refunds/order/{order_id}": rule(CUSTOMERS | ADMINS),
    "GET /api/v1/refunds/status/{status}": admins(path={"status": "processing"}),
    "GET /api/v1/refunds/number/{number}": customers_own(
        404, hides=True, path={"number": "refund_number"}
    ),
    "GET /api/v1/refunds/refund-number/{number}": customers_own(
        404, hides=True, path={"number": "refund_number"}
    ),
    "GET /api/v1/refunds/{refund_id}": customers_own(404, hides=True),
    "POST /api/v1/refunds/{refund_id}/approve": admins(),
    "POST /api/v1/refunds/{refund_id}/reject": admins(REASON),
    # Fraud checks.
    "GET /api/v1/fraud-checks": admins(),
    "GET /api/v1/fraud-checks/payment/{payment_id}": admins(),
    "GET /api/v1/fraud-checks/customer/{customer_id}": admins(),
    "GET /api/v1/fraud-checks/customer/{customer_id}/average-risk-score": admins(),
    "GET /api/v1/fraud-checks/risk-level/{risk_level}": admins(),
    "GET /api/v1/fraud-checks/status/{status}": admins(path={"status": "approved"}),
    "GET /api/v1/fraud-checks/{check_id}": admins(),
    "PUT /api/v1/fraud-checks/{check_id}/review": admins(lambda w: {"decision": "approve"}),
    # Plans.
    "POST /api/v1/plans": admins(),
    "GET /api/v1/plans": rule(EVERYONE),
    "GET /api/v1/plans/{plan_id}": rule(EVERYONE),
    "POST /api/v1/plans/{plan_id}/deactivate": admins(path={"plan_id": "other_plan_id"}),
    "POST /api/v1/plans/{plan_id}/activate": admins(path={"plan_id": "other_plan_id"}),
    # Subscriptions and invoices: another customer's is a 404; other roles a 403.
    "POST /api/v1/subscriptions": customers_own(
        403,
        body=lambda w: {
            "plan_id": w.plan_id,
            "customer_id": "cus_a",
            "payment_method_id": w.method_id,
        },
    ),
    "GET /api/v1/subscriptions": customers_own(403, query=lambda w: {"customer_id": "cus_a"}),
    "GET /api/v1/subscriptions/customer/{customer_id}": customers_own(403),
    "GET /api/v1/subscriptions/status/{status}": admins(path={"status": "active"}),
    "GET /api/v1/subscriptions/renewal/due": admins(),
    "GET /api/v1/subscriptions/trial/conversion-due": admins(),
    "GET /api/v1/subscriptions/{subscription_id}": customers_own(404),
    "POST /api/v1/subscriptions/{subscription_id}/cancel": customers_own(
        404, body=lambda w: {"at_period_end": True}
    ),
    "POST /api/v1/subscriptions/{subscription_id}/pause": customers_own(404),
    "POST /api/v1/subscriptions/{subscription_id}/resume": customers_own(404),
    "POST /api/v1/subscriptions/{subscription_id}/renew": customers_own(404),
    "POST /api/v1/subscriptions/{subscription_id}/change-plan": customers_own(
        404, body=lambda w: {"plan_id": w.plan_id}
    ),
    "POST /api/v1/subscriptions/{subscription_id}/retry-payment": customers_own(404),
    "POST /api/v1/invoices": admins(),
    "GET /api/v1/invoices": customers_own(403, query=lambda w: {"customer_id": "cus_a"}),
    "GET /api/v1/invoices/overdue": admins(),
    "GET /api/v1/invoices/due-before": admins(),
    "GET /api/v1/invoices/number/{number}": customers_own(404, path={"number": "invoice_number"}),
    "GET /api/v1/invoices/subscription/{subscription_id}": customers_own(404),
    "GET /api/v1/invoices/{invoice_id}": customers_own(404),
    "POST /api/v1/invoices/{invoice_id}/mark-paid": admins(),
    "POST /api/v1/invoices/{invoice_id}/finalize": admins(),
    "POST /api/v1/invoices/process-payment-retries": admins(lambda w: {"invoice_ids": []}),
    "POST /api/v1/invoices/subscription/{subscription_id}/generate-next": admins(),
    # Stripe's webhook: no bearer token, Stripe's signature (checked in test_webhook_bypass).
    "POST /api/v1/webhooks/stripe": rule(EVERYONE, public=True),
    "GET /api/v1/webhooks/stripe/events": admins(),
    "GET /api/v1/webhooks/stripe/events/dead-letters": admins(),
    "GET /api/v1/webhooks/stripe/events/{event_id}": admins(),
    "POST /api/v1/webhooks/stripe/events/{event_id}/retry": admins(),
    "POST /api/v1/webhooks/stripe/events/retry-dead": admins(lambda w: {"ids": []}),
    # Outbound webhooks.
    "POST /api/v1/webhook-endpoints": admins(),
    "GET /api/v1/webhook-endpoints": admins(),
    "GET /api/v1/webhook-endpoints/{endpoint_id}": admins(),
    "PATCH /api/v1/webhook-endpoints/{endpoint_id}": admins(),
    "POST /api/v1/webhook-endpoints/{endpoint_id}/disable": admins(),
    "POST /api/v1/webhook-endpoints/{endpoint_id}/enable": admins(),
    "POST /api/v1/webhook-endpoints/{endpoint_id}/rotate-secret": admins(),
    "POST /api/v1/webhook-endpoints/{endpoint_id}/test": admins(),
    "POST /api/v1/webhook-endpoints/{endpoint_id}/replay": admins(),
    "GET /api/v1/webhook-deliveries": admins(),
    "GET /api/v1/webhook-deliveries/dead-letters": admins(),
    "GET /api/v1/webhook-deliveries/{delivery_id}": admins(),
    "POST /api/v1/webhook-deliveries/{delivery_id}/replay": admins(),
    # Commission rules: admins; a vendor asks about itself.
    "POST /api/v1/commission-rules": admins(),
    "GET /api/v1/commission-rules": admins(),
    "GET /api/v1/commission-rules/best-applicable": vendors_own(
        403, query=lambda w: {"vendor_id": "ven_a", "currency": "USD"}
    ),
    "POST /api/v1/commission-rules/calculate": vendors_own(
        403, body=lambda w: {"amount": 1000, "currency": "USD", "vendor_id": "ven_a"}
    ),
    "GET /api/v1/commission-rules/{rule_id}": admins(),
    "POST /api/v1/commission-rules/{rule_id}/activate": admins(),
    "POST /api/v1/commission-rules/{rule_id}/deactivate": admins(),
    # Vendor settlements: admins; a vendor sees its own (another's settlement is missing).
    "POST /api/v1/vendor-settlements": admins(),
    "GET /api/v1/vendor-settlements": vendors_own(403, query=lambda w: {"vendor_id": "ven_a"}),
    "GET /api/v1/vendor-settlements/due": admins(),
    "GET /api/v1/vendor-settlements/vendors/{vendor_id}/summary": vendors_own(403),
    "GET /api/v1/vendor-settlements/{settlement_id}": vendors_own(404, hides=True),
    "POST /api/v1/vendor-settlements/{settlement_id}/process": admins(),
    "PUT /api/v1/vendor-settlements/vendors/{vendor_id}/payout-account": vendors_own(
        403, body=lambda w: {"destination": "acct_1VendorA0000000000"}
    ),
    "GET /api/v1/vendor-settlements/vendors/{vendor_id}/payout-account": vendors_own(403),
    # Transfers and batch payouts.
    "POST /api/v1/transfers/batch": admins(),
    "GET /api/v1/transfers/batch": admins(),
    "GET /api/v1/transfers/batch/{batch_id}": admins(),
    "GET /api/v1/transfers/batch/{batch_id}/items": admins(),
    "POST /api/v1/transfers/batch/{batch_id}/retry": admins(),
    "GET /api/v1/transfers/{transfer_id}": admins(),
    "GET /api/v1/transfers": admins(),
    # Settlement windows: anyone signed in reads, platform admins change.
    "GET /api/v1/settlement-windows": rule(EVERYONE),
    "GET /api/v1/settlement-windows/{rail}": rule(EVERYONE),
    "PUT /api/v1/settlement-windows/{rail}": platform(),
    "DELETE /api/v1/settlement-windows/{rail}": platform(),
    "POST /api/v1/settlement-windows/{rail}/settle-now": platform(),
    "GET /api/v1/settlement-windows/{rail}/runs": rule(EVERYONE),
    # Liquidity and reconciliation.
    "GET /api/v1/liquidity": admins(),
    "POST /api/v1/reconciliation/runs": platform(),
    "GET /api/v1/reconciliation/runs": admins(),
    "GET /api/v1/reconciliation/runs/{run_id}": admins(),
    "GET /api/v1/reconciliation/runs/{run_id}/discrepancies": admins(),
    "GET /api/v1/reconciliation/runs/{run_id}/discrepancies.csv": admins(),
    "GET /api/v1/reconciliation/discrepancies": admins(),
    "GET /api/v1/reconciliation/discrepancies/{discrepancy_id}": admins(),
    "POST /api/v1/reconciliation/discrepancies/{discrepancy_id}/resolve": admins(REASON),
}

# Routes outside the matrix, each with the reason.
NOT_IN_MATRIX: dict[str, str] = {
    "/openapi.json": "the API's description, public by design",
    "/docs": "Swagger UI over /openapi.json, public by design",
    "/docs/oauth2-redirect": "Swagger UI's OAuth helper page, static",
    "/redoc": "ReDoc over /openapi.json, public by design",
    "/healthz": "liveness and readiness probe of orchestrators and load balancers, no data",
    "/metrics": "Prometheus scrape endpoint, unauthenticated by convention: keep it off the "
    "public network (README, Logs, metrics and traces)",
    "/admin/static": "the console's stylesheet and script (a mount, no data)",
    "/admin/static/vendor": "htmx from node_modules (a mount, no data)",
}

# Console routes anyone may open (the sign-in form, signing in and out).
CONSOLE_PUBLIC = frozenset({"GET /admin/login", "POST /admin/login", "POST /admin/logout"})


@dataclass(frozen=True)
class Caller:
    role: Role | None
    sub: str = ""

    @property
    def name(self) -> str:
        return f"{self.role.value}:{self.sub}" if self.role else "anonymous"

    @property
    def is_admin(self) -> bool:
        return self.role in ADMINS


CALLERS = [
    Caller(None),
    Caller(Role.CUSTOMER, "cus_a"),
    Caller(Role.CUSTOMER, "cus_b"),
    Caller(Role.DRIVER, "drv_a"),
    Caller(Role.DRIVER, "drv_b"),
    Caller(Role.VENDOR, "ven_a"),
    Caller(Role.VENDOR, "ven_b"),
    Caller(Role.BILLING_ADMIN, "ops_billing"),
    Caller(Role.PLATFORM_ADMIN, "ops_platform"),
    # Impostors: another role with the owner's id.
    Caller(Role.DRIVER, "cus_a"),
    Caller(Role.VENDOR, "cus_a"),
    Caller(Role.CUSTOMER, "drv_a"),
    Caller(Role.CUSTOMER, "ven_a"),
]


# For routes only admins call, one caller per role is enough: no object of theirs is
# involved, so strangers and impostors cannot behave differently from their role.
ONE_PER_ROLE = [CALLERS[i] for i in (0, 1, 3, 5, 7, 8)]


def callers_of(rule: Rule) -> list[Caller]:
    return ONE_PER_ROLE if rule.roles <= ADMINS and not rule.own else CALLERS


def app_routes(settings: Settings) -> Iterator[tuple[str, str, Any]]:
    """(method, path, route) of every route of the app, mounts and docs included."""
    for context in iter_route_contexts(create_app(settings).routes):
        route = context.original_route
        path = context.path or ""
        methods = sorted(context.methods or []) or [""]
        for method in methods:
            if method == "HEAD":
                continue
            yield method, path, route


def expected(rule: Rule, caller: Caller) -> str:
    """``allowed``, ``owner`` (allowed, and a GET answers 200) or ``refused:<statuses>``."""
    if rule.public:
        return "allowed"
    if caller.role is None:
        return "refused:401"
    if caller.role not in rule.roles:
        return "refused:403,404" if rule.hides else "refused:403"
    if caller.role in rule.own:
        if caller.sub == rule.own[caller.role]:
            return "owner"
        return "refused:" + ",".join(str(s) for s in sorted(rule.stranger))
    return "allowed"


def problem(
    method: str, answer: Response, expectation: str, caller: Caller, w: World
) -> str | None:
    status = answer.status_code
    if status >= 500:
        error = answer.json().get("error", {}) if _is_json(answer) else {}
        provider_down = status == 503 and error.get("code") in {
            "provider_unavailable",
            "balance_unavailable",
        }
        if not (provider_down and expectation in ("allowed", "owner")):
            return f"{status} {answer.text[:200]}"
    if expectation.startswith("refused:"):
        statuses = {int(s) for s in expectation.removeprefix("refused:").split(",")}
        if status not in statuses:
            return f"expected {sorted(statuses)}, got {status} {answer.text[:200]}"
        if not _is_json(answer) or "error" not in answer.json():
            return f"{status} is not in the error envelope: {answer.text[:200]}"
        return None
    if status in (401, 403):
        return f"allowed caller refused: {status} {answer.text[:200]}"
    if expectation == "owner" and method == "GET" and status != 200:
        return f"the owner's GET answered {status} {answer.text[:200]}"
    if 200 <= status < 300 and caller.role is not None and not caller.is_admin:
        for private_id, readers in w.private.items():
            if caller.name not in readers and private_id in answer.text:
                return f"{caller.name} was shown {private_id}: {answer.text[:200]}"
    return None


def _is_json(answer: Response) -> bool:
    return answer.headers.get("content-type", "").startswith("application/json")


async def call(
    api: AsyncClient,
    method: str,
    url: str,
    headers: dict[str, str],
    *,
    body: Any = None,
    query: dict[str, str] | None = None,
) -> Response:
    return await api.request(
        method, url, headers=headers, json=body if method != "GET" else None, params=query
    )


async def test_every_route_is_in_the_matrix(api_settings: Settings) -> None:
    missing, stale = [], set(MATRIX)
    for method, path, route in app_routes(api_settings):
        key = f"{method} {path}"
        if isinstance(route, ConsoleRoute) or path in NOT_IN_MATRIX:
            continue
        if key not in MATRIX:
            missing.append(key)
        stale.discard(key)
    assert not missing, (
        "routes missing from the authorization matrix (tests/security/"
        "test_authorization_matrix.py): add them to MATRIX with who may call them:\n"
        + "\n".join(missing)
    )
    assert not stale, f"MATRIX names routes the app no longer has: {sorted(stale)}"


async def test_every_route_refuses_whom_it_must(
    security_api: AsyncClient, api_settings: Settings, world: World
) -> None:
    values = world.path_values()
    tokens = {
        caller: bearer(api_settings, caller.role, caller.sub) if caller.role else {}
        for caller in CALLERS
    }
    failures: list[str] = []
    for method, path, route in app_routes(api_settings):
        key = f"{method} {path}"
        if isinstance(route, ConsoleRoute) or path in NOT_IN_MATRIX or key not in MATRIX:
            continue
        rule = MATRIX[key]
        url = path.format(**{**values, **{k: values.get(v, v) for k, v in rule.path.items()}})
        for caller in callers_of(rule):
            answer = await call(
                security_api,
                method,
                url,
                tokens[caller],
                body=rule.body(world) if rule.body else {},
                query=rule.query(world) if rule.query else None,
            )
            wrong = problem(method, answer, expected(rule, caller), caller, world)
            if wrong:
                failures.append(f"{key} as {caller.name}: {wrong}")
    assert not failures, f"{len(failures)} authorization failures:\n" + "\n".join(failures)


class Placeholders(dict[str, str]):
    """Any path parameter of a console page: a fresh id (the page must refuse first)."""

    def __missing__(self, key: str) -> str:
        return str(uuid.uuid4())


async def test_console_pages_need_an_admin_session(
    security_api: AsyncClient, api_settings: Settings
) -> None:
    """Console pages take the session cookie only: no cookie, a bearer header or a customer's
    cookie never shows a page (the login page instead), and nothing fails."""
    admin_token = bearer(api_settings, Role.PLATFORM_ADMIN, "ops")["Authorization"]
    customer_token = bearer(api_settings, Role.CUSTOMER, "cus_a")["Authorization"]
    visitors = {
        "no session": {},
        "a bearer header, no session": {"Authorization": admin_token},
        "a customer's session": {
            "Cookie": f"{SESSION_COOKIE}={customer_token.removeprefix('Bearer ')}"
        },
    }
    failures = []
    values = Placeholders()
    for method, path, route in app_routes(api_settings):
        if not isinstance(route, ConsoleRoute) or f"{method} {path}" in CONSOLE_PUBLIC:
            continue
        url = path.format_map(values)
        for visitor, headers in visitors.items():
            answer = await security_api.request(method, url, headers=headers)
            if answer.status_code < 300 or answer.status_code >= 500:
                failures.append(f"{method} {path} with {visitor}: {answer.status_code}")
    assert not failures, "\n".join(failures)
