"""Liquidity (platform and billing admins): per rail and currency, the provider's balance
read live (Stripe's ``GET /v1/balance``, the chain sender's token balance), what is
committed to transfers and payouts not sent yet, what is free, the daily volume over the
last ``days`` and the runway it gives, with the last alert the hourly check recorded.

A provider that does not answer within a few seconds makes the request a 503
``balance_unavailable`` naming it (``rail=`` reads one rail only)."""

import asyncio
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Annotated

import stripe
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from api.deps import Admin, Session, get_settings
from domain.errors import ProviderError, TollgateError, ValidationError
from domain.liquidity import MAX_WINDOW_DAYS, Balance
from domain.rails import Rail
from integrations.chain import make_web3
from integrations.chain_balance import read_float
from integrations.stripe_balance import retrieve_balances
from integrations.token_contract import TokenContract
from services import liquidity
from settings import Settings

router = APIRouter(prefix="/liquidity", tags=["liquidity"])

AppSettings = Annotated[Settings, Depends(get_settings)]
# How long the endpoint waits for a provider's balance before answering 503.
PROVIDER_TIMEOUT_SECONDS = 5.0


class PositionOut(BaseModel):
    rail: Rail
    currency: str = Field(description="The chain's one float is shown in USDC (USD counts 1:1)")
    available: int = Field(description="The provider's spendable balance, in minor units")
    pending: int = Field(description="Stripe's incoming balance: not spendable yet, not counted")
    committed: int = Field(
        description="Transfers pending, queued or processing, and Stripe payouts pending or "
        "processing"
    )
    free: int = Field(description="available - committed; negative when overcommitted")
    daily_volume: int = Field(description="Sent over the window, per day (rounded up)")
    window_days: int
    runway_days: float | None = Field(
        description="free / daily_volume, rounded down; null without recent volume"
    )
    low: bool = Field(description="runway under the alert threshold, or overcommitted")
    overcommitted: bool
    last_event: str | None = Field(
        description="The last alert the hourly check recorded for it (liquidity.runway_low "
        "or liquidity.runway_recovered)"
    )
    last_event_at: datetime | None


class LiquidityOut(BaseModel):
    object: str = "liquidity"
    as_of: datetime
    window_days: int
    alert_days: float
    data: list[PositionOut]


def _unavailable(rail: Rail, problem: str) -> ProviderError:
    return ProviderError(
        f"the {rail} balance is unavailable: {problem}", code="balance_unavailable", rail=rail
    )


async def _within_timeout(rail: Rail, read: Awaitable[list[Balance]]) -> list[Balance]:
    try:
        return await asyncio.wait_for(read, PROVIDER_TIMEOUT_SECONDS)
    except TimeoutError:
        raise _unavailable(rail, f"no answer within {PROVIDER_TIMEOUT_SECONDS:.0f}s") from None
    except TollgateError as exc:
        raise _unavailable(rail, exc.message) from exc


async def _chain_float(settings: Settings) -> list[Balance]:
    try:
        token_address = settings.token_address()
    except RuntimeError as exc:
        raise _unavailable(Rail.CHAIN, f"the chain rail is not configured ({exc})") from exc
    w3 = make_web3(settings.chain_rpc_url, request_timeout=PROVIDER_TIMEOUT_SECONDS, retry=False)
    token = TokenContract(w3, token_address)
    holder = settings.chain_sender_address()
    return [await read_float(token, holder, decimals=settings.chain_token_decimals)]


async def read_balances(request: Request, settings: Settings, rails: list[Rail]) -> list[Balance]:
    """The balances of ``rails``, read at once; a 503 naming every provider that failed."""
    reads: list[Awaitable[list[Balance]]] = []
    for rail in rails:
        if rail is Rail.STRIPE:
            client: stripe.StripeClient = request.app.state.stripe
            reads.append(_within_timeout(rail, retrieve_balances(client)))
        else:
            reads.append(_within_timeout(rail, _chain_float(settings)))
    results = await asyncio.gather(*reads, return_exceptions=True)
    failed = [result for result in results if isinstance(result, BaseException)]
    if failed:
        if len(failed) == 1:
            raise failed[0]
        messages = "; ".join(
            error.message if isinstance(error, TollgateError) else str(error) for error in failed
        )
        raise ProviderError(messages, code="balance_unavailable")
    return [balance for result in results if isinstance(result, list) for balance in result]


@router.get("")
async def get_liquidity(
    request: Request,
    session: Session,
    settings: AppSettings,
    _: Admin,
    days: Annotated[
        int | None,
        Query(ge=1, le=MAX_WINDOW_DAYS, description="Days of volume (default: the setting)"),
    ] = None,
    rail: Annotated[Rail | None, Query(description="Only this rail")] = None,
) -> LiquidityOut:
    """Balances, commitments, daily volume and runway per rail and currency, read now."""
    enabled = [Rail(name) for name in settings.rail_routing.enabled]
    if rail is not None and rail not in enabled:
        raise ValidationError(
            f"the {rail} rail is not enabled", code="rail_unavailable", param="rail"
        )
    rails = [rail] if rail is not None else enabled
    window = days or settings.liquidity_window_days
    alert_days = settings.liquidity_runway_alert_days
    # The providers first: the request's transaction takes a connection at its first query.
    balances = await read_balances(request, settings, rails)
    now = datetime.now(UTC)
    found = await liquidity.positions(
        session,
        balances,
        rails={r.value for r in rails},
        now=now,
        window_days=window,
        alert_days=alert_days,
    )
    last = await liquidity.last_events(session)
    return LiquidityOut(
        as_of=now,
        window_days=window,
        alert_days=alert_days,
        data=[
            PositionOut(
                rail=Rail(item.rail),
                currency=item.currency,
                available=item.available,
                pending=item.pending,
                committed=item.committed,
                free=item.free,
                daily_volume=item.daily_volume,
                window_days=item.window_days,
                runway_days=item.runway_days,
                low=item.low,
                overcommitted=item.overcommitted,
                last_event=event.event_type if (event := last.get(item.entity_id)) else None,
                last_event_at=event.at if event else None,
            )
            for item in found
        ],
    )
