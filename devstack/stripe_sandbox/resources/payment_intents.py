"""``/v1/payment_intents`` and the charges they create (``/v1/charges``, read-only here).

Statuses follow Stripe: ``requires_payment_method`` -> ``requires_confirmation`` -> (confirm)
``requires_capture`` (manual capture) or ``succeeded``; a declined card returns the intent to
``requires_payment_method`` with a failed charge and answers 402.
"""

from typing import Any

from ..cards import DECLINES, Decline
from ..context import Context, equal_filters, range_filters
from ..errors import StripeError, invalid, unexpected_state
from ..params import Params
from ..routing import Router
from ..store import new_id
from .payment_methods import resolve

MINIMUM_AMOUNT = 50  # Stripe's minimum charge, $0.50 and its equivalents
MAXIMUM_AMOUNT = 99_999_999
_CAPTURE_METHODS = ("automatic", "automatic_async", "manual")
_CANCELABLE = ("requires_payment_method", "requires_capture", "requires_confirmation")
_CONFIRMABLE = ("requires_payment_method", "requires_confirmation")
_CONFIRM_PARAMS = (
    "payment_method",
    "capture_method",
    "off_session",
    "receipt_email",
    "return_url",
    "setup_future_usage",
    "error_on_requires_action",
    "payment_method_options",
    "payment_method_types",
)
_DESCRIPTIVE = (
    "description",
    "receipt_email",
    "statement_descriptor",
    "statement_descriptor_suffix",
    "setup_future_usage",
    "transfer_group",
)


def processing_fee(amount: int) -> int:
    """Stripe's standard card pricing: 2.9% + 30 (minor units), rounded half up."""
    return (amount * 29 + 500) // 1000 + 30


def create(ctx: Context, params: Params) -> dict[str, Any]:
    params.only(
        *_CONFIRM_PARAMS,
        *_DESCRIPTIVE,
        "amount",
        "currency",
        "customer",
        "confirm",
        "metadata",
        "confirmation_method",
        "automatic_payment_methods",
    )
    intent = ctx.new_object(
        "pi_",
        "payment_intent",
        amount=_amount(params),
        amount_capturable=0,
        amount_details={"tip": {}},
        amount_received=0,
        application=None,
        application_fee_amount=None,
        automatic_payment_methods=None,
        canceled_at=None,
        cancellation_reason=None,
        capture_method=params.string("capture_method", choices=_CAPTURE_METHODS)
        or "automatic_async",
        confirmation_method=params.string("confirmation_method", choices=("automatic", "manual"))
        or "automatic",
        currency=params.currency(),
        customer=None,
        last_payment_error=None,
        latest_charge=None,
        metadata=params.metadata(),
        next_action=None,
        on_behalf_of=None,
        payment_method=None,
        payment_method_options={},
        payment_method_types=["card"],
        processing=None,
        review=None,
        shipping=None,
        status="requires_payment_method",
        transfer_data=None,
        **{name: params.string(name) for name in _DESCRIPTIVE},
    )
    intent["client_secret"] = f"{intent['id']}_secret_{new_id('', 25)}"
    customer = params.string("customer")
    if customer is not None:
        intent["customer"] = ctx.load("customer", customer, "customer")["id"]
    _set_payment_method(ctx, intent, params)
    ctx.store.insert(intent)
    ctx.emit("payment_intent.created", intent)
    if params.boolean("confirm"):
        _confirm(ctx, intent)
    return ctx.render(intent, params.expand())


def _amount(params: Params) -> int:
    amount = params.required_integer("amount", minimum=1)
    if amount < MINIMUM_AMOUNT:
        raise invalid(
            f"Amount must be at least {MINIMUM_AMOUNT} minor units",
            code="amount_too_small",
            param="amount",
        )
    if amount > MAXIMUM_AMOUNT:
        raise invalid(
            f"Amount must be no more than {MAXIMUM_AMOUNT}", code="amount_too_large", param="amount"
        )
    return amount


