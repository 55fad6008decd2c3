"""Transfer batch activities. The database steps run on the main task queue; the Stripe
transfer of an item on the rate-limited Stripe task queue, under the transfer's own key
(``transfer-{id}``), so a retried or re-run activity never pays twice. Chain items are sent
by the chain token activities (``send_token_transfer``, ``check_token_transfer``) on the
chain task queue."""

import uuid

import stripe
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from activities.errors import business_errors
from activities.heartbeat import heartbeating
from domain.actors import Actor, Role
from domain.errors import Conflict
from domain.rails import Rail, chain_amount
from domain.transfers import TransferStatus
from integrations.stripe_client import create_transfer
from models.transfers import Transfer, TransferBatch
from services import transfers, vendor_settlements
from workflows.types import (
    TransferBatchItems,
    TransferBatchState,
    TransferBatchStepInput,
    TransferFailInput,
    TransferItemRef,
    TransferSendInput,
    TransferSendResult,
    TransferStarted,
    TransferStepInput,
    TransferStepResult,
    TransferSucceedInput,
)

SENDER = Actor("stripe-transfers", Role.SYSTEM)


def system(actor: str) -> Actor:
    return Actor(actor, Role.SYSTEM)


def batch_state(batch: TransferBatch) -> TransferBatchState:
    return TransferBatchState(
        status=batch.status,
        total=batch.total_count,
        pending=batch.pending_count,
        succeeded=batch.succeeded_count,
        failed=batch.failed_count,
        cancelled=batch.cancelled_count,
        run_count=batch.run_count,
    )


async def _batch_of(session: AsyncSession, item: Transfer) -> TransferBatchState | None:
    if item.batch_id is None:
        return None
    batch = await session.scalar(
        select(TransferBatch)
        .where(TransferBatch.id == item.batch_id)
        .execution_options(populate_existing=True)
    )
    return batch_state(batch) if batch is not None else None


class TransferActivities:
    """``token_decimals``: of the chain rail's token, to give chain items' amounts in its
    base units (``TOLLGATE_CHAIN_TOKEN_DECIMALS``)."""

    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], *, token_decimals: int = 6
    ) -> None:
        self.sessionmaker = sessionmaker
        self.token_decimals = token_decimals

    @activity.defn(name="transfer_batch_begin")
    async def begin(self, request: TransferBatchStepInput) -> TransferBatchItems:
        """The batch and the items to run now (pending, and processing ones left in flight);
        with ``retry_failed`` the failed ones are put back to pending first."""
        with business_errors():
            async with self.sessionmaker() as session, session.begin():
                if request.retry_failed:
                    await transfers.retry_failed(
                        session, request.batch_id, actor=system(request.actor), require=False
                    )
                batch = await transfers.get_batch(session, request.batch_id)
                items = await transfers.open_items(session, request.batch_id)
                return TransferBatchItems(
                    state=batch_state(batch),
                    items=[
                        TransferItemRef(transfer_id=item.id, rail=item.rail, status=item.status)
                        for item in items
                    ],
                )

    @activity.defn(name="transfer_start")
    async def start(self, request: TransferStepInput) -> TransferStarted:
        """PENDING → PROCESSING before a chain send (a Stripe send starts its item itself)."""
        with business_errors():
            async with self.sessionmaker() as session, session.begin():
                item = await transfers.get(session, request.transfer_id)
                if item.status != TransferStatus.SUCCEEDED.value:
                    item = await transfers.start(
                        session, request.transfer_id, actor=system(request.actor)
                    )
                return TransferStarted(
                    status=item.status,
                    destination=item.destination,
                    amount=chain_amount(item.amount, item.currency, self.token_decimals),
                    external_id=item.external_id,
                )

    @activity.defn(name="transfer_succeed")
    async def succeed(self, request: TransferSucceedInput) -> TransferStepResult:
        with business_errors():
            async with self.sessionmaker() as session, session.begin():
                item = await transfers.succeed(
                    session,
                    request.transfer_id,
                    external_id=request.external_id,
                    actor=system(request.actor),
                )
                await vendor_settlements.transfer_closed(session, item, actor=system(request.actor))
                return TransferStepResult(status=item.status, batch=await _batch_of(session, item))

    @activity.defn(name="transfer_fail")
    async def fail(self, request: TransferFailInput) -> TransferStepResult:
        with business_errors():
            async with self.sessionmaker() as session, session.begin():
                item = await transfers.fail(
                    session,
                    request.transfer_id,
                    error=request.error,
                    final=request.final,
                    actor=system(request.actor),
                )
                await vendor_settlements.transfer_closed(session, item, actor=system(request.actor))
                return TransferStepResult(status=item.status, batch=await _batch_of(session, item))

    @activity.defn(name="transfer_batch_cancel")
    async def cancel(self, request: TransferBatchStepInput) -> TransferBatchState:
        """The batch's items not started are cancelled."""
        with business_errors():
            async with self.sessionmaker() as session, session.begin():
                await transfers.cancel_pending(
                    session, request.batch_id, actor=system(request.actor)
                )
                return batch_state(await transfers.get_batch(session, request.batch_id))

    @activity.defn(name="transfer_batch_finish")
    async def finish(self, request: TransferBatchStepInput) -> TransferBatchState:
        """Completes the batch once every item is final (and announces it); a batch with
        open items (retried meanwhile) stays processing."""
        with business_errors():
            async with self.sessionmaker() as session, session.begin():
                batch = await transfers.finish(
                    session, request.batch_id, actor=system(request.actor)
                )
                return batch_state(batch)


class StripeTransferSendActivities:
    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], stripe_client: stripe.StripeClient
    ) -> None:
        self.sessionmaker = sessionmaker
        self.stripe_client = stripe_client

    async def _record_attempt_failure(self, transfer_id: uuid.UUID, error: str) -> None:
        async with self.sessionmaker() as session, session.begin():
            await transfers.record_attempt_failure(session, transfer_id, error=error, actor=SENDER)

    @activity.defn(name="transfer_stripe_send")
    async def send(self, request: TransferSendInput) -> TransferSendResult:
        """The item's Stripe transfer: PENDING → PROCESSING first (its own transaction), then
        the transfer under the item's key; every attempt sends the same key, so Stripe pays
        once. A failed attempt is counted on the row, then raised: ``ProviderError`` is
        retried by the workflow's policy, refusals are final."""
        with business_errors():
            async with self.sessionmaker() as session, session.begin():
                item = await transfers.get(session, request.transfer_id)
                if item.status == TransferStatus.SUCCEEDED.value and item.external_id:
                    return TransferSendResult(external_id=item.external_id)
                if item.rail != Rail.STRIPE.value:
                    raise Conflict(f"transfer {item.id} goes on {item.rail}, not stripe")
                item = await transfers.start(session, request.transfer_id, actor=SENDER)
            try:
                # Heartbeats while Stripe answers: a worker killed meanwhile is noticed after
                # the heartbeat timeout, and the retry replays the transfer under the same key.
                external_id = await heartbeating(
                    create_transfer(
                        self.stripe_client,
                        amount=item.amount,
                        currency=item.currency,
                        destination=item.destination,
                        idempotency_key=item.idempotency_key,
                        metadata={
                            "transfer_id": str(item.id),
                            "batch_id": str(item.batch_id or ""),
                            "partner_id": item.partner_id,
                            "reference": item.reference,
                        },
                    )
                )
            except Exception as failed:
                await self._record_attempt_failure(item.id, f"{type(failed).__name__}: {failed}")
                raise
        return TransferSendResult(external_id=external_id)
