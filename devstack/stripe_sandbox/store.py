"""The sandbox's state in SQLite: Stripe objects as JSON, idempotency records, money movements.

One connection guarded by one lock; every write happens inside ``transaction()``. With no path
the database lives in memory; with a path it survives restarts.
"""

import json
import secrets
import sqlite3
import string
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_ALPHABET = string.ascii_letters + string.digits

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    created INTEGER NOT NULL,
    json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS objects_type_seq ON objects (type, seq);
CREATE TABLE IF NOT EXISTS idempotency (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    running INTEGER NOT NULL,
    status INTEGER,
    body BLOB,
    request_id TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE TABLE IF NOT EXISTS movements (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    object_id TEXT NOT NULL,
    amount INTEGER NOT NULL,
    currency TEXT NOT NULL,
    idempotency_key TEXT,
    request_id TEXT,
    related TEXT NOT NULL,
    created INTEGER NOT NULL
);
"""

# A list filter: (field, operator, value); the field is a top-level key of the object JSON.
Filter = tuple[str, str, Any]
_OPERATORS = {"=", ">", ">=", "<", "<=", "in", "missing"}


def new_id(prefix: str, length: int = 24) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(length))


@dataclass(frozen=True)
class IdempotencyRecord:
    fingerprint: str
    running: bool
    status: int | None
    body: bytes | None
    request_id: str


class Store:
    def __init__(self, path: Path | None) -> None:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            str(path) if path else ":memory:", check_same_thread=False, isolation_level=None
        )
        self.lock = threading.RLock()
        with self.lock:
            if path is not None:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            # A request that was running when the process died will never finish.
            self._db.execute("DELETE FROM idempotency WHERE running = 1")

    def close(self) -> None:
        with self.lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Serialises writers; commits if the block succeeds, rolls back if it raises."""
        with self.lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # Objects

    def insert(self, obj: dict[str, Any]) -> None:
        self._db.execute(
            "INSERT INTO objects (id, type, created, json) VALUES (?, ?, ?, ?)",
            (obj["id"], obj["object"], obj["created"], json.dumps(obj)),
        )

    def update(self, obj: dict[str, Any]) -> None:
        self._db.execute("UPDATE objects SET json = ? WHERE id = ?", (json.dumps(obj), obj["id"]))

    def get(self, object_id: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT json FROM objects WHERE id = ?", (object_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def delete(self, object_id: str) -> bool:
        return self._db.execute("DELETE FROM objects WHERE id = ?", (object_id,)).rowcount > 0

    def find(self, type_: str, filters: list[Filter] | None = None) -> list[dict[str, Any]]:
        where, args = _where(type_, filters or [])
        rows = self._db.execute(f"SELECT json FROM objects WHERE {where} ORDER BY seq", args)
        return [json.loads(r[0]) for r in rows]

    def page(
        self,
        type_: str,
        filters: list[Filter],
        limit: int,
        starting_after: str | None = None,
        ending_before: str | None = None,
    ) -> tuple[list[dict[str, Any]], bool]:
        """Newest first, as Stripe lists; the cursors are object ids (unknown ones: KeyError)."""
        where, args = _where(type_, filters)
        order = "DESC"
        for cursor, comparison in ((starting_after, "<"), (ending_before, ">")):
            if cursor is None:
                continue
            row = self._db.execute("SELECT seq FROM objects WHERE id = ?", (cursor,)).fetchone()
            if row is None:
                raise KeyError(cursor)
            where += f" AND seq {comparison} ?"
            args.append(row[0])
            if comparison == ">":
                order = "ASC"
        rows = self._db.execute(
            f"SELECT json FROM objects WHERE {where} ORDER BY seq {order} LIMIT ?",
            [*args, limit + 1],
        ).fetchall()
        items = [json.loads(r[0]) for r in rows[:limit]]
        if order == "ASC":
            items.reverse()
        return items, len(rows) > limit

    def balance_totals(self) -> dict[tuple[str, str], int]:
        """Sum of balance transactions' ``net`` by (currency, status)."""
        rows = self._db.execute(
            "SELECT json_extract(json, '$.currency'), json_extract(json, '$.status'),"
            " SUM(json_extract(json, '$.net')) FROM objects"
            " WHERE type = 'balance_transaction' GROUP BY 1, 2"
        )
        return {(currency, status): int(total) for currency, status, total in rows}

    # Money movements

    def add_movement(self, movement: dict[str, Any]) -> None:
        self._db.execute(
            "INSERT INTO movements (id, kind, object_id, amount, currency, idempotency_key,"
            " request_id, related, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                movement["id"],
                movement["kind"],
                movement["object_id"],
                movement["amount"],
                movement["currency"],
                movement["idempotency_key"],
                movement["request_id"],
                json.dumps(movement["related"]),
                movement["created"],
            ),
        )

    def movements(self, filters: dict[str, str]) -> list[dict[str, Any]]:
        columns = {"kind", "object_id", "idempotency_key", "currency"}
        where = " AND ".join(f"{name} = ?" for name in filters if name in columns) or "1"
        args = [value for name, value in filters.items() if name in columns]
        rows = self._db.execute(
            "SELECT id, kind, object_id, amount, currency, idempotency_key, request_id, related,"
            f" created FROM movements WHERE {where} ORDER BY seq",
            args,
        )
        names = ("id", "kind", "object_id", "amount", "currency", "idempotency_key")
        return [
            {
                **dict(zip(names, row[:6], strict=True)),
                "request_id": row[6],
                "related": json.loads(row[7]),
                "created": row[8],
            }
            for row in rows
        ]

    def delete_movements(self, object_id: str) -> int:
        return self._db.execute("DELETE FROM movements WHERE object_id = ?", (object_id,)).rowcount

    # Idempotency records

    def idempotency_get(self, scope: str, key: str, not_before: float) -> IdempotencyRecord | None:
        self._db.execute(
            "DELETE FROM idempotency WHERE scope = ? AND key = ? AND created < ?",
            (scope, key, not_before),
        )
        row = self._db.execute(
            "SELECT fingerprint, running, status, body, request_id FROM idempotency"
            " WHERE scope = ? AND key = ?",
            (scope, key),
        ).fetchone()
        if row is None:
            return None
        return IdempotencyRecord(row[0], bool(row[1]), row[2], row[3], row[4])

    def idempotency_start(
        self, scope: str, key: str, fingerprint: str, request_id: str, now: float
    ) -> None:
        self._db.execute(
            "INSERT INTO idempotency (scope, key, fingerprint, running, request_id, created)"
            " VALUES (?, ?, ?, 1, ?, ?)",
            (scope, key, fingerprint, request_id, now),
        )

    def idempotency_finish(self, scope: str, key: str, status: int, body: bytes) -> None:
        self._db.execute(
            "UPDATE idempotency SET running = 0, status = ?, body = ? WHERE scope = ? AND key = ?",
            (status, body, scope, key),
        )

    def idempotency_forget(self, scope: str, key: str) -> None:
        self._db.execute("DELETE FROM idempotency WHERE scope = ? AND key = ?", (scope, key))

    def idempotency_purge(self, not_before: float) -> None:
        self._db.execute("DELETE FROM idempotency WHERE created < ?", (not_before,))

    def reset(self) -> None:
        self._db.execute("DELETE FROM objects")
        self._db.execute("DELETE FROM idempotency")
        self._db.execute("DELETE FROM movements")


def _where(type_: str, filters: list[Filter]) -> tuple[str, list[Any]]:
    clauses = ["type = ?"]
    args: list[Any] = [type_]
    for field, operator, value in filters:
        if operator not in _OPERATORS or not field.replace("_", "").isalnum():
            raise ValueError(f"bad filter {field} {operator}")
        column = "created" if field == "created" else f"json_extract(json, '$.{field}')"
        if operator == "missing":
            clauses.append(f"{column} IS NULL")
        elif operator == "in":
            clauses.append(f"{column} IN ({', '.join('?' for _ in value)})")
            args.extend(value)
        else:
            clauses.append(f"{column} {operator} ?")
            args.append(value)
    return " AND ".join(clauses), args
