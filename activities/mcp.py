"""MCP client activities: list a server's tools, call one tool (docs/mcp.md).

Both speak MCP streamable HTTP through the official ``mcp`` SDK, one session per activity
call (initialize, the request, session end), so an activity holds nothing between attempts
and any worker may run any call.

Security is the `http` step's: every request of the session (the SDK follows only redirects
that stay on the endpoint's origin, each one a new request) goes through the worker's
SSRF-guarded transport (activities/ssrf.py), which checks and pins every connection against
the address policy and ``HTTP_ALLOWED_HOSTS``. ``{secrets.X}`` in the headers is filled here,
from deferred slots, and a secret bound to hosts goes only to those hosts. Every answer is
capped at ``HTTP_MAX_RESPONSE_BYTES`` as it is read, a tool's result at ``MAX_VALUE_BYTES``;
every text that leaves (results, errors) is redacted. Temporal's timeouts and heartbeats
bound a slow or hung server like any step.
"""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

import anyio
import httpx
from mcp import ClientSession, McpError
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, Tool
from temporalio import activity
from temporalio.exceptions import FailureError

from activities.errors import MCPProtocolError, ResponseTooLarge, SSRFBlocked
from activities.failures import Mapped, classify, is_retryable_status, permanent, retryable
from activities.heartbeat import with_heartbeats
from activities.logs import WorkflowLogger, carried_log
from activities.secrets import SecretStore, fill_secrets
from activities.ssrf import DEFAULT_PORTS, SSRF_BLOCKED, stateless_cookies
from workflows.errors import FailureType
from workflows.input_schema import schema_problems
from workflows.messages import (
    CALL_MCP_TOOL,
    LIST_MCP_TOOLS,
    MCPCallRequest,
    MCPCallResult,
    MCPListRequest,
    MCPServerRequest,
    MCPTool,
    MCPToolList,
)
from workflows.validation import header_problem

T = TypeVar("T")
DEFAULT_TIMEOUT_SECONDS = 30.0
SESSION_TIMEOUT_MARGIN_SECONDS = 5.0

# How a failed session crosses into Temporal (activities/failures.py), specific first.
MCP_FAILURES = (
    Mapped(SSRFBlocked, SSRF_BLOCKED, "{described}: {err}"),
    Mapped(MCPProtocolError, FailureType.MCP_ERROR, "{described}: {err}"),
    Mapped(McpError, FailureType.MCP_ERROR, "{described}: the server answered an error: {err}"),
    Mapped(
        ResponseTooLarge,
        FailureType.HTTP_STATUS,
        "{described}: an answer is larger than {limit} bytes (HTTP_MAX_RESPONSE_BYTES)",
    ),
    Mapped(httpx.TimeoutException, FailureType.HTTP_TRANSPORT, "{described}: timed out", True),
    Mapped(httpx.TransportError, FailureType.HTTP_TRANSPORT, "{described}: {kind}: {err}", True),
    Mapped(TimeoutError, FailureType.HTTP_TRANSPORT, "{described}: timed out", True),
)
MCP_FALLBACK = Mapped(Exception, FailureType.MCP_ERROR, "{described}: {kind}: {err}", True)


class _CappedStream(httpx.AsyncByteStream):
    """A response body that stops (and stops the session) past ``limit`` bytes."""

    def __init__(self, inner: httpx.AsyncByteStream, limit: int, trip: Callable[[], None]) -> None:
        self._inner = inner
        self._limit = limit
        self._trip = trip

    async def __aiter__(self) -> AsyncIterator[bytes]:
        size = 0
        async for chunk in self._inner:
            size += len(chunk)
            if size > self._limit:
                self._trip()
                raise ResponseTooLarge()
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


