"""The Temporal worker: every workflow and activity of the project, on its task queue."""

import asyncio
import logging
import signal
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from pydantic import SecretStr
from temporalio.client import Client
from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    PrometheusConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

import schedules
from activities.anchoring import AnchorBatchActivities, AnchorChainActivities
from activities.chain_sender import ChainSender, SenderConfig
from activities.escrow import EscrowActivities
from activities.liquidity import (
    ChainBalanceActivities,
    LiquidityActivities,
    StripeBalanceActivities,
)
from activities.maintenance import MaintenanceActivities
from activities.markets import MarketActivities
from activities.payments import PaymentActivities, StripePaymentActivities
from activities.payouts import PayoutActivities, StripeTransferActivities
from activities.reconciliation import (
    ChainReconciliationActivities,
    ReconciliationActivities,
    StripeReconciliationActivities,
)
from activities.recovery import RecoveryActivities
from activities.refunds import RefundActivities, StripeRefundActivities
from activities.settlement_windows import SettlementWindowActivities
from activities.stripe_events import StripeEventActivities
from activities.subscriptions import StripeSubscriptionActivities, SubscriptionActivities
from activities.tickets import TicketActivities
from activities.token_transfers import TokenRailActivities
from activities.transfers import StripeTransferSendActivities, TransferActivities
from activities.webhooks import WebhookDeliveryActivities, WebhookDispatchActivities
from integrations.anchor_contract import AnchorContract
from integrations.stripe_client import build_client
from integrations.temporal import connect, register_search_attributes
from integrations.token_contract import TokenContract
from integrations.webhook_http import WebhookSender
from models.engine import make_engine, make_sessionmaker
from observability import logs, tracing
from settings import Settings, get_settings
from workflows import search_attributes
from workflows.anchoring import AnchorTicketsWorkflow, ConfirmAnchorBatchesWorkflow
from workflows.escrow import EscrowHoldWorkflow
from workflows.liquidity import LiquidityCheckWorkflow
from workflows.maintenance import PurgeExpiredIdempotencyKeysWorkflow
from workflows.markets import MarketResolutionWorkflow
from workflows.payments import PaymentWorkflow
from workflows.payouts import PayoutScheduleWorkflow
from workflows.reconciliation import ReconciliationWorkflow
from workflows.recovery import RestartMissingWorkflowsWorkflow
from workflows.refunds import RefundWorkflow
from workflows.settlement_windows import SettlementWindowWorkflow
from workflows.stripe_events import StripeEventDeliveryWorkflow
from workflows.subscriptions import SubscriptionWorkflow
from workflows.tickets import PurgeExpiredTicketsWorkflow, TicketWorkflow
from workflows.transfers import TransferBatchWorkflow
from workflows.webhooks import (
    PurgeWebhookLogsWorkflow,
    WebhookDeliveryWorkflow,
    WebhookDispatcherWorkflow,
    WebhookOrderedDeliveryWorkflow,
)

log = logging.getLogger("tollgate.worker")

# Each new workflow instance re-imports its modules in the sandbox; pydantic and our types
# (immutable class definitions) are shared instead: most of a cold start was building them.
WORKFLOW_RUNNER = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules("pydantic", "workflows.types")
)

WORKFLOWS: Sequence[type] = (
    PurgeExpiredIdempotencyKeysWorkflow,
    TicketWorkflow,
    PurgeExpiredTicketsWorkflow,
    AnchorTicketsWorkflow,
    ConfirmAnchorBatchesWorkflow,
    EscrowHoldWorkflow,
    PayoutScheduleWorkflow,
    RestartMissingWorkflowsWorkflow,
    PaymentWorkflow,
    RefundWorkflow,
    StripeEventDeliveryWorkflow,
    MarketResolutionWorkflow,
    SubscriptionWorkflow,
    WebhookDeliveryWorkflow,
    WebhookOrderedDeliveryWorkflow,
    WebhookDispatcherWorkflow,
    PurgeWebhookLogsWorkflow,
    TransferBatchWorkflow,
    SettlementWindowWorkflow,
    LiquidityCheckWorkflow,
    ReconciliationWorkflow,
)


