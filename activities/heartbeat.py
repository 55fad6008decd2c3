"""Heartbeats around one long call of an activity, so that Temporal notices a worker that died
in the middle of it after the heartbeat timeout (seconds), not the start-to-close timeout."""

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from temporalio import activity

T = TypeVar("T")


async def heartbeating(awaitable: Awaitable[T], every: float = 2.0) -> T:
    """``await awaitable``, heartbeating every ``every`` seconds until it finishes; its result
    or exception is passed on. If the activity is cancelled (which Temporal delivers with a
    heartbeat's answer), the call is cancelled too and waited for."""
    if every <= 0:
        raise ValueError("every must be positive")
    task = asyncio.ensure_future(awaitable)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=every)
            if done:
                return task.result()
            # Called directly (a script, a test), there is no server to tell.
            if activity.in_activity():
                activity.heartbeat()
    finally:
        if not task.done():
            task.cancel()
            # Wait for it to unwind (it may clean up); its outcome is no longer wanted.
            await asyncio.wait({task})
            if not task.cancelled():
                task.exception()
