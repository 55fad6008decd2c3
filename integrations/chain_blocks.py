"""Blocks of the chain by time: which blocks a period of time covers, so that events can be
asked for by block range (``eth_getLogs`` takes blocks, not times).

A binary search over block timestamps, which never decrease along the chain: about 25
``eth_getBlockByNumber`` calls for a chain of tens of millions of blocks. Synchronous like
web3; outages surface as ``ProviderError``.
"""

from web3 import Web3

from integrations.chain import provider_errors


class BlockClock:
    """Timestamps of one chain's blocks, remembered for the searches of one run."""

    def __init__(self, w3: Web3, rpc_url: str = "the chain node") -> None:
        self.w3 = w3
        self.rpc_url = rpc_url
        self._timestamps: dict[int, int] = {}
        self._latest: int | None = None

    def latest(self) -> int:
        if self._latest is None:
            with provider_errors(self.rpc_url):
                self._latest = int(self.w3.eth.block_number)
        return self._latest

    def timestamp(self, number: int) -> int:
        found = self._timestamps.get(number)
        if found is None:
            with provider_errors(self.rpc_url):
                found = int(self.w3.eth.get_block(number)["timestamp"])
            self._timestamps[number] = found
        return found

    def first_block_at(self, timestamp: int) -> int:
        """The first block mined at or after ``timestamp`` (Unix seconds); the block after the
        latest when none is yet."""
        latest = self.latest()
        if self.timestamp(latest) < timestamp:
            return latest + 1
        low, high = 0, latest
        while low < high:
            middle = (low + high) // 2
            if self.timestamp(middle) >= timestamp:
                high = middle
            else:
                low = middle + 1
        return low

    def blocks_between(self, start: int, end: int) -> tuple[int, int]:
        """The blocks mined in ``start``..``end`` (Unix seconds, the end excluded), as an
        inclusive range; empty (first > last) when there are none."""
        return self.first_block_at(start), self.first_block_at(end) - 1
