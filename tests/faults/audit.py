"""The movement audit every fault test ends with: the money each record says moved, item by
item, against what was expected.

A test names each expected movement by a key of its own (``transfer:<id>``,
``payout:<schedule id>``, ``release:<hold id>``, ``invoice:<id>``), its amount, and the books
that must each show it exactly once: ``stripe`` (the sandbox's own record of the money it
moved, ``GET /_sandbox/movements``), ``chain`` (the token's ``Transfer`` events) and
``ledger`` (the double-entry postings). It then records what each book shows, attributed to
those keys by something unique to the item (its destination, its payee's account, its
invoice), not by the idempotency key alone, so that money moved twice under two keys is
still seen as a duplicate. Records the test attributes to no expected key are unexpected
movements, counted as duplicates.

The figures, per scenario:

- expected: the movements that should have happened;
- performed: the movements the money's book (the provider when there is one, else the
  ledger) shows, duplicates included;
- duplicated: every record beyond the first of a movement, in any book, plus unexpected ones;
- lost: expected movements missing from at least one of their books;
- disagreements: a book showing another amount than expected (so ledger, sandbox and chain
  agree exactly when there are none).
"""

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

# The figures reported by the test running now, for its report (tests/faults/summary.py).
REPORTED: list["Figures"] = []


@dataclass(frozen=True)
class Figures:
    scenario: str
    expected: int
    performed: int
    duplicated: int
    lost: int
    # Every problem, one line each: missing from a book, twice in one, another amount.
    problems: tuple[str, ...] = ()
    notes: str = ""

    @property
    def disagreements(self) -> int:
        """Movements a book shows with another amount than expected, or more than once."""
        return sum(1 for problem in self.problems if "missing from" not in problem)

    def line(self) -> str:
        agree = "books agree" if not self.problems else f"{len(self.problems)} problems"
        notes = f"; {self.notes}" if self.notes else ""
        return (
            f"{self.scenario}: expected {self.expected}, performed {self.performed}, "
            f"duplicated {self.duplicated}, lost {self.lost}, {agree}{notes}"
        )

    def check(self) -> None:
        """The assertion of every fault test: each movement exactly once, in every book,
        with its amount."""
        detail = "\n".join(self.problems[:20])
        assert (self.duplicated, self.lost, self.problems) == (0, 0, ()), f"{self.line()}\n{detail}"
        assert self.performed == self.expected, self.line()


def report(figures: Figures) -> None:
    """Print the figures (shown with ``-s``) and keep them for the run's summary table."""
    REPORTED.append(figures)
    print(f"\nfault figures | {figures.line()}")


@dataclass
class _Expected:
    amount: int
    books: tuple[str, ...]


@dataclass
class MovementAudit:
    scenario: str
    expected: dict[str, _Expected] = field(default_factory=dict)
    records: dict[str, dict[str, list[tuple[int, str]]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list))
    )
    unexpected: list[str] = field(default_factory=list)

    def expect(self, key: str, amount: int, books: Iterable[str]) -> None:
        """One movement of ``amount`` that each of ``books`` must show once; the first book
        is where the money moves (the provider), the others record it."""
        if key in self.expected:
            raise ValueError(f"{key} is expected twice")
        self.expected[key] = _Expected(amount, tuple(books))

    def record(self, book: str, key: str | None, amount: int, what: str = "") -> None:
        """What ``book`` shows; ``key`` None: a movement of the scenario's scope that belongs
        to no expected one."""
        if key is None or key not in self.expected:
            self.unexpected.append(f"{book}: unexpected movement {amount} {what}".rstrip())
            return
        self.records[key][book].append((amount, what))

    def figures(self, notes: str = "") -> Figures:
        performed = duplicated = lost = 0
        disagreements: list[str] = []
        for key, want in self.expected.items():
            shown = self.records.get(key, {})
            performed += len(shown.get(want.books[0], []))
            missing = [book for book in want.books if not shown.get(book)]
            if missing:
                lost += 1
                disagreements.append(f"{key}: missing from {', '.join(missing)}")
            for book in want.books:
                rows = shown.get(book, [])
                duplicated += max(0, len(rows) - 1)
                if len(rows) > 1:
                    disagreements.append(f"{key}: {len(rows)} times in {book}: {rows}")
                wrong = [amount for amount, _ in rows if amount != want.amount]
                if wrong:
                    disagreements.append(f"{key}: {book} shows {wrong}, expected {want.amount}")
        duplicated += len(self.unexpected)
        performed += len(self.unexpected)
        disagreements += self.unexpected
        return Figures(
            self.scenario,
            len(self.expected),
            performed,
            duplicated,
            lost,
            tuple(disagreements),
            notes,
        )


# Reading the books


async def sandbox_movements(sandbox: Any, kind: str) -> list[dict[str, Any]]:
    """Every money movement of ``kind`` the Stripe sandbox recorded (``transfer``,
    ``charge``...). ``sandbox`` is an httpx client of it."""
    found = await sandbox.get(
        "/_sandbox/movements", params={"kind": kind}, headers={"Sandbox-Fault": "none"}
    )
    assert found.status_code == 200, found.text
    rows: list[dict[str, Any]] = found.json()["data"]
    return rows


async def ledger_postings(
    sessions: async_sessionmaker[AsyncSession], account_codes: Iterable[str]
) -> dict[str, list[tuple[int, str]]]:
    """Each account's postings (amount: positive a debit, negative a credit; and the
    transaction's external reference), for the accounts given."""
    codes = sorted(set(account_codes))
    found: dict[str, list[tuple[int, str]]] = {code: [] for code in codes}
    async with sessions() as session:
        rows = await session.execute(
            text(
                "SELECT a.code, p.amount, coalesce(t.external_ref, '') FROM ledger_postings p"
                " JOIN ledger_accounts a ON a.id = p.account_id"
                " JOIN ledger_transactions t ON t.id = p.transaction_id"
                " WHERE a.code = ANY(:codes)"
            ),
            {"codes": codes},
        )
        for code, amount, ref in rows:
            found[code].append((int(amount), str(ref)))
    return found


async def ledger_by_reference(
    sessions: async_sessionmaker[AsyncSession], account_code: str, prefixes: Iterable[str]
) -> dict[str, list[tuple[int, str]]]:
    """The postings on ``account_code`` of transactions whose external reference starts with
    each prefix (``invoice-<id>-``)."""
    wanted = list(prefixes)
    found: dict[str, list[tuple[int, str]]] = {prefix: [] for prefix in wanted}
    postings = await ledger_postings(sessions, [account_code])
    for amount, ref in postings[account_code]:
        for prefix in wanted:
            if ref.startswith(prefix):
                found[prefix].append((amount, ref))
    return found


def by_destination(rows: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    grouped: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for row in rows:
        grouped[str(row["related"].get("destination"))].append(row)
    return grouped
