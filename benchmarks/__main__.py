"""``make bench``: run every benchmark module and print its figures."""

import asyncio

from benchmarks import ledger


def main() -> None:
    asyncio.run(ledger.main())


if __name__ == "__main__":
    main()