def activities(sessionmaker: Any, settings: Settings) -> list[Any]:
    """Activities of the main task queue: database steps."""
    maintenance = MaintenanceActivities(sessionmaker)
    ticket = TicketActivities(
        sessionmaker, retention=timedelta(days=settings.ticket_retention_days)
    )
    anchor = AnchorBatchActivities(sessionmaker)
    escrow = EscrowActivities(sessionmaker)
    payout = PayoutActivities(sessionmaker)
    payment = PaymentActivities(sessionmaker, settings.fraud_rules)
    refund = RefundActivities(sessionmaker)
    market = MarketActivities(sessionmaker)
    subscription = SubscriptionActivities(sessionmaker)
    return [
        maintenance.purge_expired_idempotency_keys,
        ticket.expire_ticket,
        ticket.cancel_ticket,
        ticket.purge_expired_tickets,
        anchor.create_anchor_batch,
        anchor.fail_anchor_batch,
        anchor.list_submitted_batches,
        escrow.load,
        escrow.release,
        escrow.give_back,
        escrow.extend,
        escrow.dispute,
        escrow.resolve,
        escrow.approve,
        payout.load,
        payout.start_run,
        payout.complete,
        payout.fail,
        payout.cancel,
        payment.load,
        payment.check_fraud,
        payment.review,
        payment.start_authorizing,
        payment.authorized,
        payment.start_capture,
        payment.complete,
        payment.close,
        refund.load,
        refund.approve,
        refund.reject,
        refund.complete,
        refund.fail,
        market.load,
        market.start_resolution,
        market.distribute,
        market.abandon,
        market.dispute,
        market.uphold,
        market.rollback,
        market.settle,
        *subscription_activities(subscription),
        *transfer_activities(sessionmaker, settings),
        *reconciliation_activities(sessionmaker, settings),
        LiquidityActivities(sessionmaker).evaluate,
    ]


def subscription_activities(subscription: SubscriptionActivities) -> list[Any]:
    return [
        subscription.load,
        subscription.begin,
        subscription.convert_trial,
        subscription.advance,
        subscription.bill,
        subscription.pause,
        subscription.resume,
        subscription.cancel,
        subscription.change_plan,
        subscription.renew,
        subscription.dunning_exhausted,
        subscription.start_attempt,
        subscription.finish_attempt,
    ]


def transfer_activities(sessionmaker: Any, settings: Settings) -> list[Any]:
    """The database steps of transfer batches and settlement windows, on the main queue."""
    steps = TransferActivities(sessionmaker, token_decimals=settings.chain_token_decimals)
    windows = SettlementWindowActivities(sessionmaker)
    return [
        steps.begin,
        steps.start,
        steps.succeed,
        steps.fail,
        steps.cancel,
        steps.finish,
        windows.plan,
        windows.release,
        windows.record,
    ]


def reconciliation_activities(sessionmaker: Any, settings: Settings) -> list[Any]:
    """Reconciliation runs' database steps and the chain's step, on the main task queue (the
    chain step only reads the chain: the chain task queue's one slot is the sender's)."""
    steps = ReconciliationActivities(sessionmaker)
    chain = ChainReconciliationActivities(
        sessionmaker,
        rpc_url=settings.chain_rpc_url,
        token_address=settings.token_address,
        sender=settings.chain_sender_address(),
        token_decimals=settings.chain_token_decimals,
    )
    return [steps.begin, steps.finish, chain.reconcile_chain]


def stripe_event_activities(sessionmaker: Any, client: Client) -> list[Any]:
    """Delivery of Stripe events to their workflows, on the main task queue."""
    events = StripeEventActivities(sessionmaker, client)
    return [events.deliver, events.dead_letter]


def webhook_activities(sessionmaker: Any, client: Client) -> list[Any]:
    """Outbound webhooks, on the main task queue: the dispatcher starts delivery workflows
    (so it needs the client); the attempts POST to the partners' endpoints."""
    deliveries = WebhookDeliveryActivities(sessionmaker, WebhookSender())
    dispatch = WebhookDispatchActivities(sessionmaker, client)
    return [
        deliveries.send,
        deliveries.record_attempt,
        deliveries.cancel,
        dispatch.dispatch,
        dispatch.purge_logs,
    ]


def chain_sender(sessionmaker: Any, settings: Settings) -> ChainSender:
    return ChainSender(
        sessionmaker,
        SenderConfig(
            rpc_url=settings.chain_rpc_url,
            chain_id=settings.chain_id,
            private_key=SecretStr(settings.chain_sender_key()),
            gas_cap=settings.chain_gas_cap,
            max_fee_per_gas=settings.chain_max_fee_per_gas,
            priority_fee=settings.chain_priority_fee,
            resend_after=timedelta(seconds=settings.chain_resend_after_seconds),
        ),
    )


def chain_activities(sessionmaker: Any, settings: Settings) -> list[Any]:
    """Activities of the chain task queue, which runs one at a time: the serialized sender."""
    sender = chain_sender(sessionmaker, settings)
    contract = AnchorContract(sender.client.w3, settings.chain_rpc_url, settings.anchor_address())
    anchor = AnchorChainActivities(sessionmaker, sender, contract)
    token_rail = TokenRailActivities(
        sender,
        TokenContract(sender.client.w3, settings.token_address()),
        decimals=settings.chain_token_decimals,
        confirmations=settings.chain_confirmations,
    )
    return [
        anchor.submit_anchor_batch,
        anchor.check_anchor_batch,
        token_rail.send_token_transfer,
        token_rail.check_token_transfer,
        *liquidity_chain_activities(sender, settings),
    ]


