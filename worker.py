"""The worker: runs WorkflowExecutor and the step, AI and log activities.

    python worker.py            # reads the environment (see activities/runtime/settings.py)

SIGTERM / SIGINT stop polling, give running activities WORKER_GRACEFUL_SHUTDOWN_SECONDS to
finish, then exit; Temporal hands anything unfinished to another worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import logging
import signal
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError
from temporalio.worker import UnsandboxedWorkflowRunner, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from activities.ai import AIClient
from activities.flow_control import FlowControlActivities
from activities.http import HTTPStepActivities
from activities.log_rotation import RotationPolicy
from activities.logs import WorkflowLogger
from activities.mcp import MCPActivities
from activities.metrics import ModelLabels
from activities.rate_limits import RateLimits
from activities.runtime.log_format import StepContextInterceptor, configure_logging
from activities.runtime.payload_store import PayloadStore, retention_seconds
from activities.runtime.settings import Settings, load_settings
from activities.runtime.storage import check_storage, open_stores
from activities.runtime.temporal_client import closed_by_temporal, connect, ensure_search_attributes
from activities.runtime.temporal_runtime import worker_runtime
from activities.runtime.tracing import WORKER_SERVICE
from activities.secrets import SecretStore, install_log_redaction
from activities.ssrf import AddressPolicy, GuardedTransport, guarded_client, stateless_cookies
from activities.tls import client_tls_context
from workflows.errors import ConfigurationError
from workflows.interpreter import ENGINE_WORKFLOWS
from workflows.messages import WORKFLOW_TYPE

logger = logging.getLogger("worker")
# How often freed memory is handed back to the operating system (trim_memory_forever).
MEMORY_TRIM_SECONDS = 5.0

# Cancellation reaches an activity in a heartbeat answer; flushing heartbeats at least this
# often bounds how long a cancelled step keeps running. A streamed AI answer rides in its
# heartbeat details (docs/streaming.md): this is also most of how late its text reaches a
# reader. Only an activity that heartbeats more often pays for more RPCs.
HEARTBEAT_FLUSH = timedelta(seconds=0.1)


def build_secrets(settings: Settings) -> SecretStore:
    extra = [settings.openrouter_api_key.get_secret_value()] if settings.openrouter_api_key else []
    return SecretStore.from_environment(settings.secret_env_prefix, settings.secrets_file, extra)


HTTP_TIMEOUT = httpx.Timeout(connect=10.0, read=None, write=30.0, pool=30.0)
HTTP_LIMITS = httpx.Limits(max_connections=200, max_keepalive_connections=50)


@contextlib.asynccontextmanager
async def http_step_activities(
    settings: Settings,
    secrets: SecretStore | None = None,
    logs: WorkflowLogger | None = None,
    limits: RateLimits | None = None,
) -> AsyncIterator[HTTPStepActivities]:
    """The `http` step activity on an SSRF-guarded client (redirects re-checked per hop).

    With ``logs`` the activity writes its step's log record itself (see StepLog).
    """
    policy = AddressPolicy.from_setting(settings.http_allowed_hosts)
    async with guarded_client(policy, HTTP_TIMEOUT, HTTP_LIMITS) as step_http:
        yield HTTPStepActivities(
            step_http,
            secrets or build_secrets(settings),
            settings.http_max_response_bytes,
            settings.http_user_agent,
            policy=policy,
            max_redirects=settings.http_max_redirects,
            logs=logs,
            limits=limits,
        )


@contextlib.asynccontextmanager
async def engine_worker(
    client: Client,
    settings: Settings,
    task_queue: str | None = None,
    logs: WorkflowLogger | None = None,
) -> AsyncIterator[Worker]:
    """A configured worker (not yet running) plus the resources its activities share."""
    secrets = build_secrets(settings)
    logs = logs or build_logger(settings)
    limits = RateLimits.from_settings(client, settings)
    async with (
        folding_logs(logs),
        http_step_activities(settings, secrets, logs, limits) as http_steps,
        httpx.AsyncClient(
            timeout=HTTP_TIMEOUT,
            limits=HTTP_LIMITS,
            cookies=stateless_cookies(),
            verify=client_tls_context(),
        ) as ai_http,
        # MCP sessions (activities/mcp.py) borrow this pool: the same guard as http steps.
        GuardedTransport(
            AddressPolicy.from_setting(settings.http_allowed_hosts), limits=HTTP_LIMITS
        ) as mcp_transport,
    ):
        mcp = MCPActivities(
            mcp_transport,
            secrets,
            settings.http_max_response_bytes,
            settings.max_value_bytes,
            logs=logs,
        )
        ai = AIClient(
            ai_http,
            settings.openrouter_base_url,
            settings.openrouter_api_key,
            secrets,
            app_title=settings.openrouter_app_title,
            referer=settings.openrouter_referer,
            logs=logs,
            model_labels=ModelLabels(settings.worker_metrics_max_models),
            limits=limits,
            providers=settings.providers,
        )
        yield Worker(
            client,
            task_queue=task_queue or settings.temporal_task_queue,
            workflows=list(ENGINE_WORKFLOWS),
            workflow_runner=SandboxedWorkflowRunner()
            if settings.worker_workflow_sandbox
            else UnsandboxedWorkflowRunner(),
            activities=[
                ai.call_llm,
                http_steps.send_http_request,
                logs.write_execution_log,
                mcp.list_mcp_tools,
                mcp.call_mcp_tool,
                *flow_control_activities(client),
                limits.reserve_ai_turn,
            ],
            # JSON log lines name the step an activity runs (activities/runtime/log_format.py).
            interceptors=[StepContextInterceptor()] if settings.log_format == "json" else [],
            max_concurrent_activities=settings.worker_max_concurrent_activities,
            max_cached_workflows=settings.worker_max_cached_workflows,
            max_heartbeat_throttle_interval=HEARTBEAT_FLUSH,
            default_heartbeat_throttle_interval=HEARTBEAT_FLUSH,
            graceful_shutdown_timeout=timedelta(seconds=settings.worker_graceful_shutdown_seconds),
            sticky_queue_schedule_to_start_timeout=timedelta(
                seconds=settings.worker_sticky_timeout_seconds
            ),
        )


@contextlib.asynccontextmanager
async def folding_logs(logs: WorkflowLogger, every: float = 1.0) -> AsyncIterator[None]:
    """Fold the journals of running logs, in a thread, for as long as the worker runs.

    Steps only append to a log's journal; every ``every`` seconds the logs whose journals have
    waited long enough (activities/logs.py) are rebuilt, one rewrite per run. On the way out
    every journal this process wrote is folded, so a stopped worker leaves whole documents.
    """

    async def fold_forever() -> None:
        while True:
            await asyncio.sleep(every)
            await asyncio.to_thread(logs.fold_due)

    folding = asyncio.create_task(fold_forever())
    try:
        yield
    finally:
        folding.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await folding
        await asyncio.to_thread(logs.fold_due, 0.0)


def flow_control_activities(client: Client) -> list[Callable[..., Any]]:
    """The local activities of concurrency keys (activities/flow_control.py)."""
    flow = FlowControlActivities(client)
    return [flow.request_concurrency_place, flow.closed_executions]


def build_logger(settings: Settings) -> WorkflowLogger:
    """The execution logs in the configured storage (STORAGE_URL), with rotation."""
    return WorkflowLogger(open_stores(settings).logs, RotationPolicy.from_settings(settings))


async def rotate_logs_forever(
    logs: WorkflowLogger, interval: float, payloads: PayloadStore | None = None, keep: float = 0
) -> None:
    """Every ``interval``: rotate the logs, and delete large values not written or
    re-referenced for ``keep`` seconds (payload_store.retention_seconds says why that is safe).
    """
    while True:
        try:
            report = await asyncio.to_thread(logs.rotate)
            if report.compressed or report.deleted:
                logger.info(
                    "log rotation: %d compressed, %d deleted, %d kept",
                    report.compressed,
                    report.deleted,
                    report.kept,
                )
        except OSError as err:
            logger.error("log rotation failed: %s", err)
        if payloads is not None:
            try:
                swept = await asyncio.to_thread(payloads.sweep, keep)
                if swept.deleted:
                    logger.info(
                        "large values: %d past retention deleted, %d kept",
                        swept.deleted,
                        swept.kept,
                    )
            except OSError as err:
                logger.error("large value retention failed: %s", err)
        await asyncio.sleep(interval)


async def finalise_closed_logs(
    client: Client, logs: WorkflowLogger, settings: Settings, since: datetime
) -> int:
    """Close the logs of runs that Temporal ended without our code running (terminate, a
    Temporal-side run timeout): no workflow code runs then, so nothing else would. Returns how
    many logs it closed."""
    query = (
        f"WorkflowType = '{WORKFLOW_TYPE}' AND TaskQueue = '{settings.temporal_task_queue}' "
        f"AND ExecutionStatus IN ('Terminated', 'TimedOut') "
        f"AND CloseTime > '{since.isoformat(timespec='seconds')}'"
    )
    closed = 0
    async for execution in client.list_workflows(query):
        handle = client.get_workflow_handle(execution.id)
        latest = await handle.describe()
        if latest.run_id != execution.run_id:
            continue  # a reset started a newer run, which owns the log now
        t_status = (
            "TIMED_OUT" if execution.status == WorkflowExecutionStatus.TIMED_OUT else "TERMINATED"
        )
        error = await closed_by_temporal(handle, t_status)
        ended = execution.close_time or datetime.now(UTC)
        if await asyncio.to_thread(logs.finalise, execution.id, "terminated", ended, error):
            logger.info("closed the log of %s: %s", execution.id, error.message)
            closed += 1
    return closed


async def finalise_closed_logs_forever(
    client: Client, logs: WorkflowLogger, settings: Settings
) -> None:
    """Every LOG_RECONCILE_INTERVAL_SECONDS, a look back over runs closed since the last look."""
    since = datetime.now(UTC) - timedelta(days=7)
    while True:
        started = datetime.now(UTC)
        try:
            await finalise_closed_logs(client, logs, settings, since)
            since = started - timedelta(minutes=5)  # visibility lags a little behind
        except (RPCError, OSError) as err:
            logger.error("closing logs of terminated runs failed: %s", err)
        await asyncio.sleep(settings.log_reconcile_interval_seconds)


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None elsewhere (musl, macOS: nothing to do there)."""
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None


