"""Stripe's balance transactions of transfers, for reconciliation: every transfer out of the
platform's balance in a time range, read page by page (newest first, 100 at a time) through
the production SDK client.

A page that fails on an outage or a rate limit (``ProviderError``) is asked again after a
pause, a few times, before the error is raised: a day of transfers is hundreds of pages,
and starting over for one failed page would ask them all again.
"""

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import stripe

from domain.errors import ProviderError
from domain.liquidity import Balance
from domain.rails import Rail
from integrations.stripe_client import stripe_errors

PAGE_SIZE = 100
PAGE_ATTEMPTS = 5
FIRST_PAUSE_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class TransferTransaction:
    """A balance transaction of type ``transfer``: ``amount`` is what left the balance
    (positive; Stripe shows it negative), ``currency`` upper case as ours are, ``created``
    Unix seconds."""

    id: str
    source: str
    amount: int
    currency: str
    created: int


def _source_id(source: Any) -> str:
    if isinstance(source, str):
        return source
    return str(getattr(source, "id", "") or "")


async def transfer_transactions(
    client: stripe.StripeClient,
    *,
    created_gte: int,
    created_lt: int,
    on_page: Callable[[int], None] | None = None,
    page_size: int = PAGE_SIZE,
    first_pause: float = FIRST_PAUSE_SECONDS,
) -> list[TransferTransaction]:
    """Every transfer's balance transaction created in ``created_gte``..``created_lt`` (Unix
    seconds, the end excluded). ``on_page(count so far)`` is called after each page (an
    activity heartbeats there)."""
    found: list[TransferTransaction] = []
    params: dict[str, Any] = {
        "type": "transfer",
        "limit": page_size,
        "created": {"gte": created_gte, "lt": created_lt},
    }
    while True:
        page = await _page(client, params, first_pause)
        for txn in page.data:
            found.append(
                TransferTransaction(
                    id=txn.id,
                    source=_source_id(txn.source),
                    amount=-int(txn.amount),
                    currency=str(txn.currency).upper(),
                    created=int(txn.created),
                )
            )
        if on_page is not None:
            on_page(len(found))
        if not page.has_more or not page.data:
            return found
        params = {**params, "starting_after": page.data[-1].id}


async def _page(
    client: stripe.StripeClient, params: dict[str, Any], first_pause: float
) -> stripe.ListObject[stripe.BalanceTransaction]:
    pause = first_pause
    for attempt in range(1, PAGE_ATTEMPTS + 1):
        try:
            with stripe_errors():
                return await client.v1.balance_transactions.list_async(params)  # type: ignore[arg-type]
        except ProviderError:
            if attempt == PAGE_ATTEMPTS:
                raise
            await asyncio.sleep(pause)
            pause *= 2
    raise AssertionError("unreachable")


# The balance itself, per currency, for liquidity (``GET /v1/balance``). Stripe lists funds
# per currency (lower case), possibly several entries of one currency (by source type): they
# are summed into one ``Balance`` per currency, upper case as ours are. ``available`` is what
# transfers and payouts can draw on now; ``pending`` is on its way in.


def _sum_funds(funds: Iterable[Any] | None, into: dict[str, int]) -> None:
    for entry in funds or ():
        code = str(entry.currency).upper()
        into[code] = into.get(code, 0) + int(entry.amount)


def balances_of(balance: stripe.Balance) -> list[Balance]:
    """One ``Balance`` per currency Stripe lists, by currency."""
    available: dict[str, int] = {}
    pending: dict[str, int] = {}
    _sum_funds(balance.available, available)
    _sum_funds(balance.pending, pending)
    return [
        Balance(
            rail=Rail.STRIPE.value,
            currency=code,
            available=available.get(code, 0),
            pending=pending.get(code, 0),
        )
        for code in sorted({*available, *pending})
    ]


async def retrieve_balances(client: stripe.StripeClient) -> list[Balance]:
    """The platform account's balance per currency, read once (a read: no idempotency key);
    ``ProviderError`` on an outage."""
    with stripe_errors():
        balance = await client.v1.balance.retrieve_async()
    return balances_of(balance)
