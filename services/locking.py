"""Row locks that also refresh: a row already loaded in the session (say, read before being
locked) would otherwise keep its stale values after ``SELECT ... FOR UPDATE``, and a
compare-and-set computed from them would overwrite a concurrent writer's change."""

from typing import Any, TypeVar

from sqlalchemy import Select

S = TypeVar("S", bound=Select[Any])


def locked(query: S) -> S:
    return query.with_for_update().execution_options(populate_existing=True)