def _set_payment_method(ctx: Context, intent: dict[str, Any], params: Params) -> None:
    payment_method = params.string("payment_method")
    if payment_method is None:
        return
    method = resolve(ctx, payment_method, "payment_method")
    if method["customer"] is not None and method["customer"] != intent["customer"]:
        raise invalid(
            f"The provided PaymentMethod {method['id']} is attached to another customer than"
            " this PaymentIntent's; pass that customer.",
            param="payment_method",
        )
    intent["payment_method"] = method["id"]
    intent["status"] = "requires_confirmation"


def _confirm(ctx: Context, intent: dict[str, Any]) -> None:
    """Charges the intent's payment method: authorises it, and captures unless manual."""
    if intent["payment_method"] is None:
        raise unexpected_state(
            "You cannot confirm this PaymentIntent because it's missing a payment method. Update"
            " the PaymentIntent with a payment method and then confirm it again.",
            param="payment_method",
        )
    method = ctx.load("payment_method", intent["payment_method"], "payment_method")
    decline = DECLINES.get(method["_number"])
    if method.get("_declines_left"):
        method["_declines_left"] -= 1
        decline = DECLINES[method["_declines_as"]]
        ctx.store.update(method)
    charge = _new_charge(ctx, intent, method, decline)
    intent["latest_charge"] = charge["id"]
    if decline is not None:
        _decline(ctx, intent, method, charge, decline)
    if intent["capture_method"] == "manual":
        intent["status"] = "requires_capture"
        intent["amount_capturable"] = intent["amount"]
        ctx.store.insert(charge)
        ctx.store.update(intent)
        ctx.emit("charge.succeeded", charge)
        ctx.emit("payment_intent.amount_capturable_updated", intent)
        return
    _capture_charge(ctx, charge, intent["amount"])
    intent["status"] = "succeeded"
    intent["amount_received"] = intent["amount"]
    ctx.store.insert(charge)
    ctx.store.update(intent)
    ctx.record_movement(
        "charge", charge, intent["amount"], {"payment_intent": intent["id"], "charge": charge["id"]}
    )
    ctx.emit("charge.succeeded", charge)
    ctx.emit("payment_intent.succeeded", intent)


def _decline(
    ctx: Context,
    intent: dict[str, Any],
    method: dict[str, Any],
    charge: dict[str, Any],
    decline: Decline,
) -> None:
    """Records the failed attempt, then answers 402 with the intent inside the error."""
    intent["status"] = "requires_payment_method"
    intent["payment_method"] = None
    error = {
        "charge": charge["id"],
        "code": decline.code,
        "decline_code": decline.decline_code,
        "doc_url": f"https://stripe.com/docs/error-codes/{decline.code.replace('_', '-')}",
        "message": decline.message,
        "param": decline.param,
        "payment_method": ctx.render(method, []),
        "type": "card_error",
    }
    intent["last_payment_error"] = error
    ctx.store.insert(charge)
    ctx.store.update(intent)
    ctx.emit("charge.failed", charge)
    ctx.emit("payment_intent.payment_failed", intent)
    raise StripeError(
        402,
        "card_error",
        decline.message,
        code=decline.code,
        param=decline.param,
        keep_changes=True,
        charge=charge["id"],
        decline_code=decline.decline_code,
        payment_intent=ctx.render(intent, []),
        payment_method=error["payment_method"],
        request_log_url=f"https://dashboard.stripe.com/test/logs/{ctx.request_id}",
    )


