"""Connecting to Temporal the same way from the API, the worker, the CLI and the tests.

Both sides must use ``pydantic_data_converter``: inputs and results are pydantic models.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from typing import Any

from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import (
    Client,
    TLSConfig,
    WithStartWorkflowOperation,
    WorkflowHandle,
    WorkflowHistoryEventFilterType,
)
from temporalio.common import SearchAttributeKey
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter
from temporalio.runtime import Runtime
from temporalio.service import RPCError

from activities.runtime.payload_store import ClaimCheckCodec, PayloadStore
from activities.runtime.settings import Settings
from activities.runtime.storage import open_stores
from activities.runtime.tracing import tracing_interceptors
from workflows.errors import ConfigurationError, FailureType
from workflows.messages import SEARCH_ATTRIBUTES, ExecutionError

logger = logging.getLogger(__name__)


def _tls(settings: Settings) -> TLSConfig | bool:
    if settings.temporal_tls_cert_path or settings.temporal_tls_key_path:
        if not (settings.temporal_tls_cert_path and settings.temporal_tls_key_path):
            raise ConfigurationError(
                "TEMPORAL_TLS_CERT_PATH and TEMPORAL_TLS_KEY_PATH must be set together"
            )
        try:
            return TLSConfig(
                client_cert=settings.temporal_tls_cert_path.read_bytes(),
                client_private_key=settings.temporal_tls_key_path.read_bytes(),
                server_root_ca_cert=settings.temporal_tls_ca_path.read_bytes()
                if settings.temporal_tls_ca_path
                else None,
            )
        except OSError as err:
            raise ConfigurationError(f"TEMPORAL_TLS_*_PATH: cannot read {err.filename}") from None
    return settings.temporal_tls or settings.temporal_api_key is not None


def data_converter(settings: Settings) -> DataConverter:
    """Pydantic models in, large values by reference (see activities.runtime.payload_store),
    kept in the payloads area of the configured storage (STORAGE_URL)."""
    store = PayloadStore(open_stores(settings).payloads)
    codec = ClaimCheckCodec(store, settings.large_value_bytes)
    return dataclasses.replace(pydantic_data_converter, payload_codec=codec)


async def connect(
    settings: Settings, *, runtime: Runtime | None = None, service_name: str = "wfe-client"
) -> Client:
    """Connect to the configured Temporal frontend (dev server, cluster or Cloud).

    ``runtime``: where the SDK's metrics go (the worker's, activities.runtime.temporal_runtime);
    workers built on this client use it. With OTEL_EXPORTER_OTLP_ENDPOINT set, the client
    (and its workers) trace as ``service_name`` (activities.runtime.tracing).
    """
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(settings),
        tls=_tls(settings),
        api_key=settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None,
        interceptors=tracing_interceptors(settings, service_name),
        runtime=runtime,
    )


async def connect_when_ready(settings: Settings, within: float = 30.0) -> Client:
    """Connect, retrying until the server answers health checks (it may still be starting)."""
    deadline = time.monotonic() + within
    while True:
        try:
            client = await connect(settings)
            await client.service_client.check_health()
            return client
        except (RPCError, RuntimeError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def ensure_search_attributes(
    client: Client, keys: tuple[SearchAttributeKey, ...] = SEARCH_ATTRIBUTES
) -> None:
    """Register the project's search attributes if the server lacks them.

    Workflows upsert these; an unregistered one would fail every workflow task. Temporal Cloud
    does not allow this call: there, register them once in the namespace settings.
    """
    try:
        listed = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=client.namespace)
        )
    except RPCError as err:
        logger.warning("cannot list search attributes (%s); assuming they are registered", err)
        return
    missing = {
        # The SDK's enum mirrors the proto's IndexedValueType numbering.
        key.name: int(key.indexed_value_type)
        for key in keys
        if key.name not in listed.custom_attributes
    }
    if not missing:
        return
    try:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=client.namespace,
                search_attributes=missing,  # type: ignore[arg-type]  # proto enum values
            )
        )
        logger.info("registered search attributes %s", ", ".join(sorted(missing)))
    except RPCError as err:
        raise ConfigurationError(
            f"search attributes {', '.join(sorted(missing))} are not registered on namespace "
            f"{client.namespace!r} and cannot be added ({err}); register them as Keyword/Int"
        ) from None


async def closed_by_temporal(handle: WorkflowHandle[Any, Any], t_status: str) -> ExecutionError:
    """Why Temporal closed a run that our code never saw end: terminate (with its reason and
    who asked) or its run timeout. Read from the run's close event."""
    if t_status == "TIMED_OUT":
        return ExecutionError(
            type=FailureType.TIMED_OUT,
            message="the run passed the Temporal run timeout it was started with; no cleanup ran",
        )
    reason, identity = "", ""
    try:
        async for event in handle.fetch_history_events(
            event_filter_type=WorkflowHistoryEventFilterType.CLOSE_EVENT
        ):
            if event.HasField("workflow_execution_terminated_event_attributes"):
                attributes = event.workflow_execution_terminated_event_attributes
                reason, identity = attributes.reason, attributes.identity
    except RPCError as err:
        logger.warning("cannot read the close event of %s: %s", handle.id, err)
    by = f" by {identity}" if identity else ""
    return ExecutionError(
        type=FailureType.TERMINATED,
        message=f"terminated in Temporal{by}: {reason or 'no reason given'} (no cleanup ran)",
    )


async def start_outcome_seen(operation: WithStartWorkflowOperation[Any, Any]) -> None:
    """Retrieve the start's outcome of an update-with-start that failed. When the request
    failed before Temporal answered the start (the update timed out in a burst, the server was
    busy), the SDK sets the same error as the start's outcome; unread, asyncio reports it as
    "Future exception was never retrieved" in the worker's log. The SDK has settled the
    outcome by the time the update raises: this does not wait."""
    with contextlib.suppress(Exception, asyncio.CancelledError):
        await operation.workflow_handle()
