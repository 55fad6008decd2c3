"""``/v1/refunds``: partial or full, never more than was captured and not yet refunded."""

from typing import Any

from ..context import Context, equal_filters, range_filters
from ..errors import invalid
from ..params import Params
from ..routing import Router

_REASONS = ("duplicate", "fraudulent", "requested_by_customer")


def _format(amount: int, currency: str) -> str:
    # Integer arithmetic: money is never a float, not even in a message.
    units, cents = divmod(amount, 100)
    return f"{units}.{cents:02d} {currency.upper()}"


def create(ctx: Context, params: Params) -> dict[str, Any]:
    params.only(
        "payment_intent",
        "charge",
        "amount",
        "reason",
        "metadata",
        "instructions_email",
        "refund_application_fee",
        "reverse_transfer",
    )
    charge = _charge_to_refund(ctx, params)
    refundable = charge["amount_captured"] - charge["amount_refunded"]
    if refundable <= 0:
        raise invalid(
            f"Charge {charge['id']} has already been refunded.",
            code="charge_already_refunded",
        )
    amount = params.integer("amount", minimum=1)
    if amount is None:
        amount = refundable
    if amount > refundable:
        raise invalid(
            f"Refund amount ({_format(amount, charge['currency'])}) is greater than unrefunded"
            f" amount on charge ({_format(refundable, charge['currency'])})",
            code="amount_too_large",
            param="amount",
        )
    refund = ctx.new_object(
        "re_",
        "refund",
        amount=amount,
        charge=charge["id"],
        currency=charge["currency"],
        destination_details={"card": {"type": "refund"}, "type": "card"},
        metadata=params.metadata(),
        payment_intent=charge["payment_intent"],
        reason=params.string("reason", choices=_REASONS),
        receipt_number=None,
        source_transfer_reversal=None,
        status="succeeded",
        transfer_reversal=None,
    )
    refund["balance_transaction"] = ctx.balance_transaction(
        "refund", -amount, charge["currency"], refund["id"]
    )
    charge["amount_refunded"] += amount
    charge["refunded"] = charge["amount_refunded"] == charge["amount_captured"]
    ctx.store.insert(refund)
    ctx.store.update(charge)
    ctx.record_movement(
        "refund",
        refund,
        amount,
        {"charge": charge["id"], "payment_intent": charge["payment_intent"]},
    )
    ctx.emit("refund.created", refund)
    ctx.emit("charge.refunded", charge)
    return ctx.render(refund, params.expand())


def _charge_to_refund(ctx: Context, params: Params) -> dict[str, Any]:
    intent_id = params.string("payment_intent")
    charge_id = params.string("charge")
    if intent_id is None and charge_id is None:
        raise invalid(
            "One of the following params should be provided for this request: payment_intent or"
            " charge.",
            code="parameter_missing",
        )
    if intent_id is not None:
        intent = ctx.load("payment_intent", intent_id, "payment_intent")
        if intent["latest_charge"] is None or intent["status"] != "succeeded":
            raise invalid(
                f"This PaymentIntent ({intent_id}) does not have a successful charge to refund.",
                code="charge_not_refundable" if intent["latest_charge"] else None,
                param="payment_intent",
            )
        if charge_id is not None and charge_id != intent["latest_charge"]:
            raise invalid(
                f"Charge {charge_id} does not belong to PaymentIntent {intent_id}.",
                param="charge",
            )
        charge_id = intent["latest_charge"]
    assert charge_id is not None
    charge = ctx.load("charge", charge_id, "charge")
    if not charge["captured"]:
        raise invalid(
            f"Charge {charge_id} has not been captured: cancel its PaymentIntent to release the"
            " authorization.",
            code="charge_not_refundable",
            param="charge",
        )
    return charge


def retrieve(ctx: Context, params: Params, refund: str) -> dict[str, Any]:
    return ctx.render(ctx.load("refund", refund), params.expand())


def update(ctx: Context, params: Params, refund: str) -> dict[str, Any]:
    return ctx.update_metadata("refund", refund, params)


def list_(ctx: Context, params: Params) -> dict[str, Any]:
    params.only("limit", "starting_after", "ending_before", "created", "charge", "payment_intent")
    filters = equal_filters(params, "charge", "payment_intent") + range_filters(params, "created")
    return ctx.list_page("refund", "/v1/refunds", params, filters)


def register(router: Router) -> None:
    router.post("/v1/refunds", create)
    router.get("/v1/refunds", list_)
    router.get("/v1/refunds/{refund}", retrieve)
    router.post("/v1/refunds/{refund}", update)