def _new_charge(
    ctx: Context, intent: dict[str, Any], method: dict[str, Any], decline: Decline | None
) -> dict[str, Any]:
    if decline is None:
        outcome: dict[str, Any] = {
            "network_status": "approved_by_network",
            "reason": None,
            "risk_level": "normal",
            "seller_message": "Payment complete.",
            "type": "authorized",
        }
    elif decline.decline_code == "fraudulent":
        outcome = {
            "network_status": "not_sent_to_network",
            "reason": "highest_risk_level",
            "risk_level": "highest",
            "seller_message": "Stripe blocked this payment as too risky.",
            "type": "blocked",
        }
    else:
        outcome = {
            "network_status": "declined_by_network",
            "reason": decline.decline_code,
            "risk_level": "normal",
            "seller_message": "The bank did not return any further details with this decline.",
            "type": "issuer_declined",
        }
    card = method["card"]
    return ctx.new_object(
        "ch_",
        "charge",
        amount=intent["amount"],
        amount_captured=0,
        amount_refunded=0,
        application_fee_amount=None,
        balance_transaction=None,
        billing_details=method["billing_details"],
        captured=False,
        currency=intent["currency"],
        customer=intent["customer"],
        description=intent["description"],
        disputed=False,
        failure_code=decline.code if decline else None,
        failure_message=decline.message if decline else None,
        metadata=dict(intent["metadata"]),
        outcome=outcome,
        paid=decline is None,
        payment_intent=intent["id"],
        payment_method=method["id"],
        payment_method_details={
            "card": {
                **{k: card[k] for k in ("brand", "checks", "country", "exp_month", "exp_year")},
                **{k: card[k] for k in ("fingerprint", "funding", "last4")},
                "network": card["brand"],
            },
            "type": "card",
        },
        receipt_email=intent["receipt_email"],
        refunded=False,
        status="failed" if decline else "succeeded",
        transfer_group=intent["transfer_group"],
    )


def _capture_charge(ctx: Context, charge: dict[str, Any], amount: int) -> None:
    fee = processing_fee(amount)
    charge["captured"] = True
    charge["amount_captured"] = amount
    charge["balance_transaction"] = ctx.balance_transaction(
        "charge", amount, charge["currency"], charge["id"], fee
    )


def retrieve(ctx: Context, params: Params, intent: str) -> dict[str, Any]:
    params.only("client_secret")
    return ctx.render(ctx.load("payment_intent", intent), params.expand())


def update(ctx: Context, params: Params, intent: str) -> dict[str, Any]:
    params.only(
        *_DESCRIPTIVE,
        "amount",
        "currency",
        "customer",
        "metadata",
        "payment_method",
        "capture_method",
        "payment_method_types",
    )
    obj = ctx.load("payment_intent", intent)
    changes_payment = any(
        params.has(n) for n in ("amount", "currency", "customer", "payment_method")
    )
    if changes_payment and obj["status"] not in _CONFIRMABLE:
        raise unexpected_state(
            f"You cannot update this PaymentIntent because it has a status of {obj['status']}."
        )
    if params.has("amount"):
        obj["amount"] = _amount(params)
    if params.has("currency"):
        obj["currency"] = params.currency()
    customer = params.string("customer")
    if customer is not None:
        obj["customer"] = ctx.load("customer", customer, "customer")["id"]
    _set_payment_method(ctx, obj, params)
    capture_method = params.string("capture_method", choices=_CAPTURE_METHODS)
    if capture_method is not None:
        obj["capture_method"] = capture_method
    for name in _DESCRIPTIVE:
        if params.has(name):
            obj[name] = params.string(name)
    obj["metadata"] = params.metadata(obj["metadata"])
    ctx.store.update(obj)
    return ctx.render(obj, params.expand())


def confirm(ctx: Context, params: Params, intent: str) -> dict[str, Any]:
    params.only(*_CONFIRM_PARAMS, "mandate_data", "client_secret")
    obj = ctx.load("payment_intent", intent)
    if obj["status"] not in _CONFIRMABLE:
        raise unexpected_state(
            "You cannot confirm this PaymentIntent because it has a status of"
            f" {obj['status']}. Only a PaymentIntent with one of the following statuses may"
            f" be confirmed: {', '.join(_CONFIRMABLE)}."
        )
    _set_payment_method(ctx, obj, params)
    capture_method = params.string("capture_method", choices=_CAPTURE_METHODS)
    if capture_method is not None:
        obj["capture_method"] = capture_method
    for name in ("receipt_email", "setup_future_usage"):
        if params.has(name):
            obj[name] = params.string(name)
    _confirm(ctx, obj)
    return ctx.render(obj, params.expand())


