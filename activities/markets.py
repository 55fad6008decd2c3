"""Market resolution activities: each one transaction over ``services.markets``.

Refusals (a market already resolved, a move its status does not allow) are final
``ApplicationError``s; the workflow logs them and reloads the market.
"""

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from activities.errors import business_errors
from activities.heartbeat import heartbeating
from domain.actors import Actor, Role
from models.markets import Market, MarketResolution
from services import markets
from workflows.types import (
    MarketLoadInput,
    MarketReasonInput,
    MarketStartInput,
    MarketState,
    MarketStepInput,
)


def state_of(market: Market, resolution: MarketResolution | None) -> MarketState:
    if resolution is None:
        return MarketState(status=market.status)
    return MarketState(
        status=market.status,
        resolution_id=resolution.id,
        resolution_status=resolution.status,
        winning_option_id=resolution.winning_option_id,
        pool=resolution.pool,
        paid_out=resolution.paid_out,
        error=resolution.error,
    )


def actor(name: str) -> Actor:
    return Actor(name, Role.SYSTEM)


class MarketActivities:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sessionmaker = sessionmaker

    async def _state(self, session: AsyncSession, resolution: MarketResolution) -> MarketState:
        return state_of(await markets.get(session, resolution.market_id), resolution)

    @activity.defn(name="market_load")
    async def load(self, request: MarketLoadInput) -> MarketState:
        with business_errors():
            async with self.sessionmaker() as session:
                market = await markets.get(session, request.market_id)
                return state_of(market, await markets.latest_resolution(session, market.id))

    @activity.defn(name="market_start_resolution")
    async def start_resolution(self, request: MarketStartInput) -> MarketState:
        with business_errors():
            async with self.sessionmaker() as session, session.begin():
                resolution = await markets.start_resolution(
                    session,
                    request.market_id,
                    option_id=request.option_id,
                    key=request.key,
                    actor=actor(request.actor),
                )
                return await self._state(session, resolution)

    @activity.defn(name="market_distribute")
    async def distribute(self, request: MarketStepInput) -> MarketState:
        """The whole distribution in one transaction (heartbeating: a large market takes
        seconds, and a dead worker's attempt should be retried without waiting it out)."""
        with business_errors():
            return await heartbeating(self._distribute(request))

    async def _distribute(self, request: MarketStepInput) -> MarketState:
        async with self.sessionmaker() as session, session.begin():
            resolution = await markets.distribute_resolution(
                session, request.resolution_id, actor=actor(request.actor)
            )
            return await self._state(session, resolution)

    @activity.defn(name="market_abandon_resolution")
    async def abandon(self, request: MarketReasonInput) -> MarketState:
        with business_errors():
            async with self.sessionmaker() as session, session.begin():
                resolution = await markets.abandon_resolution(
                    session, request.resolution_id, error=request.reason, actor=actor(request.actor)
                )
                return await self._state(session, resolution)

    @activity.defn(name="market_dispute")
    async def dispute(self, request: MarketReasonInput) -> MarketState:
        with business_errors():
            async with self.sessionmaker() as session, session.begin():
                resolution = await markets.dispute(
                    session,
                    request.resolution_id,
                    reason=request.reason,
                    actor=actor(request.actor),
                )
                return await self._state(session, resolution)

    @activity.defn(name="market_uphold")
    async def uphold(self, request: MarketStepInput) -> MarketState:
        with business_errors():
            async with self.sessionmaker() as session, session.begin():
                resolution = await markets.uphold(
                    session, request.resolution_id, actor=actor(request.actor)
                )
                return await self._state(session, resolution)

    @activity.defn(name="market_rollback")
    async def rollback(self, request: MarketReasonInput) -> MarketState:
        with business_errors():
            async with self.sessionmaker() as session, session.begin():
                resolution = await markets.rollback(
                    session,
                    request.resolution_id,
                    reason=request.reason,
                    actor=actor(request.actor),
                )
                return await self._state(session, resolution)

    @activity.defn(name="market_settle")
    async def settle(self, request: MarketStepInput) -> MarketState:
        with business_errors():
            async with self.sessionmaker() as session, session.begin():
                resolution = await markets.settle(
                    session, request.resolution_id, actor=actor(request.actor)
                )
                return await self._state(session, resolution)
