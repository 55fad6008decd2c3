"""Settlement windows: each rail's configuration (stored as data, audited), the window a
transfer submitted now is queued for, what a window releases, and the record of each window
settled. The time arithmetic is ``domain.settlement_windows``.

A transfer of a rail with windows is QUEUED with its ``window_at`` when it is stored; the
rail's workflow (``settlement-window-{rail}``) sends the queued transfers whose window has
come, all together, and records the run. A rail without a configuration sends at once.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.actors import Actor
from domain.errors import NotFound, ValidationError
from domain.rails import Rail
from domain.settlement_windows import WindowConfig, next_window, window_for
from domain.transfers import TransferStatus
from models.settlement_windows import SettlementRun, SettlementWindowConfig
from models.transfers import Transfer
from services import outbox
from services.locking import locked
from services.pagination import newest_first


def check_rail(rail: str) -> Rail:
    try:
        return Rail(rail)
    except ValueError:
        raise NotFound(
            f"no rail {rail!r}; the rails are {', '.join(Rail)}", code="unknown_rail", param="rail"
        ) from None


async def config(session: AsyncSession, rail: str) -> WindowConfig | None:
    """The rail's windows, or None when it sends at once."""
    row = await session.get(SettlementWindowConfig, check_rail(rail).value)
    return WindowConfig.from_dict(row.config) if row is not None else None


async def configs(session: AsyncSession) -> dict[str, WindowConfig]:
    """Every configured rail's windows (one query: a batch asks once for all its items)."""
    rows = await session.scalars(select(SettlementWindowConfig))
    return {row.rail: WindowConfig.from_dict(row.config) for row in rows}


async def put_config(
    session: AsyncSession, rail: str, settings: dict[str, Any], *, actor: Actor
) -> WindowConfig:
    """Create or replace the rail's windows. Transfers queued already keep the window they
    were promised; the new windows apply to transfers submitted from now on."""
    name = check_rail(rail).value
    if not isinstance(settings, dict):
        raise ValidationError("a window configuration is a JSON object")
    if settings.get("rail", name) != name:
        raise ValidationError(f"the path names rail {name}", param="rail")
    parsed = WindowConfig.from_dict({**settings, "rail": name})
    row = await session.scalar(
        locked(select(SettlementWindowConfig).where(SettlementWindowConfig.rail == name))
    )
    before = row.config if row is not None else None
    if row is None:
        row = SettlementWindowConfig(rail=name, config=parsed.to_dict(), updated_by=actor.id)
        session.add(row)
    else:
        row.config = parsed.to_dict()
        row.updated_by = actor.id
    await outbox.record_change(
        session,
        entity_type="settlement_window",
        entity_id=name,
        action="configured",
        actor=actor,
        before=before,
        after=parsed.to_dict(),
        announce=False,
    )
    return parsed


async def delete_config(session: AsyncSession, rail: str, *, actor: Actor) -> None:
    """The rail sends at once from now on; transfers queued already keep their window."""
    name = check_rail(rail).value
    row = await session.scalar(
        locked(select(SettlementWindowConfig).where(SettlementWindowConfig.rail == name))
    )
    if row is None:
        raise NotFound(f"rail {name} has no settlement windows", param="rail")
    before = row.config
    await session.delete(row)
    await outbox.record_change(
        session,
        entity_type="settlement_window",
        entity_id=name,
        action="removed",
        actor=actor,
        before=before,
        after={"rail": name},
        announce=False,
    )


def queued_until(windows: dict[str, WindowConfig], rail: str, now: datetime) -> datetime | None:
    """The window a transfer of ``rail`` submitted at ``now`` waits for; None: send it now."""
    found = windows.get(rail)
    return window_for(found, now) if found is not None else None


@dataclass(frozen=True)
class Queue:
    """What waits for a rail's windows: per currency, the count and amount queued."""

    next_window_at: datetime | None
    count: int
    amounts: dict[str, int]


async def queue(session: AsyncSession, rail: str) -> Queue:
    rows = (
        await session.execute(
            select(
                Transfer.currency,
                func.count(),
                func.coalesce(func.sum(Transfer.amount), 0),
                func.min(Transfer.window_at),
            )
            .where(Transfer.status == TransferStatus.QUEUED.value, Transfer.rail == rail)
            .group_by(Transfer.currency)
        )
    ).all()
    windows = [row[3] for row in rows if row[3] is not None]
    return Queue(
        next_window_at=min(windows) if windows else None,
        count=sum(int(row[1]) for row in rows),
        amounts={row[0]: int(row[2]) for row in rows},
    )