def capture(ctx: Context, params: Params, intent: str) -> dict[str, Any]:
    params.only("amount_to_capture", "metadata", "statement_descriptor", "final_capture")
    obj = ctx.load("payment_intent", intent)
    if obj["status"] != "requires_capture":
        raise unexpected_state(
            f"This PaymentIntent could not be captured because it has a status of"
            f" {obj['status']}. Only a PaymentIntent with one of the following statuses may be"
            " captured: requires_capture."
        )
    amount = params.integer("amount_to_capture", minimum=1) or obj["amount_capturable"]
    if amount > obj["amount_capturable"]:
        raise invalid(
            f"The amount to capture ({amount}) is greater than the amount capturable"
            f" ({obj['amount_capturable']}).",
            code="amount_too_large",
            param="amount_to_capture",
        )
    charge = ctx.load("charge", obj["latest_charge"])
    _capture_charge(ctx, charge, amount)
    obj["status"] = "succeeded"
    obj["amount_received"] = amount
    obj["amount_capturable"] = 0
    obj["metadata"] = params.metadata(obj["metadata"])
    ctx.store.update(charge)
    ctx.store.update(obj)
    ctx.record_movement("capture", charge, amount, {"payment_intent": obj["id"]})
    ctx.emit("charge.captured", charge)
    ctx.emit("payment_intent.succeeded", obj)
    return ctx.render(obj, params.expand())


def cancel(ctx: Context, params: Params, intent: str) -> dict[str, Any]:
    params.only("cancellation_reason")
    obj = ctx.load("payment_intent", intent)
    if obj["status"] not in _CANCELABLE:
        raise unexpected_state(
            f"You cannot cancel this PaymentIntent because it has a status of {obj['status']}."
            f" Only a PaymentIntent with one of the following statuses may be canceled:"
            f" {', '.join(_CANCELABLE)}."
        )
    obj["status"] = "canceled"
    obj["canceled_at"] = ctx.now
    obj["amount_capturable"] = 0
    obj["cancellation_reason"] = params.string(
        "cancellation_reason",
        choices=("duplicate", "fraudulent", "requested_by_customer", "abandoned"),
    )
    ctx.store.update(obj)
    ctx.emit("payment_intent.canceled", obj)
    return ctx.render(obj, params.expand())


def list_(ctx: Context, params: Params) -> dict[str, Any]:
    params.only("limit", "starting_after", "ending_before", "created", "customer")
    filters = equal_filters(params, "customer") + range_filters(params, "created")
    return ctx.list_page("payment_intent", "/v1/payment_intents", params, filters)


def retrieve_charge(ctx: Context, params: Params, charge: str) -> dict[str, Any]:
    return ctx.render(ctx.load("charge", charge), params.expand())


def update_charge(ctx: Context, params: Params, charge: str) -> dict[str, Any]:
    params.only("metadata", "description", "receipt_email")
    obj = ctx.load("charge", charge)
    for name in ("description", "receipt_email"):
        if params.has(name):
            obj[name] = params.string(name)
    obj["metadata"] = params.metadata(obj["metadata"])
    ctx.store.update(obj)
    ctx.emit("charge.updated", obj)
    return ctx.render(obj, params.expand())


def list_charges(ctx: Context, params: Params) -> dict[str, Any]:
    params.only(
        "limit",
        "starting_after",
        "ending_before",
        "created",
        "customer",
        "payment_intent",
        "transfer_group",
    )
    filters = equal_filters(params, "customer", "payment_intent", "transfer_group")
    filters += range_filters(params, "created")
    return ctx.list_page("charge", "/v1/charges", params, filters)


def register(router: Router) -> None:
    router.post("/v1/payment_intents", create)
    router.get("/v1/payment_intents", list_)
    router.get("/v1/payment_intents/{intent}", retrieve)
    router.post("/v1/payment_intents/{intent}", update)
    router.post("/v1/payment_intents/{intent}/confirm", confirm)
    router.post("/v1/payment_intents/{intent}/capture", capture)
    router.post("/v1/payment_intents/{intent}/cancel", cancel)
    router.get("/v1/charges", list_charges)
    router.get("/v1/charges/{charge}", retrieve_charge)
    router.post("/v1/charges/{charge}", update_charge)
