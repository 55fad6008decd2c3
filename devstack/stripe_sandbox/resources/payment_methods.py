"""``/v1/payment_methods`` (cards only), including Stripe's magic ids like ``pm_card_visa``."""

import time
from typing import Any

from ..cards import card_details, luhn_valid, test_card_number
from ..context import Context, equal_filters
from ..errors import StripeError, invalid
from ..params import Params
from ..routing import Router

_ADDRESS = ("city", "country", "line1", "line2", "postal_code", "state")
_LIST_PARAMS = ("limit", "starting_after", "ending_before", "type")


def _card_error(message: str, code: str, param: str) -> StripeError:
    return StripeError(402, "card_error", message, code=code, param=param)


def _new_card_method(ctx: Context, number: str, exp_month: int, exp_year: int) -> dict[str, Any]:
    return ctx.new_object(
        "pm_",
        "payment_method",
        allow_redisplay="unspecified",
        billing_details={
            "address": dict.fromkeys(_ADDRESS),
            "email": None,
            "name": None,
            "phone": None,
            "tax_id": None,
        },
        card=card_details(number, exp_month, exp_year),
        customer=None,
        metadata={},
        type="card",
        _number=number,
    )


def _from_test_id(ctx: Context, magic_id: str) -> dict[str, Any] | None:
    number = test_card_number(magic_id)
    if number is None:
        return None
    method = _new_card_method(ctx, number, 12, time.gmtime(ctx.now).tm_year + 3)
    ctx.store.insert(method)
    return method


def resolve(ctx: Context, payment_method: str, param: str) -> dict[str, Any]:
    """A stored PaymentMethod, or a fresh one for a magic id (as Stripe does for each use)."""
    return _from_test_id(ctx, payment_method) or ctx.load("payment_method", payment_method, param)


def _apply_billing_details(method: dict[str, Any], params: Params) -> None:
    details = params.nested("billing_details")
    if details is None:
        return
    details.only("address", "email", "name", "phone", "tax_id")
    for name in ("email", "name", "phone", "tax_id"):
        if details.has(name):
            method["billing_details"][name] = details.string(name)
    address = details.nested("address")
    if address is not None:
        address.only(*_ADDRESS)
        for name in _ADDRESS:
            if address.has(name):
                method["billing_details"]["address"][name] = address.string(name)


def create(ctx: Context, params: Params) -> dict[str, Any]:
    params.only("type", "card", "billing_details", "metadata", "allow_redisplay")
    params.required_string("type", choices=("card",))
    card = params.nested("card")
    if card is None:
        raise invalid("Missing required param: card.", code="parameter_missing", param="card")
    card.only("number", "exp_month", "exp_year", "cvc", "token")
    token = card.string("token")
    if token is not None:
        method = _from_test_id(ctx, token)
        if method is None:
            raise invalid(f"No such token: '{token}'", code="resource_missing", param="card[token]")
    else:
        method = _from_card_numbers(ctx, card)
        ctx.store.insert(method)
    method["metadata"] = params.metadata()
    _apply_billing_details(method, params)
    ctx.store.update(method)
    return ctx.render(method, params.expand())


def _from_card_numbers(ctx: Context, card: Params) -> dict[str, Any]:
    number = card.required_string("number").replace(" ", "")
    exp_month = card.required_integer("exp_month")
    exp_year = card.required_integer("exp_year")
    if not luhn_valid(number):
        raise _card_error("Your card number is incorrect.", "incorrect_number", "number")
    if not 1 <= exp_month <= 12:
        raise _card_error(
            "Your card's expiration month is invalid.", "invalid_expiry_month", "exp_month"
        )
    today = time.gmtime(ctx.now)
    if exp_year < 100:
        exp_year += 2000
    if (exp_year, exp_month) < (today.tm_year, today.tm_mon):
        raise _card_error(
            "Your card's expiration year is invalid.", "invalid_expiry_year", "exp_year"
        )
    return _new_card_method(ctx, number, exp_month, exp_year)


def retrieve(ctx: Context, params: Params, payment_method: str) -> dict[str, Any]:
    return ctx.render(ctx.load("payment_method", payment_method), params.expand())


def update(ctx: Context, params: Params, payment_method: str) -> dict[str, Any]:
    params.only("metadata", "billing_details", "card", "allow_redisplay")
    method = ctx.load("payment_method", payment_method)
    method["metadata"] = params.metadata(method["metadata"])
    _apply_billing_details(method, params)
    card = params.nested("card")
    if card is not None:
        card.only("exp_month", "exp_year")
        for name in ("exp_month", "exp_year"):
            value = card.integer(name)
            if value is not None:
                method["card"][name] = value
    ctx.store.update(method)
    ctx.emit("payment_method.updated", method)
    return ctx.render(method, params.expand())


def attach_to(ctx: Context, payment_method: str, customer_id: str) -> dict[str, Any]:
    ctx.load("customer", customer_id, "customer")
    method = resolve(ctx, payment_method, "payment_method")
    if method["customer"] not in (None, customer_id):
        raise invalid(
            "The payment method you provided has already been attached to a customer.",
            code="payment_method_unexpected_state",
            param="payment_method",
        )
    if method["customer"] is None:
        method["customer"] = customer_id
        ctx.store.update(method)
        ctx.emit("payment_method.attached", method)
    return method


def attach(ctx: Context, params: Params, payment_method: str) -> dict[str, Any]:
    params.only("customer")
    customer = params.required_string("customer")
    return ctx.render(attach_to(ctx, payment_method, customer), params.expand())


def detach(ctx: Context, params: Params, payment_method: str) -> dict[str, Any]:
    params.only()
    method = ctx.load("payment_method", payment_method)
    if method["customer"] is None:
        raise invalid(
            "The payment method you provided is not attached to a customer so detachment is"
            " impossible.",
            code="payment_method_unexpected_state",
            param="payment_method",
        )
    method["customer"] = None
    ctx.store.update(method)
    ctx.emit("payment_method.detached", method)
    return ctx.render(method, params.expand())


def list_(ctx: Context, params: Params) -> dict[str, Any]:
    params.only(*_LIST_PARAMS, "customer")
    params.string("type", choices=("card",))
    filters = equal_filters(params, "customer")
    return ctx.list_page("payment_method", "/v1/payment_methods", params, filters)


def list_for_customer(ctx: Context, params: Params, customer: str) -> dict[str, Any]:
    params.only(*_LIST_PARAMS, "allow_redisplay")
    ctx.load("customer", customer)
    params.string("type", choices=("card",))
    url = f"/v1/customers/{customer}/payment_methods"
    return ctx.list_page("payment_method", url, params, [("customer", "=", customer)])


def register(router: Router) -> None:
    router.post("/v1/payment_methods", create)
    router.get("/v1/payment_methods", list_)
    router.get("/v1/payment_methods/{payment_method}", retrieve)
    router.post("/v1/payment_methods/{payment_method}", update)
    router.post("/v1/payment_methods/{payment_method}/attach", attach)
    router.post("/v1/payment_methods/{payment_method}/detach", detach)
    router.get("/v1/customers/{customer}/payment_methods", list_for_customer)
