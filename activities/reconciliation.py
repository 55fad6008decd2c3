"""Reconciliation activities. ``reconciliation_begin`` and ``reconciliation_finish`` are
database steps on the main task queue. Each source's step reads the provider's records of
the run's period (widened by the margin), the ledger's, matches them and stores the
discrepancies and counts in one transaction, returning only the counts: a day's records
(100,000 transfers) never travel through the workflow's history. Storing replaces what an
earlier attempt of the same step stored, so a retry is harmless.

``reconcile_stripe`` (Stripe's balance transactions of type ``transfer``) runs on the Stripe
task queue; ``reconcile_chain`` (the token's ``Transfer`` events from the platform's sender)
on the main task queue: it only reads the chain, and the chain task queue's one slot belongs
to the serialized sender.
"""

import asyncio
import math
from collections.abc import Callable
from datetime import timedelta

import stripe
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from activities.errors import business_errors
from activities.heartbeat import heartbeating
from domain.actors import Actor, Role
from domain.errors import Conflict, ValidationError
from domain.reconciliation import (
    CHAIN_UNIT,
    ExternalRecord,
    Outcome,
    RunStatus,
    RunTrigger,
    Source,
    reconcile,
)
from integrations.chain import make_web3
from integrations.chain_blocks import BlockClock
from integrations.stripe_balance import transfer_transactions
from integrations.token_contract import TokenContract
from models.reconciliation import ReconciliationRun
from services import reconciliation
from workflows.types import (
    ReconcileSourceInput,
    ReconcileSourceResult,
    ReconciliationBeginInput,
    ReconciliationFinishInput,
    ReconciliationResult,
    ReconciliationRunRef,
)


def system(actor: str) -> Actor:
    return Actor(actor, Role.SYSTEM)


def result_of(run: ReconciliationRun) -> ReconciliationResult:
    return ReconciliationResult(
        run_id=run.id,
        status=run.status,
        ledger_count=run.ledger_count,
        external_count=run.external_count,
        matched_count=run.matched_count,
        discrepancy_count=run.discrepancy_count,
        match_rate=str(run.match_rate) if run.match_rate is not None else None,
        error=run.error,
    )


def source_result_of(source: Source, outcome: Outcome) -> ReconcileSourceResult:
    return ReconcileSourceResult(
        source=source.value,
        ledger_count=outcome.ledger_count,
        external_count=outcome.external_count,
        matched_count=outcome.matched_count,
        discrepancy_count=outcome.discrepancy_count,
    )


class ReconciliationActivities:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sessionmaker = sessionmaker

    @activity.defn(name="reconciliation_begin")
    async def begin(self, request: ReconciliationBeginInput) -> ReconciliationRunRef:
        """The run the API created, or the run of this workflow (created once)."""
        with business_errors():
            async with self.sessionmaker() as session, session.begin():
                if request.run_id is not None:
                    run = await reconciliation.get_run(session, request.run_id)
                else:
                    if request.period_start is None or request.period_end is None:
                        raise ValidationError("a new run needs its period", param="period_start")
                    run = await reconciliation.create_run(
                        session,
                        period_start=request.period_start,
                        period_end=request.period_end,
                        trigger=RunTrigger(request.trigger),
                        sources=request.sources,
                        actor=system(request.actor),
                        workflow=request.workflow_id,
                    )
                return ReconciliationRunRef(
                    run_id=run.id, status=run.status, sources=list(run.sources)
                )

    @activity.defn(name="reconciliation_finish")
    async def finish(self, request: ReconciliationFinishInput) -> ReconciliationResult:
        """COMPLETED with the totals and match rate; FAILED with ``error`` if given."""
        with business_errors():
            async with self.sessionmaker() as session, session.begin():
                actor = system(request.actor)
                if request.error is not None:
                    run = await reconciliation.fail_run(
                        session, request.run_id, error=request.error, actor=actor
                    )
                else:
                    run = await reconciliation.complete_run(session, request.run_id, actor=actor)
                return result_of(run)