class _Borrowed(httpx.AsyncBaseTransport):
    """The worker's guarded transport, lent to one session: its answers capped, never closed
    by the session's client (the pool, and its kept-alive connections, outlive the call)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, limit: int, scope: anyio.CancelScope):
        self._inner = inner
        self._limit = limit
        self._scope = scope
        self.too_large = False

    def _trip(self) -> None:
        # The SDK reads answers in tasks of its own and would only log the error: stop the
        # session, and the activity reports why.
        self.too_large = True
        self._scope.cancel()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        assert isinstance(response.stream, httpx.AsyncByteStream)
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_CappedStream(response.stream, self._limit, self._trip),
            extensions=response.extensions,
            request=request,
        )

    async def aclose(self) -> None:
        return None


class MCPActivities:
    """Runs MCP sessions on the worker's SSRF-guarded transport (see the module docstring)."""

    def __init__(
        self,
        transport: httpx.AsyncBaseTransport,
        secrets: SecretStore,
        max_response_bytes: int,
        max_value_bytes: int,
        logs: WorkflowLogger | None = None,
    ) -> None:
        self._transport = transport
        self._secrets = secrets
        self._max_response_bytes = max_response_bytes
        self._max_value_bytes = max_value_bytes
        self._logs = logs

    @activity.defn(name=LIST_MCP_TOOLS)
    async def list_mcp_tools(self, request: MCPListRequest) -> MCPToolList:
        """Activity: the server's tools (those ``request.tools`` names), schemas checked."""

        async def listing(session: ClientSession) -> MCPToolList:
            tools = await _all_tools(session)
            wanted = request.tools
            if wanted is not None:
                missing = sorted(set(wanted) - {tool.name for tool in tools})
                if missing:
                    raise _no_such_tool(", ".join(missing), tools)
                tools = [tool for tool in tools if tool.name in wanted]
            return MCPToolList(tools=[_checked_tool(tool) for tool in tools])

        return await self._with_log(request, listing)

    @activity.defn(name=CALL_MCP_TOOL)
    async def call_mcp_tool(self, request: MCPCallRequest) -> MCPCallResult:
        """Activity: call one tool; a tool error is an answer (``is_error``), not a failure."""

        arguments = self._arguments(request)

        async def calling(session: ClientSession) -> MCPCallResult:
            result = await session.call_tool(request.tool, arguments)
            if result.isError:
                # "No such tool" is the server's own error answer: say which tools it has.
                tools = await _all_tools(session)
                if request.tool not in {tool.name for tool in tools}:
                    raise _no_such_tool(request.tool, tools)
            return self._bounded(_result(result))

        return await self._with_log(request, calling)

    async def _with_log(
        self, request: MCPServerRequest, work: Callable[[ClientSession], Awaitable[T]]
    ) -> T:
        async with carried_log(self._logs, request.log) as log:
            result = await self._session(request, work)
            result.log_written = await log.written()  # type: ignore[attr-defined]
        return self._secrets.redact_model(result)  # type: ignore[type-var, no-any-return]

    async def _session(
        self, request: MCPServerRequest, work: Callable[[ClientSession], Awaitable[T]]
    ) -> T:
        url, headers = self._filled(request)
        described = self._secrets.redact(f"MCP server {_shown(url)}")
        timeout = _timeout_seconds()
        # A little past the step's timeout: Temporal's own timeout ends a slow call first, and
        # the step fails StepTimeout like any other (and retries as the step says).
        read_timeout = timedelta(seconds=timeout + SESSION_TIMEOUT_MARGIN_SECONDS)
        scope = anyio.CancelScope()
        borrowed = _Borrowed(self._transport, self._max_response_bytes, scope)
        client = httpx.AsyncClient(
            transport=borrowed,
            headers=headers,
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            trust_env=False,
            cookies=stateless_cookies(),
        )

        async def run() -> T:
            with scope:
                async with (
                    client,
                    streamable_http_client(str(url), http_client=client) as (read, write, _),
                    ClientSession(read, write, read_timeout) as session,
                ):
                    await session.initialize()
                    return await work(session)
            raise ResponseTooLarge()  # only a tripped cap cancels the scope

        try:
            return await with_heartbeats(run())
        except FailureError:
            raise  # already classified (or Temporal's own cancellation)
        except BaseException as err:  # the SDK's task groups raise ExceptionGroups
            raise self._failure(_leaf(err), borrowed.too_large, described) from None

    def _failure(self, cause: BaseException, too_large: bool, described: str) -> BaseException:
        """What a failed session raises: a cancellation as it is, else its ApplicationError."""
        if isinstance(cause, anyio.get_cancelled_exc_class() | KeyboardInterrupt | SystemExit):
            return cause
        if too_large:
            cause = ResponseTooLarge()
        if isinstance(cause, FailureError):
            return cause  # classified in the session (a result over the limit)
        if isinstance(cause, McpError) and cause.error.code == httpx.codes.REQUEST_TIMEOUT:
            cause = TimeoutError(str(cause))  # the SDK's own read timeout: transport
        if isinstance(cause, httpx.HTTPStatusError):
            return _status_error(cause, described, self._secrets.redact)
        return classify(
            cause,
            MCP_FAILURES,
            MCP_FALLBACK,
            self._secrets.redact,
            described=described,
            limit=self._max_response_bytes,
        )

    def _filled(self, request: MCPServerRequest) -> tuple[httpx.URL, dict[str, str]]:
        """The URL and the headers with their secrets, checked as an `http` step's are (a
        call's arguments get theirs in :meth:`_arguments`)."""
        fields = fill_secrets(
            {"url": request.url, "headers": dict(request.headers)},
            request.deferred,
            self._secrets,
            request.workflow_id,
            request.step_id,
        )
        for name, value in fields["headers"].items():
            problem = header_problem(str(name), str(value))
            if problem is not None:
                raise permanent(
                    self._secrets.redact(f"step '{request.step_id}': {problem}"),
                    FailureType.INVALID_REQUEST,
                )
        try:
            url = httpx.URL(str(fields["url"]))
            if url.scheme not in ("http", "https") or not url.host:
                raise ValueError("the URL must be absolute: http(s)://host/...")
        except (httpx.InvalidURL, ValueError) as err:
            raise permanent(
                self._secrets.redact(f"invalid MCP server URL {fields['url']}: {err}"),
                FailureType.INVALID_REQUEST,
            ) from None
        self._secrets.check_host(
            request.deferred, url.host, url.port or DEFAULT_PORTS[url.scheme], request.step_id
        )
        return url, {str(k): str(v) for k, v in fields["headers"].items()}

    def _arguments(self, request: MCPCallRequest) -> dict[str, Any]:
        """The arguments with the step's ``{secrets.X}`` filled (slots are located in
        ``{"url", "headers", "arguments"}``, as the workflow rendered them)."""
        if not any(slot.location[:1] == ["arguments"] for slot in request.deferred):
            return request.arguments
        fields = fill_secrets(
            {
                "url": request.url,
                "headers": dict(request.headers),
                "arguments": copy.deepcopy(request.arguments),  # filled in place
            },
            request.deferred,
            self._secrets,
            request.workflow_id,
            request.step_id,
        )
        return dict(fields["arguments"])

    def _bounded(self, result: MCPCallResult) -> MCPCallResult:
        size = len(json.dumps(result.as_output(), default=str).encode())
        if size > self._max_value_bytes:
            raise permanent(
                f"the MCP tool's answer is {size:,} bytes; the limit for a value is "
                f"{self._max_value_bytes:,} bytes (MAX_VALUE_BYTES)",
                FailureType.VALUE_TOO_LARGE,
            )
        return result


