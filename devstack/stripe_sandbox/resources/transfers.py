"""``/v1/transfers`` (to connected accounts) and ``/v1/payouts`` (to the bank): both take
money out of the available balance, and fail as Stripe does when it is too low."""

import math
import time
from typing import Any

from ..context import Context, equal_filters, range_filters
from ..errors import invalid
from ..params import Params
from ..routing import Router
from ..store import new_id

_LIST = ("limit", "starting_after", "ending_before", "created")


def _ensure_available(ctx: Context, amount: int, currency: str, what: str) -> None:
    if ctx.available(currency) < amount:
        raise invalid(
            f"You have insufficient funds in your Stripe account for this {what}. Your"
            f" available {currency.upper()} balance is too low; see /v1/balance.",
            code="balance_insufficient",
        )


def create_transfer(ctx: Context, params: Params) -> dict[str, Any]:
    params.only(
        "amount",
        "currency",
        "destination",
        "transfer_group",
        "metadata",
        "description",
        "source_transaction",
        "source_type",
    )
    amount = params.required_integer("amount", minimum=1)
    currency = params.currency()
    destination = params.required_string("destination")
    if not destination.startswith("acct_") or len(destination) < 6:
        raise invalid(
            f"No such destination: '{destination}'", code="resource_missing", param="destination"
        )
    source_transaction = params.string("source_transaction")
    if source_transaction is not None:
        ctx.load("charge", source_transaction, "source_transaction")
    _ensure_available(ctx, amount, currency, "transfer")
    transfer = ctx.new_object(
        "tr_",
        "transfer",
        amount=amount,
        amount_reversed=0,
        currency=currency,
        description=params.string("description"),
        destination=destination,
        destination_payment=new_id("py_"),
        metadata=params.metadata(),
        reversed=False,
        source_transaction=source_transaction,
        source_type=params.string("source_type", choices=("card", "bank_account")) or "card",
        transfer_group=params.string("transfer_group"),
    )
    transfer["reversals"] = {
        "object": "list",
        "data": [],
        "has_more": False,
        "total_count": 0,
        "url": f"/v1/transfers/{transfer['id']}/reversals",
    }
    transfer["balance_transaction"] = ctx.balance_transaction(
        "transfer", -amount, currency, transfer["id"]
    )
    ctx.store.insert(transfer)
    ctx.record_movement(
        "transfer",
        transfer,
        amount,
        {"destination": destination, "transfer_group": transfer["transfer_group"]},
    )
    ctx.emit("transfer.created", transfer)
    return ctx.render(transfer, params.expand())


def retrieve_transfer(ctx: Context, params: Params, transfer: str) -> dict[str, Any]:
    return ctx.render(ctx.load("transfer", transfer), params.expand())


def update_transfer(ctx: Context, params: Params, transfer: str) -> dict[str, Any]:
    params.only("metadata", "description")
    obj = ctx.load("transfer", transfer)
    if params.has("description"):
        obj["description"] = params.string("description")
    obj["metadata"] = params.metadata(obj["metadata"])
    ctx.store.update(obj)
    ctx.emit("transfer.updated", obj)
    return ctx.render(obj, params.expand())


def list_transfers(ctx: Context, params: Params) -> dict[str, Any]:
    params.only(*_LIST, "destination", "transfer_group")
    filters = equal_filters(params, "destination", "transfer_group")
    return ctx.list_page(
        "transfer", "/v1/transfers", params, filters + range_filters(params, "created")
    )


def create_payout(ctx: Context, params: Params) -> dict[str, Any]:
    params.only(
        "amount",
        "currency",
        "description",
        "destination",
        "metadata",
        "method",
        "statement_descriptor",
        "source_type",
    )
    amount = params.required_integer("amount", minimum=1)
    currency = params.currency()
    _ensure_available(ctx, amount, currency, "payout")
    payout = ctx.new_object(
        "po_",
        "payout",
        amount=amount,
        # Stripe gives a day; here it is when the settlement clock marks the payout paid.
        arrival_date=ctx.now + math.ceil(ctx.config.payout_delay_seconds),
        automatic=False,
        currency=currency,
        description=params.string("description"),
        destination=params.string("destination") or "ba_sandbox_default",
        failure_balance_transaction=None,
        failure_code=None,
        failure_message=None,
        metadata=params.metadata(),
        method=params.string("method", choices=("standard", "instant")) or "standard",
        original_payout=None,
        reversed_by=None,
        source_type=params.string("source_type", choices=("card", "bank_account")) or "card",
        statement_descriptor=params.string("statement_descriptor"),
        status="pending",
        type="bank_account",
        _paid_at=time.time() + ctx.config.payout_delay_seconds,
    )
    payout["balance_transaction"] = ctx.balance_transaction(
        "payout", -amount, currency, payout["id"]
    )
    ctx.store.insert(payout)
    ctx.record_movement("payout", payout, amount, {"destination": payout["destination"]})
    ctx.emit("payout.created", payout)
    return ctx.render(payout, params.expand())


def settle_due_payouts(ctx: Context, now: float) -> None:
    """Marks as paid the pending payouts whose time has come (Stripe's bank transfer)."""
    pending = ctx.store.find("payout", [("status", "=", "pending"), ("_paid_at", "<=", now)])
    for payout in pending:
        payout["status"] = "paid"
        ctx.store.update(payout)
        ctx.emit("payout.paid", payout)


def retrieve_payout(ctx: Context, params: Params, payout: str) -> dict[str, Any]:
    return ctx.render(ctx.load("payout", payout), params.expand())


def update_payout(ctx: Context, params: Params, payout: str) -> dict[str, Any]:
    return ctx.update_metadata("payout", payout, params)


def list_payouts(ctx: Context, params: Params) -> dict[str, Any]:
    params.only(*_LIST, "status", "destination", "arrival_date")
    filters = equal_filters(params, "status", "destination")
    filters += range_filters(params, "created") + range_filters(params, "arrival_date")
    return ctx.list_page("payout", "/v1/payouts", params, filters)


def register(router: Router) -> None:
    router.post("/v1/transfers", create_transfer)
    router.get("/v1/transfers", list_transfers)
    router.get("/v1/transfers/{transfer}", retrieve_transfer)
    router.post("/v1/transfers/{transfer}", update_transfer)
    router.post("/v1/payouts", create_payout)
    router.get("/v1/payouts", list_payouts)
    router.get("/v1/payouts/{payout}", retrieve_payout)
    router.post("/v1/payouts/{payout}", update_payout)
