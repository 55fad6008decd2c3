"""``make bench``: run every benchmark module and print its figures."""

import asyncio

from benchmarks import anchoring, escrow, ledger, tickets


def main() -> None:
    asyncio.run(ledger.main())
    tickets.main()
    anchoring.main()
    escrow.main()


if __name__ == "__main__":
    main()
