"""Cursor pagination: ``limit``, ``starting_after`` and ``has_more``, as Stripe lists do."""

import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel

from domain.errors import NotFound, ValidationError

T = TypeVar("T")
Item = TypeVar("Item", bound=BaseModel)


class PageParams(BaseModel):
    limit: int
    starting_after: str | None


def page_params(
    limit: Annotated[int, Query(ge=1, le=100, description="How many items, 1 to 100")] = 10,
    starting_after: Annotated[
        str | None, Query(description="Cursor: the id of the last item of the previous page")
    ] = None,
) -> PageParams:
    return PageParams(limit=limit, starting_after=starting_after)


PageQuery = Annotated[PageParams, Depends(page_params)]


class Page(BaseModel, Generic[Item]):
    object: str = "list"
    data: list[Item]
    has_more: bool
    next_cursor: str | None


def paginate(
    rows: Sequence[T], limit: int, view: Callable[[T], Item], cursor: Callable[[Item], Any]
) -> Page[Item]:
    """Build a page from ``limit + 1`` fetched rows; the extra row only signals ``has_more``."""
    items = [view(row) for row in rows[:limit]]
    has_more = len(rows) > limit
    return Page[Item](
        data=items, has_more=has_more, next_cursor=str(cursor(items[-1])) if has_more else None
    )


def uuid_cursor(value: str | None) -> uuid.UUID | None:
    """``starting_after`` of lists keyed by uuid: a malformed cursor is a 400, not a 500."""
    if value is None:
        return None
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise ValidationError(
            "starting_after must be an id from a list", param="starting_after"
        ) from exc


def int_cursor(value: str | None, what: str) -> int | None:
    """``starting_after`` of lists keyed by an integer id; malformed is a 400."""
    if value is None:
        return None
    if not value.isdigit():
        raise ValidationError(f"starting_after must be {what}", param="starting_after")
    return int(value)


async def row_cursor(
    value: str | None, load: Callable[[uuid.UUID], Awaitable[T]], visible: Callable[[T], bool]
) -> T | None:
    """``starting_after`` of lists whose service pages from the previous page's last row:
    that row, loaded by ``load``. A malformed cursor, one naming no row, or a row the
    caller may not see is a 400 (the same answer, so a cursor reveals nothing)."""
    cursor = uuid_cursor(value)
    if cursor is None:
        return None
    try:
        row = await load(cursor)
    except NotFound:
        row = None
    if row is None or not visible(row):
        raise ValidationError("starting_after must be an id from this list", param="starting_after")
    return row
