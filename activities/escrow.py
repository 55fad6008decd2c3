"""Escrow hold activities: each one transaction over ``services.escrow``.

Refusals (a disputed hold, missing approvals, an amount above what is held, nothing held any
more) are final ``ApplicationError``s; the workflow logs them and keeps waiting.
"""

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from activities.errors import business_errors
from domain.actors import Actor, Role
from models.escrow import EscrowHold
from services import escrow
from workflows.types import (
    EscrowApproveInput,
    EscrowDisputeInput,
    EscrowExtendInput,
    EscrowGiveBackInput,
    EscrowHoldState,
    EscrowLoadInput,
    EscrowReleaseInput,
    EscrowResolveInput,
)


def state_of(hold: EscrowHold, moved: int = 0) -> EscrowHoldState:
    return EscrowHoldState(
        status=hold.status,
        held_amount=hold.held_amount,
        currency=hold.currency,
        release_at=hold.release_at,
        payer_id=hold.payer_id,
        disputed=hold.dispute_reason is not None,
        required_approvals=hold.required_approvals,
        approvals=list(hold.approvals),
        moved=moved,
    )


def actor(name: str) -> Actor:
    return Actor(name, Role.SYSTEM)


class EscrowActivities:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sessionmaker = sessionmaker

    @activity.defn(name="escrow_load")
    async def load(self, request: EscrowLoadInput) -> EscrowHoldState:
        with business_errors():
            async with self.sessionmaker() as session:
                return state_of(await escrow.get(session, request.hold_id))

    @activity.defn(name="escrow_release")
    async def release(self, request: EscrowReleaseInput) -> EscrowHoldState:
        with business_errors():
            async with self.sessionmaker() as session, session.begin():
                moved = await escrow.release(
                    session,
                    request.hold_id,
                    key=request.key,
                    actor=actor(request.actor),
                    amount=request.amount,
                )
                return state_of(moved.hold, moved.amount)

    @activity.defn(name="escrow_give_back")
    async def give_back(self, request: EscrowGiveBackInput) -> EscrowHoldState:
        """Everything still held back to the payer: a refund, or the hold's cancellation."""
        with business_errors():
            async with self.sessionmaker() as session, session.begin():
                moved = await escrow.give_back(
                    session,
                    request.hold_id,
                    key=request.key,
                    actor=actor(request.actor),
                    cancel=request.cancel,
                )
                return state_of(moved.hold, moved.amount)

    @activity.defn(name="escrow_extend")
    async def extend(self, request: EscrowExtendInput) -> EscrowHoldState:
        with business_errors():
            async with self.sessionmaker() as session, session.begin():
                hold = await escrow.extend(
                    session,
                    request.hold_id,
                    release_at=request.release_at,
                    actor=actor(request.actor),
                )
                return state_of(hold)

    @activity.defn(name="escrow_dispute")
    async def dispute(self, request: EscrowDisputeInput) -> EscrowHoldState:
        with business_errors():
            async with self.sessionmaker() as session, session.begin():
                hold = await escrow.dispute(
                    session, request.hold_id, reason=request.reason, actor=actor(request.actor)
                )
                return state_of(hold)

    @activity.defn(name="escrow_resolve")
    async def resolve(self, request: EscrowResolveInput) -> EscrowHoldState:
        with business_errors():
            async with self.sessionmaker() as session, session.begin():
                hold = await escrow.resolve(session, request.hold_id, actor=actor(request.actor))
                return state_of(hold)

    @activity.defn(name="escrow_approve")
    async def approve(self, request: EscrowApproveInput) -> EscrowHoldState:
        with business_errors():
            async with self.sessionmaker() as session, session.begin():
                hold = await escrow.approve(
                    session,
                    request.hold_id,
                    approver=request.approver,
                    actor=actor(request.actor),
                )
                return state_of(hold)