def liquidity_chain_activities(sender: ChainSender, settings: Settings) -> list[Any]:
    """The chain float's balance for the liquidity check: the sender's token balance."""
    token = TokenContract(sender.client.w3, settings.token_address())
    reader = ChainBalanceActivities(token, sender.address, decimals=settings.chain_token_decimals)
    return [reader.chain_balance]


def stripe_activities(sessionmaker: Any, settings: Settings) -> list[Any]:
    """Activities of the Stripe task queue, rate-limited across workers by Temporal."""
    client = build_client(
        settings.stripe_api_key,
        settings.stripe_api_base,
        timeout_seconds=settings.stripe_timeout_seconds,
    )
    payments = StripePaymentActivities(sessionmaker, client)
    return [
        StripeTransferActivities(sessionmaker, client).pay_out,
        payments.authorize,
        payments.capture,
        payments.cancel,
        StripeRefundActivities(sessionmaker, client).refund,
        StripeSubscriptionActivities(sessionmaker, client).charge_invoice,
        StripeTransferSendActivities(sessionmaker, client).send,
        StripeReconciliationActivities(sessionmaker, client).reconcile_stripe,
        StripeBalanceActivities(client).stripe_balance,
    ]


def runtime(settings: Settings) -> Runtime:
    """The SDK's runtime: its metrics on a Prometheus endpoint (``worker_metrics_host:port``),
    and the SDK core's own log lines through Python logging, so they are JSON like ours."""
    metrics = None
    if settings.worker_metrics_port:
        metrics = PrometheusConfig(
            bind_address=f"{settings.worker_metrics_host}:{settings.worker_metrics_port}"
        )
    return Runtime(
        telemetry=TelemetryConfig(
            logging=LoggingConfig(
                filter=TelemetryFilter(core_level="WARN", other_level="ERROR"),
                forwarding=LogForwardingConfig(logger=logging.getLogger("temporalio.core")),
            ),
            metrics=metrics,
        )
    )


async def run(settings: Settings, stop: asyncio.Event) -> None:
    tracing.configure(
        enabled=settings.otel_enabled, exporter=settings.otel_exporter, service="tollgate-worker"
    )
    client = await connect(
        settings.temporal_address,
        settings.temporal_namespace,
        tls=settings.temporal_tls,
        api_key=settings.temporal_api_key,
        runtime=runtime(settings),
        payload_codec=settings.payload_codec(),
        interceptors=tracing.temporal_interceptors(settings.otel_enabled),
    )
    added = await register_search_attributes(
        client, settings.temporal_namespace, search_attributes.ALL
    )
    if added:
        log.info("registered search attributes %s", ", ".join(added))
    if settings.worker_sync_schedules:
        log.info("schedules: %s", await schedules.sync(client, settings))
    engine = make_engine(settings.sqlalchemy_url)
    sessionmaker = make_sessionmaker(engine)
    worker = Worker(
        client,
        task_queue=settings.task_queue,
        workflows=list(WORKFLOWS),
        # Thousands of holds wake at once: evicted workflows would replay their histories.
        max_cached_workflows=settings.worker_max_cached_workflows,
        workflow_runner=WORKFLOW_RUNNER,
        activities=[
            *activities(sessionmaker, settings),
            # Starts workflows, so it needs the client, unlike the database steps.
            RecoveryActivities(sessionmaker, client).restart_missing_workflows,
            # Signals payment and refund workflows, so it needs the client too.
            *stripe_event_activities(sessionmaker, client),
            *webhook_activities(sessionmaker, client),
        ],
        graceful_shutdown_timeout=timedelta(seconds=20),
    )
    chain_worker = Worker(
        client,
        task_queue=settings.chain_task_queue,
        activities=chain_activities(sessionmaker, settings),
        max_concurrent_activities=1,
        graceful_shutdown_timeout=timedelta(seconds=20),
    )
    stripe_worker = Worker(
        client,
        task_queue=settings.stripe_task_queue,
        activities=stripe_activities(sessionmaker, settings),
        max_task_queue_activities_per_second=settings.stripe_requests_per_second,
        graceful_shutdown_timeout=timedelta(seconds=20),
    )
    async with worker, chain_worker, stripe_worker:
        log.info(
            "worker polling %s, %s and %s",
            settings.task_queue,
            settings.chain_task_queue,
            settings.stripe_task_queue,
        )
        await stop.wait()
        log.info("shutting down: finishing running activities")
    await engine.dispose()


def main() -> None:
    settings = get_settings()
    logs.configure(
        level=settings.log_level,
        fmt="text" if settings.log_format == "text" else "json",
        service="tollgate-worker",
        secrets=settings.secrets_to_mask(),
    )
    stop = asyncio.Event()

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run(settings, stop)

    try:
        asyncio.run(serve())
    finally:
        tracing.shutdown()


if __name__ == "__main__":
    main()
