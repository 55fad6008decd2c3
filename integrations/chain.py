"""Thin client of the EVM chain: web3 connections, compiled contracts, and a health ping.

Failures to reach the node surface as ``ProviderError`` (retryable); contract reverts stay
web3's ``ContractLogicError`` so callers can tell a refusal from an outage.
"""

import asyncio
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import requests
from eth_utils import keccak
from web3 import HTTPProvider, Web3
from web3.contract import Contract
from web3.exceptions import (
    BadResponseFormat,
    ProviderConnectionError,
    RequestTimedOut,
    TimeExhausted,
    TooManyRequests,
)

from domain.errors import ProviderError

ARTIFACTS_DIR = Path(__file__).resolve().parents[1] / "contracts" / "build"
DEFAULT_TIMEOUT = 10.0

# What "the node did not answer properly" looks like from web3 and requests; reverts and other
# JSON-RPC errors are answers, so they are left alone.
_UNAVAILABLE = (
    requests.RequestException,
    OSError,
    ProviderConnectionError,
    BadResponseFormat,
    RequestTimedOut,
    TimeExhausted,
    TooManyRequests,
)


@contextmanager
def provider_errors(rpc_url: str) -> Iterator[None]:
    """Turns connection failures and timeouts inside the block into ``ProviderError``."""
    try:
        yield
    except _UNAVAILABLE as exc:
        raise ProviderError(f"chain node at {rpc_url} is unavailable: {exc}") from exc


def make_web3(
    rpc_url: str, *, request_timeout: float = DEFAULT_TIMEOUT, retry: bool = True
) -> Web3:
    """A ``Web3`` over HTTP; ``retry=False`` fails at once instead of web3's ~2 s of retries."""
    kwargs: dict[str, Any] = {} if retry else {"exception_retry_configuration": None}
    return Web3(HTTPProvider(rpc_url, request_kwargs={"timeout": request_timeout}, **kwargs))


@cache
def load_artifact(name: str) -> dict[str, Any]:
    """The compiled artifact ``contracts/build/{name}.json`` (abi, bytecode, compiler, ...)."""
    artifact: dict[str, Any] = json.loads((ARTIFACTS_DIR / f"{name}.json").read_text())
    return artifact


def contract(w3: Web3, name: str, address: str) -> Contract:
    return w3.eth.contract(
        address=Web3.to_checksum_address(address), abi=load_artifact(name)["abi"]
    )


def custom_error_name(name: str, revert_data: Any) -> str | None:
    """Names the custom error of contract ``name`` whose selector starts ``revert_data``.

    ``revert_data`` is the ``data`` of web3's ``ContractCustomError`` (a 0x-hex string).
    """
    if not isinstance(revert_data, str) or not revert_data.startswith("0x"):
        return None
    selector = revert_data[2:10].lower()
    for item in load_artifact(name)["abi"]:
        if item["type"] == "error":
            signature = f"{item['name']}({','.join(i['type'] for i in item['inputs'])})"
            if keccak(text=signature)[:4].hex() == selector:
                return str(item["name"])
    return None


def ping(rpc_url: str, *, request_timeout: float = 2.0) -> dict[str, int]:
    """``{"chain_id", "latest_block"}`` of the node; ``ProviderError`` if it does not answer."""
    w3 = make_web3(rpc_url, request_timeout=request_timeout, retry=False)
    with provider_errors(rpc_url):
        return {"chain_id": w3.eth.chain_id, "latest_block": w3.eth.block_number}


async def ping_async(rpc_url: str, *, request_timeout: float = 2.0) -> dict[str, int]:
    """``ping`` off the event loop, for async callers such as the API's health check."""
    return await asyncio.to_thread(ping, rpc_url, request_timeout=request_timeout)


class BlockHeight:
    """The chain's latest block number, cached for ``ttl`` seconds so that a busy endpoint
    (confirmations of a proof) asks the node at most that often."""

    def __init__(self, rpc_url: str, *, ttl: float = 2.0) -> None:
        self.rpc_url = rpc_url
        self.ttl = ttl
        self._value: int | None = None
        self._at = float("-inf")

    async def latest(self) -> int | None:
        """None when the node does not answer: callers fall back to what they stored."""
        now = time.monotonic()
        if now - self._at >= self.ttl:
            try:
                self._value = (await ping_async(self.rpc_url))["latest_block"]
            except ProviderError:
                self._value = None
            self._at = now
        return self._value
