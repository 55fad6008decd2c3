"""``/v1/customers``."""

from typing import Any

from ..context import Context, equal_filters, range_filters
from ..errors import invalid
from ..params import Params
from ..routing import Router
from .payment_methods import attach_to

_FIELDS = ("email", "name", "description", "phone")


def create(ctx: Context, params: Params) -> dict[str, Any]:
    params.only(*_FIELDS, "metadata", "payment_method", "invoice_settings")
    customer = ctx.new_object(
        "cus_",
        "customer",
        address=None,
        balance=0,
        currency=None,
        default_source=None,
        delinquent=False,
        discount=None,
        invoice_prefix=None,
        invoice_settings={
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },
        metadata=params.metadata(),
        preferred_locales=[],
        shipping=None,
        tax_exempt="none",
        **{name: params.string(name) for name in _FIELDS},
    )
    ctx.store.insert(customer)
    payment_method = params.string("payment_method")
    if payment_method is not None:
        attach_to(ctx, payment_method, customer["id"])
    _apply_invoice_settings(ctx, customer, params)
    ctx.store.update(customer)
    ctx.emit("customer.created", customer)
    return ctx.render(customer, params.expand())


def retrieve(ctx: Context, params: Params, customer: str) -> dict[str, Any]:
    obj = ctx.store.get(customer)
    if obj is not None and obj["object"] == "customer" and obj.get("deleted"):
        return {"id": customer, "object": "customer", "deleted": True}
    return ctx.render(ctx.load("customer", customer), params.expand())


def update(ctx: Context, params: Params, customer: str) -> dict[str, Any]:
    params.only(*_FIELDS, "metadata", "invoice_settings")
    obj = ctx.load("customer", customer)
    for name in _FIELDS:
        if params.has(name):
            obj[name] = params.string(name)
    obj["metadata"] = params.metadata(obj["metadata"])
    _apply_invoice_settings(ctx, obj, params)
    ctx.store.update(obj)
    ctx.emit("customer.updated", obj)
    return ctx.render(obj, params.expand())


def delete(ctx: Context, params: Params, customer: str) -> dict[str, Any]:
    params.only()
    obj = ctx.load("customer", customer)
    ctx.emit("customer.deleted", obj)
    # A tombstone, so that retrieving it answers ``deleted: true`` as Stripe does.
    ctx.store.update(
        {"id": customer, "object": "customer", "created": obj["created"], "deleted": True}
    )
    return {"id": customer, "object": "customer", "deleted": True}


def list_(ctx: Context, params: Params) -> dict[str, Any]:
    params.only("limit", "starting_after", "ending_before", "created", "email")
    filters = [("deleted", "missing", None), *equal_filters(params, "email")]
    return ctx.list_page(
        "customer", "/v1/customers", params, filters + range_filters(params, "created")
    )


def _apply_invoice_settings(ctx: Context, customer: dict[str, Any], params: Params) -> None:
    settings = params.nested("invoice_settings")
    if settings is None:
        return
    settings.only("default_payment_method", "custom_fields", "footer", "rendering_options")
    default = settings.string("default_payment_method")
    if default is not None:
        method = ctx.load("payment_method", default, "invoice_settings[default_payment_method]")
        if method["customer"] != customer["id"]:
            raise invalid(
                f"The payment method {default} is not attached to customer {customer['id']}.",
                param="invoice_settings[default_payment_method]",
            )
    customer["invoice_settings"]["default_payment_method"] = default


def register(router: Router) -> None:
    router.post("/v1/customers", create)
    router.get("/v1/customers", list_)
    router.get("/v1/customers/{customer}", retrieve)
    router.post("/v1/customers/{customer}", update)
    router.delete("/v1/customers/{customer}", delete)
