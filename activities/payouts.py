"""Payout schedule activities. The database steps run on the main task queue; ``pay_out``, the
Stripe transfer, on the rate-limited Stripe task queue."""

import uuid

import stripe
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from activities.errors import business_errors
from activities.heartbeat import heartbeating
from domain.actors import Actor, Role
from domain.errors import Conflict
from domain.escrow import PayoutStatus
from integrations.stripe_client import create_transfer
from models.escrow import PayoutSchedule
from services import payouts
from workflows.types import (
    PayoutCancelInput,
    PayoutCompleteInput,
    PayoutFailInput,
    PayOutInput,
    PayoutLoadInput,
    PayOutResult,
    PayoutStartRunInput,
    PayoutState,
)

TRANSFER_ACTOR = Actor("stripe-transfers", Role.SYSTEM)


def state_of(schedule: PayoutSchedule) -> PayoutState:
    return PayoutState(
        status=schedule.status,
        retry_count=schedule.retry_count,
        last_error=schedule.last_error,
        run_number=schedule.run_number,
    )


class PayoutActivities:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sessionmaker = sessionmaker

    @activity.defn(name="payout_load")
    async def load(self, request: PayoutLoadInput) -> PayoutState:
        with business_errors():
            async with self.sessionmaker() as session:
                return state_of(await payouts.get(session, request.schedule_id))

    @activity.defn(name="payout_start_run")
    async def start_run(self, request: PayoutStartRunInput) -> PayoutState:
        with business_errors():
            async with self.sessionmaker() as session, session.begin():
                schedule = await payouts.start_run(
                    session,
                    request.schedule_id,
                    event=request.event,
                    actor=Actor(request.actor, Role.SYSTEM),
                )
                return state_of(schedule)

    async def record_attempt_failure(self, schedule_id: uuid.UUID, error: str) -> None:
        """Counts a failed transfer attempt, in its own transaction. Called by ``pay_out``, not
        by the workflow: under a server-side retry policy the workflow never sees single
        attempts."""
        async with self.sessionmaker() as session, session.begin():
            await payouts.record_attempt_failure(
                session, schedule_id, error=error, actor=TRANSFER_ACTOR
            )

    @activity.defn(name="payout_complete")
    async def complete(self, request: PayoutCompleteInput) -> PayoutState:
        with business_errors():
            async with self.sessionmaker() as session, session.begin():
                schedule = await payouts.complete(
                    session,
                    request.schedule_id,
                    transfer_id=request.transfer_id,
                    actor=Actor(request.actor, Role.SYSTEM),
                )
                return state_of(schedule)

    @activity.defn(name="payout_fail")
    async def fail(self, request: PayoutFailInput) -> PayoutState:
        with business_errors():
            async with self.sessionmaker() as session, session.begin():
                schedule = await payouts.fail(
                    session,
                    request.schedule_id,
                    error=request.error,
                    final=request.final,
                    actor=Actor(request.actor, Role.SYSTEM),
                )
                return state_of(schedule)

    @activity.defn(name="payout_cancel")
    async def cancel(self, request: PayoutCancelInput) -> PayoutState:
        with business_errors():
            async with self.sessionmaker() as session, session.begin():
                schedule = await payouts.cancel(
                    session,
                    request.schedule_id,
                    actor=Actor(request.actor, Role.SYSTEM),
                    reason=request.reason,
                )
                return state_of(schedule)


class StripeTransferActivities:
    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], stripe_client: stripe.StripeClient
    ) -> None:
        self.sessionmaker = sessionmaker
        self.stripe_client = stripe_client
        self.database = PayoutActivities(sessionmaker)

    @activity.defn(name="pay_out")
    async def pay_out(self, request: PayOutInput) -> PayOutResult:
        """The run's Stripe transfer, under the run's idempotency key: every attempt of a run
        sends the same key, so Stripe pays once. A failed attempt is counted on the schedule,
        then raised: ``ProviderError`` is retried, refusals are final."""
        with business_errors():
            async with self.sessionmaker() as session:
                schedule = await payouts.get(session, request.schedule_id)
            if schedule.status != PayoutStatus.PROCESSING.value:
                raise Conflict(
                    f"payout schedule {schedule.id} is {schedule.status}, not processing",
                    status=schedule.status,
                )
            try:
                # Heartbeats while Stripe answers: a worker killed meanwhile is noticed after
                # the heartbeat timeout, and the retry replays the transfer under the same key.
                transfer_id = await heartbeating(
                    create_transfer(
                        self.stripe_client,
                        amount=schedule.amount,
                        currency=schedule.currency,
                        destination=schedule.destination,
                        idempotency_key=payouts.idempotency_key(schedule),
                        metadata={
                            "payout_schedule_id": str(schedule.id),
                            "run_number": str(schedule.run_number),
                        },
                    )
                )
            except Exception as failed:
                await self.database.record_attempt_failure(
                    schedule.id, f"{type(failed).__name__}: {failed}"
                )
                raise
        return PayOutResult(transfer_id=transfer_id)
