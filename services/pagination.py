"""Lists newest first, paged by (created_at, id): the order and cursor of every API list."""

from datetime import datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy import Select, tuple_

S = TypeVar("S", bound=Select[Any])


class Dated(Protocol):
    created_at: datetime
    id: Any


def newest_first(query: S, model: Any, after: Dated | None = None) -> S:
    """``query`` newest first and, given ``after`` (the previous page's last row), only the
    rows older than it."""
    query = query.order_by(model.created_at.desc(), model.id.desc())
    if after is not None:
        query = query.where(tuple_(model.created_at, model.id) < tuple_(after.created_at, after.id))
    return query