class _SourceStep:
    """What each source's step shares: the run read first, and the matching and storing."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], token_decimals: int) -> None:
        self.sessionmaker = sessionmaker
        self.token_decimals = token_decimals

    async def _running(self, request: ReconcileSourceInput) -> ReconciliationRun:
        async with self.sessionmaker() as session:
            run = await reconciliation.get_run(session, request.run_id)
        if run.status != RunStatus.RUNNING.value:
            raise Conflict(f"reconciliation run {run.id} is {run.status}", code="run_finished")
        return run

    async def _match_and_store(
        self,
        run: ReconciliationRun,
        source: Source,
        external: list[ExternalRecord],
        margin: timedelta,
    ) -> ReconcileSourceResult:
        start, end = reconciliation.window(run, margin)
        async with self.sessionmaker() as session, session.begin():
            ledger = await reconciliation.ledger_records(
                session,
                source,
                window_start=start,
                window_end=end,
                period_start=run.period_start,
                period_end=run.period_end,
                token_decimals=self.token_decimals,
            )
            activity.heartbeat(f"{len(ledger)} ledger records")
            outcome = reconcile(ledger, external)
            await reconciliation.store_source(session, run.id, source, outcome)
        return source_result_of(source, outcome)


class StripeReconciliationActivities(_SourceStep):
    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], stripe_client: stripe.StripeClient
    ) -> None:
        super().__init__(sessionmaker, token_decimals=0)
        self.stripe_client = stripe_client

    @activity.defn(name="reconcile_stripe")
    async def reconcile_stripe(self, request: ReconcileSourceInput) -> ReconcileSourceResult:
        """Stripe's transfers (balance transactions) against the ledger's Stripe transfers
        and payouts."""
        with business_errors():
            run = await self._running(request)
            margin = timedelta(seconds=request.margin_seconds)
            start, end = reconciliation.window(run, margin)
            period_start, period_end = run.period_start.timestamp(), run.period_end.timestamp()
            # Stripe's times are whole seconds: the window is rounded outwards.
            found = await transfer_transactions(
                self.stripe_client,
                created_gte=math.floor(start.timestamp()),
                created_lt=math.ceil(end.timestamp()),
                on_page=lambda count: activity.heartbeat(f"{count} balance transactions"),
            )
            external = [
                ExternalRecord(
                    txn.source,
                    txn.amount,
                    txn.currency,
                    txn.id,
                    period_start <= txn.created < period_end,
                )
                for txn in found
                if txn.source
            ]
            return await self._match_and_store(run, Source.STRIPE, external, margin)


class ChainReconciliationActivities(_SourceStep):
    """``token_address`` is asked for when a step runs (the development chain's token is
    known once deployed); ``sender`` is the platform's address, whose ``Transfer`` events
    are the chain rail's payments."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        rpc_url: str,
        token_address: Callable[[], str],
        sender: str,
        token_decimals: int = 6,
    ) -> None:
        super().__init__(sessionmaker, token_decimals=token_decimals)
        self.rpc_url = rpc_url
        self.token_address = token_address
        self.sender = sender

    @activity.defn(name="reconcile_chain")
    async def reconcile_chain(self, request: ReconcileSourceInput) -> ReconcileSourceResult:
        """The token's ``Transfer`` events from the platform's sender in the blocks of the
        window against the ledger's chain transfers, in the token's base units."""
        with business_errors():
            run = await self._running(request)
            margin = timedelta(seconds=request.margin_seconds)
            start, end = reconciliation.window(run, margin)
            external = await heartbeating(
                asyncio.to_thread(
                    self._events,
                    (start.timestamp(), end.timestamp()),
                    (run.period_start.timestamp(), run.period_end.timestamp()),
                )
            )
            return await self._match_and_store(run, Source.CHAIN, external, margin)

    def _events(
        self, window: tuple[float, float], period: tuple[float, float]
    ) -> list[ExternalRecord]:
        w3 = make_web3(self.rpc_url)
        token = TokenContract(w3, self.token_address())
        clock = BlockClock(w3, token.rpc_url)
        # Block times are whole seconds: t >= start is t >= ceil(start), t < end is
        # t < ceil(end).
        first, last = clock.blocks_between(math.ceil(window[0]), math.ceil(window[1]))
        period_first, period_last = clock.blocks_between(math.ceil(period[0]), math.ceil(period[1]))
        if first > last:
            return []
        return [
            ExternalRecord(
                event.tx_hash,
                event.amount,
                CHAIN_UNIT,
                f"{event.tx_hash}:{event.log_index}",
                period_first <= event.block <= period_last,
            )
            for event in token.transfers(first, last, sender=self.sender)
        ]
