"""What every table of a test database holds, to tell whether a request changed anything."""

import psycopg


class Tables:
    """Each public table's row count and a digest of its rows, read again only when a
    transaction id was handed out since the last look: nothing can have committed without
    one (every write takes one), so most looks after a refused request cost one query."""

    def __init__(self, database_url: str) -> None:
        self.conn = psycopg.connect(database_url.replace("+psycopg", ""), autocommit=True)
        names = self.conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
        ).fetchall()
        self.query = " UNION ALL ".join(
            f"SELECT '{name}', count(*), "
            f"coalesce(md5(string_agg(t::text, E'\\n' ORDER BY t::text)), '') "
            f'FROM public."{name}" t'
            for (name,) in names
        )
        self.xid, self.rows = self._next_xid(), self._rows()

    def _next_xid(self) -> int:
        row = self.conn.execute("SELECT pg_snapshot_xmax(pg_current_snapshot())::text").fetchone()
        assert row is not None
        return int(row[0])

    def _rows(self) -> dict[str, tuple[int, str]]:
        return {name: (n, digest) for name, n, digest in self.conn.execute(self.query)}

    def changed(self) -> list[str]:
        """The tables whose rows differ from the last look, which this one becomes."""
        xid = self._next_xid()
        if xid == self.xid:
            return []
        rows = self._rows()
        changed = [
            f"{name} ({self.rows.get(name, (0, ''))[0]} -> {n} rows)"
            for name, (n, digest) in rows.items()
            if (n, digest) != self.rows.get(name)
        ]
        self.xid, self.rows = xid, rows
        return changed

    def close(self) -> None:
        self.conn.close()
