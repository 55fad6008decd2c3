"""The Temporal client: data converter, TLS/API key, and search-attribute registration."""

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import Runtime
from temporalio.service import RPCError

from domain.errors import ProviderError


async def connect(
    address: str,
    namespace: str,
    *,
    tls: bool = False,
    api_key: str | None = None,
    runtime: Runtime | None = None,
) -> Client:
    try:
        return await Client.connect(
            address,
            namespace=namespace,
            tls=tls,
            api_key=api_key,
            data_converter=pydantic_data_converter,
            runtime=runtime,
        )
    except (RuntimeError, RPCError) as exc:
        raise ProviderError(f"Temporal at {address} is unreachable: {exc}") from exc


async def add_search_attributes(
    client: Client, namespace: str, keys: Sequence[SearchAttributeKey[Any]]
) -> None:
    """Add ``keys`` without listing first (the time-skipping test server cannot list)."""
    if keys:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=namespace,
                search_attributes={
                    key.name: IndexedValueType.ValueType(key.indexed_value_type) for key in keys
                },
            )
        )


async def register_search_attributes(
    client: Client, namespace: str, keys: Sequence[SearchAttributeKey[Any]]
) -> list[str]:
    """Add the missing custom search attributes; returns the names it added."""
    existing = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    missing = [key for key in keys if key.name not in existing.custom_attributes]
    await add_search_attributes(client, namespace, missing)
    return sorted(key.name for key in missing)


async def ping(client: Client) -> dict[str, str]:
    try:
        info = await client.workflow_service.get_system_info(
            GetSystemInfoRequest(), timeout=timedelta(seconds=3)
        )
    except RPCError as exc:
        raise ProviderError(f"Temporal does not answer: {exc}") from exc
    return {"server_version": info.server_version}


class LazyClient:
    """Connects on first use and keeps the client, so a process can start before Temporal."""

    def __init__(self, address: str, namespace: str, *, tls: bool, api_key: str | None) -> None:
        self.address, self.namespace, self.tls, self.api_key = address, namespace, tls, api_key
        self._client: Client | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> Client:
        async with self._lock:
            if self._client is None:
                try:
                    self._client = await connect(
                        self.address, self.namespace, tls=self.tls, api_key=self.api_key
                    )
                except RuntimeError as exc:
                    raise ProviderError(f"Temporal at {self.address} is unavailable") from exc
            return self._client
