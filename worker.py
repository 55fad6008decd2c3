"""The Temporal worker: every workflow and activity of the project, on its task queue."""

import asyncio
import logging
import signal
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import Worker

import schedules
from activities.maintenance import MaintenanceActivities
from activities.tickets import TicketActivities
from integrations.temporal import connect, register_search_attributes
from models.engine import make_engine, make_sessionmaker
from settings import Settings, get_settings
from workflows import search_attributes
from workflows.maintenance import PurgeExpiredIdempotencyKeysWorkflow
from workflows.tickets import PurgeExpiredTicketsWorkflow, TicketWorkflow

log = logging.getLogger("tollgate.worker")

WORKFLOWS: Sequence[type] = (
    PurgeExpiredIdempotencyKeysWorkflow,
    TicketWorkflow,
    PurgeExpiredTicketsWorkflow,
)


def activities(sessionmaker: Any, settings: Settings) -> list[Any]:
    maintenance = MaintenanceActivities(sessionmaker)
    ticket = TicketActivities(
        sessionmaker, retention=timedelta(days=settings.ticket_retention_days)
    )
    return [
        maintenance.purge_expired_idempotency_keys,
        ticket.expire_ticket,
        ticket.cancel_ticket,
        ticket.purge_expired_tickets,
    ]


async def run(settings: Settings, stop: asyncio.Event) -> None:
    runtime = None
    if settings.worker_metrics_port:
        runtime = Runtime(
            telemetry=TelemetryConfig(
                metrics=PrometheusConfig(bind_address=f"127.0.0.1:{settings.worker_metrics_port}")
            )
        )
    client = await connect(
        settings.temporal_address,
        settings.temporal_namespace,
        tls=settings.temporal_tls,
        api_key=settings.temporal_api_key,
        runtime=runtime,
    )
    added = await register_search_attributes(
        client, settings.temporal_namespace, search_attributes.ALL
    )
    if added:
        log.info("registered search attributes %s", ", ".join(added))
    log.info("schedules: %s", await schedules.sync(client, settings.task_queue))
    engine = make_engine(settings.sqlalchemy_url)
    worker = Worker(
        client,
        task_queue=settings.task_queue,
        workflows=list(WORKFLOWS),
        activities=activities(make_sessionmaker(engine), settings),
        graceful_shutdown_timeout=timedelta(seconds=20),
    )
    async with worker:
        log.info("worker polling %s", settings.task_queue)
        await stop.wait()
        log.info("shutting down: finishing running activities")
    await engine.dispose()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    stop = asyncio.Event()

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run(get_settings(), stop)

    asyncio.run(serve())


if __name__ == "__main__":
    main()
