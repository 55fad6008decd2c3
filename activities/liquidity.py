"""Activities of the liquidity check: the Stripe balance on the Stripe task queue, the chain
float on the chain task queue (where the chain's RPC is used), and the evaluation with its
alerts (one database transaction) on the main task queue. The reads move nothing, so a retry
is harmless; the evaluation records an alert once per crossing, however often it runs."""

from datetime import UTC, datetime

import stripe
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from activities.errors import business_errors
from domain.liquidity import Balance, Position
from integrations.chain_balance import read_float
from integrations.stripe_balance import retrieve_balances
from integrations.token_contract import TokenContract
from services import liquidity
from workflows.types import (
    LiquidityAlert,
    LiquidityCheckResult,
    LiquidityEvaluateInput,
    LiquidityPosition,
    ProviderBalance,
    ProviderBalanceInput,
    ProviderFunds,
)


def provider_balance(rail: str, balances: list[Balance]) -> ProviderBalance:
    return ProviderBalance(
        rail=rail,
        funds=[
            ProviderFunds(currency=b.currency, available=b.available, pending=b.pending)
            for b in balances
        ],
    )


def position_out(item: Position) -> LiquidityPosition:
    return LiquidityPosition(
        rail=item.rail,
        currency=item.currency,
        available=item.available,
        pending=item.pending,
        committed=item.committed,
        free=item.free,
        daily_volume=item.daily_volume,
        runway_days=item.runway_days,
        low=item.low,
    )


class StripeBalanceActivities:
    def __init__(self, client: stripe.StripeClient) -> None:
        self.client = client

    @activity.defn(name="liquidity_stripe_balance")
    async def stripe_balance(self, _: ProviderBalanceInput) -> ProviderBalance:
        with business_errors():
            return provider_balance("stripe", await retrieve_balances(self.client))


class ChainBalanceActivities:
    """``holder``: the platform's sending address, whose token balance is the float."""

    def __init__(self, token: TokenContract, holder: str, *, decimals: int) -> None:
        self.token = token
        self.holder = holder
        self.decimals = decimals

    @activity.defn(name="liquidity_chain_balance")
    async def chain_balance(self, _: ProviderBalanceInput) -> ProviderBalance:
        with business_errors():
            found = await read_float(self.token, self.holder, decimals=self.decimals)
            return provider_balance("chain", [found])


class LiquidityActivities:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sessionmaker = sessionmaker

    @activity.defn(name="liquidity_evaluate")
    async def evaluate(self, request: LiquidityEvaluateInput) -> LiquidityCheckResult:
        """The positions of the rails read, and the alerts of those that crossed the
        threshold since their last event, recorded in one transaction."""
        balances = [
            Balance(rail=b.rail, currency=f.currency, available=f.available, pending=f.pending)
            for b in request.balances
            for f in b.funds
        ]
        rails = {b.rail for b in request.balances}
        with business_errors():
            async with self.sessionmaker() as session, session.begin():
                now = datetime.now(UTC)
                found = await liquidity.positions(
                    session,
                    balances,
                    rails=rails,
                    now=now,
                    window_days=request.window_days,
                    alert_days=request.alert_days,
                )
                crossed = await liquidity.record_alerts(
                    session, found, as_of=now, alert_days=request.alert_days
                )
        return LiquidityCheckResult(
            status="low" if any(item.low for item in found) else "ok",
            as_of=now,
            positions=[position_out(item) for item in found],
            alerts=[
                LiquidityAlert(event_type=event, rail=item.rail, currency=item.currency)
                for item, event in crossed
            ],
        )