async def _all_tools(session: ClientSession) -> list[Tool]:
    tools: list[Tool] = []
    cursor: str | None = None
    for _ in range(100):  # pages; a server that never stops paging is cut off
        page = await session.list_tools(cursor=cursor)
        tools += page.tools
        cursor = page.nextCursor
        if not cursor:
            break
    return tools


def _checked_tool(tool: Tool) -> MCPTool:
    problems = schema_problems(tool.inputSchema, "$.inputSchema")
    if problems:
        raise MCPProtocolError(
            f"the tool '{tool.name}' has an input schema that is not valid JSON Schema: "
            f"{problems[0].path}: {problems[0].message}"
        )
    return MCPTool(
        name=tool.name, description=tool.description or "", input_schema=tool.inputSchema
    )


def _no_such_tool(names: str, tools: list[Tool]) -> MCPProtocolError:
    offered = ", ".join(sorted(tool.name for tool in tools)) or "none"
    return MCPProtocolError(f"the server has no tool {names} (it has: {offered})")


def _result(result: CallToolResult) -> MCPCallResult:
    content = [
        block.model_dump(mode="json", by_alias=True, exclude_none=True) for block in result.content
    ]
    text = "\n".join(block["text"] for block in content if block.get("type") == "text")
    return MCPCallResult(
        content=content, structured=result.structuredContent, is_error=result.isError, text=text
    )


def _leaf(err: BaseException) -> BaseException:
    """The error inside (nested) exception groups."""
    while isinstance(err, BaseExceptionGroup):
        err = err.exceptions[0]
    return err


def _status_error(
    err: httpx.HTTPStatusError, described: str, redact: Callable[[str], str]
) -> Exception:
    status = err.response.status_code
    message = redact(f"{described} answered {status}: {str(err).splitlines()[0]}")
    if is_retryable_status(status):
        return retryable(message, FailureType.HTTP_RETRYABLE)
    return permanent(message, FailureType.HTTP_STATUS)


def _timeout_seconds() -> float:
    timeout = activity.info().start_to_close_timeout
    return timeout.total_seconds() if timeout else DEFAULT_TIMEOUT_SECONDS


def _shown(url: httpx.URL) -> str:
    """A URL for messages: no credentials, no query."""
    return str(url.copy_with(username=None, password=None, query=None, fragment=None))
