"""Running a short-lived Temporal client command (``anchors run``, ``schedules sync``).

The SDK's Rust threads can outlive the event loop, and CPython's teardown then aborts the
process (temporalio/sdk-python#300): a command that finished would exit with SIGABRT. Such
commands therefore leave with ``os._exit`` once their output is flushed.
"""

import asyncio
import os
import sys
from collections.abc import Coroutine
from typing import Any, NoReturn

from temporalio.client import Client

from settings import Settings


async def connect(settings: Settings) -> Client:
    """A client of the configured Temporal."""
    from integrations.temporal import connect as connect_to

    return await connect_to(
        settings.temporal_address,
        settings.temporal_namespace,
        tls=settings.temporal_tls,
        api_key=settings.temporal_api_key,
        payload_codec=settings.payload_codec(),
    )


def run_then_exit(command: Coroutine[Any, Any, int]) -> NoReturn:
    """Run ``command`` and exit with the code it returns, skipping interpreter teardown."""
    code = asyncio.run(command)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
