"""``make bench``: run every benchmark module and print its figures."""

import asyncio

from benchmarks import (
    anchoring,
    escrow,
    ledger,
    markets,
    payments,
    settlement,
    subscriptions,
    tickets,
)


def main() -> None:
    asyncio.run(ledger.main())
    asyncio.run(markets.main())
    tickets.main()
    anchoring.main()
    escrow.main()
    payments.main()
    subscriptions.main()
    settlement.main()


if __name__ == "__main__":
    main()
