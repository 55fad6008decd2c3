"""The Temporal client: data converter, TLS/API key, and search-attribute registration."""

import asyncio
import dataclasses
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client, Interceptor
from temporalio.common import SearchAttributeKey
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadCodec,
)
from temporalio.runtime import Runtime
from temporalio.service import RPCError, RPCStatusCode

from domain.errors import ProviderError


def data_converter(payload_codec: PayloadCodec | None = None) -> DataConverter:
    """Pydantic payloads; with a codec (payload encryption), every payload goes through it,
    and failures' messages and stack traces move into their encoded attributes so that they
    are encrypted too (an error message can quote personal data)."""
    if payload_codec is None:
        return pydantic_data_converter
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=payload_codec,
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


async def connect(
    address: str,
    namespace: str,
    *,
    tls: bool = False,
    api_key: str | None = None,
    runtime: Runtime | None = None,
    payload_codec: PayloadCodec | None = None,
    interceptors: Sequence[Interceptor] = (),
) -> Client:
    try:
        return await Client.connect(
            address,
            namespace=namespace,
            tls=tls,
            api_key=api_key,
            data_converter=data_converter(payload_codec),
            runtime=runtime,
            # Tracing's (observability.tracing); client interceptors reach the workers too.
            interceptors=interceptors,
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
    try:
        existing = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
    except RPCError as exc:
        if exc.status != RPCStatusCode.UNIMPLEMENTED:
            raise
        # The time-skipping test server cannot list them (a worker of the fault tests runs
        # on it): add each, one already there is not an error.
        added = []
        for key in keys:
            try:
                await add_search_attributes(client, namespace, [key])
            except RPCError as refused:
                if refused.status != RPCStatusCode.ALREADY_EXISTS:
                    raise
            else:
                added.append(key.name)
        return sorted(added)
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

    def __init__(
        self,
        address: str,
        namespace: str,
        *,
        tls: bool,
        api_key: str | None,
        payload_codec: PayloadCodec | None = None,
        interceptors: Sequence[Interceptor] = (),
    ) -> None:
        self.address, self.namespace, self.tls, self.api_key = address, namespace, tls, api_key
        self.payload_codec = payload_codec
        self.interceptors = interceptors
        self._client: Client | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> Client:
        async with self._lock:
            if self._client is None:
                try:
                    self._client = await connect(
                        self.address,
                        self.namespace,
                        tls=self.tls,
                        api_key=self.api_key,
                        payload_codec=self.payload_codec,
                        interceptors=self.interceptors,
                    )
                except RuntimeError as exc:
                    raise ProviderError(f"Temporal at {self.address} is unavailable") from exc
            return self._client
