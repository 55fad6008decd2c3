"""Streaming a list as CSV, page by page, for the export endpoints."""

import csv
import io
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Content
from starlette.types import Receive, Scope, Send

EXPORT_PAGE = 500

T = TypeVar("T")


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    # A spreadsheet would run text starting like this as a formula (CSV injection).
    if isinstance(value, str) and value.startswith(("=", "+", "-", "@", "\t", "\r")):
        return "'" + value
    return value


def csv_export(
    request: Request,
    filename: str,
    header: Sequence[str],
    fetch: Callable[[AsyncSession, int, uuid.UUID | None], Awaitable[Sequence[T]]],
    row: Callable[[T], tuple[Any, ...]],
    key: Callable[[T], uuid.UUID],
) -> StreamingResponse:
    """Stream every row ``fetch(session, limit, starting_after)`` pages through, in a
    transaction of its own: the request's ends before the body is sent."""

    async def lines() -> AsyncIterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(header)
        async with request.app.state.sessionmaker() as session, session.begin():
            after: uuid.UUID | None = None
            while True:
                rows = await fetch(session, EXPORT_PAGE, after)
                page = rows[:EXPORT_PAGE]
                writer.writerows(tuple(_cell(value) for value in row(item)) for item in page)
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
                if len(rows) <= EXPORT_PAGE:
                    return
                after = key(page[-1])

    return _FirstPageFirst(
        lines(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


class _FirstPageFirst(StreamingResponse):
    """Reads the first page before the status line goes out: a filter the database refuses
    (a NUL character) is then a 400 from the error handlers, not a response cut short."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        chunks = aiter(self.body_iterator)
        first = await anext(chunks, None)

        async def rest() -> AsyncIterator[Content]:
            if first is not None:
                yield first
            async for chunk in chunks:
                yield chunk

        self.body_iterator = rest()
        await super().__call__(scope, receive, send)
