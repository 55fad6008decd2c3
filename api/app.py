"""The FastAPI application factory."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache
from typing import Any

from fastapi import FastAPI
from sqlalchemy import text

from api import console, errors
from api.anchoring_trigger import EarlyAnchoring
from api.body_limit import BodySizeLimitMiddleware
from api.idempotency import IdempotencyMiddleware
from api.metrics import BusinessMetrics, MetricsMiddleware
from api.metrics import router as metrics_router
from api.rate_limit import RateLimitMiddleware
from api.request_context import RequestContextMiddleware
from api.routers import (
    anchoring,
    audit,
    audit_log,
    commissions,
    escrow,
    fraud_checks,
    health,
    invoices,
    ledger,
    liquidity,
    markets,
    payment_methods,
    payments,
    payouts,
    placements,
    plans,
    reconciliation,
    refunds,
    settlement_windows,
    stripe_webhooks,
    subscriptions,
    tickets,
    transfers,
    vendor_settlements,
    webhooks,
)
from api.routers.codec import CodecCORS
from api.routers.codec import router as codec_router
from integrations import ticket_keys
from integrations.chain import BlockHeight
from integrations.chain import ping_async as chain_ping
from integrations.stripe_client import build_client
from integrations.stripe_client import ping as stripe_ping
from integrations.temporal import LazyClient
from integrations.temporal import ping as temporal_ping
from models.engine import make_engine, make_sessionmaker
from observability import tracing
from observability.logs import register_secrets
from settings import Settings, get_settings

API_PREFIX = "/api/v1"


def provider_checks(settings: Settings) -> dict[str, Any]:
    """Health checks of the outside providers: the chain node and Stripe."""

    async def chain() -> dict[str, Any]:
        return dict(await chain_ping(settings.chain_rpc_url))

    async def stripe() -> dict[str, Any]:
        return await stripe_ping(settings.stripe_api_key, settings.stripe_api_base)

    return {"chain": chain, "stripe": stripe}


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.sqlalchemy_url)
        app.state.sessionmaker = make_sessionmaker(engine)
        app.state.temporal = LazyClient(
            settings.temporal_address,
            settings.temporal_namespace,
            tls=settings.temporal_tls,
            api_key=settings.temporal_api_key,
            payload_codec=app.state.payload_codec,
            interceptors=tracing.temporal_interceptors(settings.otel_enabled),
        )
        app.state.business_metrics = BusinessMetrics(
            app.state.sessionmaker, max_age=settings.business_metrics_max_age_seconds
        )

        async def database() -> dict[str, Any]:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            return {}

        async def temporal() -> dict[str, Any]:
            return await temporal_ping(await app.state.temporal.get())

        app.state.keyring = cache(lambda: ticket_keys.load(settings.ticket_keys_path))
        app.state.health_checks = {
            "database": database,
            "temporal": temporal,
            **provider_checks(settings),
        }
        app.state.background_tasks = set()
        app.state.early_anchoring = EarlyAnchoring(
            app.state.sessionmaker, app.state.temporal, batch_size=settings.anchor_batch_size
        )
        app.state.block_height = BlockHeight(settings.chain_rpc_url)
        app.state.stripe = build_client(
            settings.stripe_api_key,
            settings.stripe_api_base,
            timeout_seconds=settings.stripe_timeout_seconds,
        )
        yield
        await asyncio.gather(*app.state.background_tasks, return_exceptions=True)
        await engine.dispose()

    app = FastAPI(
        title="Tollgate",
        version="0.1.0",
        description="Money and tickets as durable Temporal workflows.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    # Payload encryption: the Temporal client's codec, and the codec server's (/admin/codec).
    app.state.payload_codec = settings.payload_codec()
    errors.install(app)
    app.add_middleware(IdempotencyMiddleware)
    # Around it (it reads its keys in the database first): PostgreSQL away is a 503.
    app.add_middleware(errors.DatabaseUnavailableMiddleware)
    # Around the idempotency middleware, which reads the whole body: a huge one is a 413.
    app.add_middleware(BodySizeLimitMiddleware)
    # Around both: a client past its limit (ticket issuing, verifying) is a 429 before any work.
    app.add_middleware(RateLimitMiddleware, settings=settings)
    app.add_middleware(MetricsMiddleware)
    app.add_middleware(CodecCORS, origins=settings.codec_origins)
    # Outermost: every log line of a request, the middlewares' included, carries its id.
    app.add_middleware(RequestContextMiddleware)
    register_secrets(settings.secrets_to_mask())
    if tracing.configure(
        enabled=settings.otel_enabled, exporter=settings.otel_exporter, service="tollgate-api"
    ):
        tracing.instrument_app(app)
    app.include_router(health.router)
    app.include_router(metrics_router)
    console.install(app)  # the admin console at /admin
    app.include_router(codec_router)
    for router in (
        ledger.router,
        audit.router,
        audit_log.router,
        tickets.router,
        anchoring.router,
        escrow.router,
        payouts.router,
        placements.router,
        markets.router,
        payment_methods.router,
        payments.router,
        refunds.router,
        fraud_checks.router,
        plans.router,
        subscriptions.router,
        invoices.router,
        stripe_webhooks.router,
        webhooks.router,
        commissions.router,
        vendor_settlements.router,
        transfers.router,
        settlement_windows.router,
        liquidity.router,
        reconciliation.router,
    ):
        app.include_router(router, prefix=API_PREFIX)
    return app