@dataclass(frozen=True)
class WindowView:
    """What the API tells a partner about a rail: its windows, the next one, and the window
    (and cut-off) a transfer submitted ``now`` would settle in."""

    rail: str
    config: WindowConfig | None
    next_window_at: datetime | None
    submitted_now_settles_at: datetime | None
    submitted_now_cutoff_at: datetime | None
    queue: Queue


async def view(session: AsyncSession, rail: str, now: datetime | None = None) -> WindowView:
    now = now or datetime.now(UTC)
    found = await config(session, rail)
    settles_at = window_for(found, now) if found is not None else None
    return WindowView(
        rail=check_rail(rail).value,
        config=found,
        next_window_at=next_window(found, now) if found is not None else None,
        submitted_now_settles_at=settles_at,
        submitted_now_cutoff_at=(
            settles_at - found.cutoff_delta if found is not None and settles_at else None
        ),
        queue=await queue(session, rail),
    )


async def due(session: AsyncSession, rail: str, up_to: datetime | None) -> Sequence[Transfer]:
    """What a window of ``rail`` sends: its queued transfers due by ``up_to`` (None, an
    operator's settle-now: every queued one), and those an earlier run of the window's
    workflow left in flight (processing, with a window), which resume under their key."""
    queued = Transfer.status == TransferStatus.QUEUED.value
    if up_to is not None:
        queued = queued & (Transfer.window_at <= up_to)
    in_flight = (Transfer.status == TransferStatus.PROCESSING.value) & Transfer.window_at.is_not(
        None
    )
    return list(
        await session.scalars(
            select(Transfer)
            .where(Transfer.rail == rail, queued | in_flight)
            .order_by(Transfer.window_at, Transfer.created_at, Transfer.id)
        )
    )


@dataclass(frozen=True)
class WindowOutcome:
    run: SettlementRun
    batch_ids: list[uuid.UUID]


async def record_run(
    session: AsyncSession,
    *,
    rail: str,
    window_at: datetime,
    trigger: str,
    requested_by: str,
    transfer_ids: Sequence[uuid.UUID],
    started_at: datetime,
    actor: Actor,
) -> WindowOutcome:
    """The window's record (how its transfers ended) and the batches they belong to, which
    are told to finish; announced as ``settlement_window.settled``."""
    rows = (
        await session.execute(
            select(Transfer.status, Transfer.batch_id).where(Transfer.id.in_(transfer_ids))
        )
    ).all()
    succeeded = sum(row[0] == TransferStatus.SUCCEEDED.value for row in rows)
    ended = (TransferStatus.FAILED.value, TransferStatus.CANCELLED.value)
    failed = sum(row[0] in ended for row in rows)
    run = SettlementRun(
        id=uuid.uuid4(),
        rail=rail,
        window_at=window_at,
        trigger=trigger,
        requested_by=requested_by,
        total_count=len(rows),
        succeeded_count=succeeded,
        failed_count=failed,
        open_count=len(rows) - succeeded - failed,
        started_at=started_at,
        completed_at=datetime.now(UTC),
    )
    session.add(run)
    await outbox.record_change(
        session,
        entity_type="settlement_window",
        entity_id=run.id,
        action="settled",
        actor=actor,
        before=None,
        after=run_view(run),
        announce=True,
    )
    batch_ids = sorted({row[1] for row in rows if row[1] is not None})
    return WindowOutcome(run=run, batch_ids=batch_ids)


def run_view(run: SettlementRun) -> dict[str, Any]:
    return {
        "rail": run.rail,
        "window_at": run.window_at.isoformat(),
        "trigger": run.trigger,
        "requested_by": run.requested_by,
        "total_count": run.total_count,
        "succeeded_count": run.succeeded_count,
        "failed_count": run.failed_count,
        "open_count": run.open_count,
    }


async def list_runs(
    session: AsyncSession, rail: str, *, limit: int, after: SettlementRun | None = None
) -> Sequence[SettlementRun]:
    """The rail's settled windows, newest first, ``limit + 1`` rows."""
    query = newest_first(select(SettlementRun), SettlementRun, after).where(
        SettlementRun.rail == check_rail(rail).value
    )
    return list(await session.scalars(query.limit(limit + 1)))


async def get_run(session: AsyncSession, run_id: uuid.UUID) -> SettlementRun:
    found = await session.get(SettlementRun, run_id)
    if found is None:
        raise NotFound(f"no settlement run {run_id}", param="id")
    return found


async def rails_with_queue(session: AsyncSession) -> list[str]:
    """Rails with transfers waiting for (or left in flight by) a window: their workflows
    should be running (for the safety net)."""
    rows = await session.scalars(
        select(Transfer.rail)
        .where(
            (Transfer.status == TransferStatus.QUEUED.value)
            | (
                (Transfer.status == TransferStatus.PROCESSING.value)
                & Transfer.window_at.is_not(None)
            )
        )
        .distinct()
    )
    return sorted(rows)
