"""``/v1/balance`` and ``/v1/balance_transactions``."""

from typing import Any

from ..context import Context, equal_filters, range_filters
from ..params import Params
from ..routing import Router

_DEFAULT_CURRENCY = "usd"


def retrieve_balance(ctx: Context, params: Params) -> dict[str, Any]:
    params.only()
    totals = ctx.store.balance_totals()
    currencies = sorted({currency for currency, _ in totals} or {_DEFAULT_CURRENCY})

    def funds(status: str) -> list[dict[str, Any]]:
        return [
            {
                "amount": (amount := totals.get((currency, status), 0)),
                "currency": currency,
                "source_types": {"card": amount},
            }
            for currency in currencies
        ]

    return {
        "object": "balance",
        "available": funds("available"),
        "connect_reserved": [{"amount": 0, "currency": currency} for currency in currencies],
        "livemode": False,
        "pending": funds("pending"),
    }


def retrieve_transaction(ctx: Context, params: Params, transaction: str) -> dict[str, Any]:
    return ctx.render(ctx.load("balance_transaction", transaction), params.expand())


def list_transactions(ctx: Context, params: Params) -> dict[str, Any]:
    params.only("limit", "starting_after", "ending_before", "created", "currency", "source", "type")
    filters = equal_filters(params, "currency", "source", "type") + range_filters(params, "created")
    return ctx.list_page("balance_transaction", "/v1/balance_transactions", params, filters)


def register(router: Router) -> None:
    router.get("/v1/balance", retrieve_balance)
    router.get("/v1/balance_transactions", list_transactions)
    router.get("/v1/balance_transactions/{transaction}", retrieve_transaction)