async def trim_memory_forever(interval: float = MEMORY_TRIM_SECONDS) -> None:
    """Hand memory that finished runs freed back to the operating system.

    A run that handled a hundred megabytes of results frees them when it ends, but glibc keeps
    the freed pages in its heap, so the worker's resident size would stay at its peak until
    restarted. malloc_trim returns them; it runs in a thread (it walks the heap) and costs
    nothing when there is nothing to return."""
    trim = _malloc_trim()
    if trim is None:
        return
    while True:
        await asyncio.sleep(interval)
        await asyncio.to_thread(trim, 0)


async def main() -> None:
    settings = load_settings()
    configure_logging(settings.log_format)  # before redaction, which covers these handlers
    # Every line this process logs is scrubbed of secrets (any encoding) and URL queries, and
    # httpx's per-request INFO line (the full URL) is off: docs/secrets.md.
    install_log_redaction(build_secrets(settings))
    if settings.openrouter_api_key is None:
        logger.warning("OPENROUTER_API_KEY is not set: ai steps will fail until it is")
    # An unreachable S3 endpoint or a missing bucket stops the worker here, naming the variable.
    await asyncio.to_thread(check_storage, settings)
    # Metrics (WORKER_METRICS_ADDRESS) and tracing (OTEL_EXPORTER_OTLP_ENDPOINT) ride on the
    # client; the worker built on it below inherits both.
    client = await connect(settings, runtime=worker_runtime(settings), service_name=WORKER_SERVICE)
    if settings.worker_metrics_address:
        logger.info("worker metrics at http://%s/metrics", settings.worker_metrics_address)
    await ensure_search_attributes(client)
    logs = build_logger(settings)
    rotation = asyncio.create_task(
        rotate_logs_forever(
            logs,
            settings.log_rotation_interval_seconds,
            PayloadStore(open_stores(settings).payloads),
            retention_seconds(settings),
        )
    )
    reconciling = asyncio.create_task(finalise_closed_logs_forever(client, logs, settings))
    trimming = asyncio.create_task(trim_memory_forever())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with engine_worker(client, settings, logs=logs) as worker:
        logger.info(
            "worker polling task queue %r on %s (namespace %s)",
            settings.temporal_task_queue,
            settings.temporal_address,
            settings.temporal_namespace,
        )
        # What start-up built (modules, pydantic's schemas, the SDK) lives as long as the
        # process: frozen, the collector's full passes no longer walk it. They walked it a few
        # times a minute under load, most of the worker's time in gc.
        gc.freeze()
        running = asyncio.create_task(worker.run())
        await asyncio.wait(
            {running, asyncio.create_task(stop.wait())}, return_when="FIRST_COMPLETED"
        )
        if not running.done():
            logger.info("stopping: finishing running activities, then exiting")
            await worker.shutdown()
        await running
    rotation.cancel()
    reconciling.cancel()
    trimming.cancel()


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        asyncio.run(main())
    except ConfigurationError as err:
        raise SystemExit(f"worker: {err}") from None
