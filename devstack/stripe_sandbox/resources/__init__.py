"""The Stripe resources the sandbox serves, one module per family of endpoints."""

from ..routing import Router
from . import balance, customers, events, payment_intents, payment_methods, refunds, transfers


def build_router() -> Router:
    router = Router()
    for module in (
        customers,
        payment_methods,
        payment_intents,
        refunds,
        transfers,
        balance,
        events,
    ):
        module.register(router)
    return router
