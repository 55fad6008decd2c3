"""Starting and signalling an entity's workflow from the API, and signalling many at once.

A start runs after the request's transaction has committed and is best effort: the committed
row is the record, and a workflow that could not start is started by the next signal (signals
are signal-with-start) or by the safety net. A signal is part of the request: the workflow
alone changes the row, so a signal that cannot be delivered is a 503 and nothing changed.
"""

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Request
from pydantic import BaseModel, Field
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from api.deps import after_commit
from domain.errors import Conflict, ProviderError, TollgateError, ValidationError

log = logging.getLogger(__name__)

BULK_MAX = 500


@dataclass(frozen=True)
class WorkflowStart:
    """How one entity's workflow starts: its type name, id, input and task queue."""

    workflow: str
    id: str
    arg: BaseModel
    task_queue: str
    # Most entities' workflows never run again once finished (the entity is settled); a
    # batch retried, or a rail's windows, start a new run.
    reuse: WorkflowIDReusePolicy = WorkflowIDReusePolicy.REJECT_DUPLICATE


async def _start(
    request: Request, start: WorkflowStart, signal: tuple[str, BaseModel] | None = None
) -> None:
    client: Client = await request.app.state.temporal.get()
    await client.start_workflow(
        start.workflow,
        start.arg,
        id=start.id,
        task_queue=start.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=start.reuse,
        start_signal=signal[0] if signal else None,
        start_signal_args=[signal[1]] if signal else [],
    )


def start_after_commit(request: Request, start: WorkflowStart) -> None:
    """Start the workflow (or find it running) once the transaction has committed."""

    async def run() -> None:
        # The row is committed: no failure here may turn the response into an error; the
        # next signal or the safety net starts the workflow.
        try:
            await _start(request, start)
        except WorkflowAlreadyStartedError:
            pass  # it ran and finished: the entity is settled
        except (ProviderError, RPCError) as exc:
            log.warning("could not start workflow %s: %s", start.id, exc)
        except Exception:
            log.exception("could not start workflow %s", start.id)

    after_commit(request, run)


def signal_after_commit(request: Request, start: WorkflowStart, name: str, arg: BaseModel) -> None:
    """Signal ``name`` once the transaction has committed, best effort like
    ``start_after_commit``: for a change the request itself made to the row, which the
    workflow must read only once it is committed."""

    async def run() -> None:
        try:
            await _start(request, start, (name, arg))
        except WorkflowAlreadyStartedError:
            pass  # it finished: there is nothing left for it to act on
        except (ProviderError, RPCError) as exc:
            log.warning("could not signal %s to %s: %s", name, start.id, exc)
        except Exception:
            log.exception("could not signal %s to %s", name, start.id)

    after_commit(request, run)


async def signal(request: Request, start: WorkflowStart, name: str, arg: BaseModel) -> None:
    """Deliver signal ``name`` now, starting the workflow first if it never started (its
    start after commit failed). 503 if Temporal is unreachable, 409 if it already finished."""
    try:
        await _start(request, start, (name, arg))
    except WorkflowAlreadyStartedError as exc:
        raise Conflict(
            f"the workflow {start.id} has already finished", code="workflow_finished"
        ) from exc
    except RPCError as exc:
        raise ProviderError(f"could not signal {start.id}: {exc.message}") from exc


BulkId = Annotated[str, Field(min_length=1, max_length=100)]


class BulkError(BaseModel):
    type: str
    code: str
    message: str


class BulkItem(BaseModel):
    id: str
    status: Literal["accepted", "error"]
    error: BulkError | None = None


class BulkOut(BaseModel):
    object: str = "list"
    data: list[BulkItem]
    accepted: int
    failed: int


def _failed(raw: str, error: TollgateError) -> BulkItem:
    return BulkItem(
        id=raw,
        status="error",
        error=BulkError(type=error.type, code=error.code, message=error.message),
    )


async def run_bulk(ids: list[str], one: Callable[[uuid.UUID], Awaitable[None]]) -> BulkOut:
    """``one`` for each distinct id, each on its own: a refused id never stops the others.
    Once Temporal is unavailable the remaining ids are answered so rather than each waiting
    on the same outage."""
    items: list[BulkItem] = []
    outage: ProviderError | None = None
    for raw in dict.fromkeys(ids):
        if outage is not None:
            items.append(_failed(raw, outage))
            continue
        try:
            try:
                parsed = uuid.UUID(raw)
            except ValueError as exc:
                raise ValidationError(f"{raw!r} is not an id", param="ids") from exc
            await one(parsed)
        except TollgateError as error:
            items.append(_failed(raw, error))
            if isinstance(error, ProviderError):
                outage = error
        else:
            items.append(BulkItem(id=raw, status="accepted"))
    accepted = sum(item.status == "accepted" for item in items)
    return BulkOut(data=items, accepted=accepted, failed=len(items) - accepted)
