"""What an MCP tool call costs next to a plain http call to the same loopback server.

    python -m bench.mcp [--calls 200] [--rounds 3]

One server process (``--serve``, started by the benchmark) answers both: FastMCP (the official
SDK) at ``/mcp`` with a ``search`` tool, and ``/plain`` answering the same text as JSON from the
same Starlette app. The client side runs the engine's own activities outside a worker
(temporalio's ``ActivityEnvironment``), so Temporal's share, the same for both, is left out:

- ``http``: ``send_http_request`` (activities/http.py) GET ``/plain``;
- ``mcp``: ``call_mcp_tool`` (activities/mcp.py): one SDK session per call (initialize, the
  call, the SDK's tools/list for output validation, session end) on the guarded transport;
- ``mcp-sdk``: the SDK's client alone on a plain httpx client (no guard, no caps), for what
  the engine adds on top of the SDK;
- ``mcp-open``: a call in one session kept open (what a session pooled per worker would pay).

Rounds alternate the variants; the figure is the median over rounds of each round's mean.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import httpx

from api.cli.devstack import free_port


def serve(port: int) -> None:
    import uvicorn
    from mcp.server.fastmcp import FastMCP
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    # The SDK's server logs an error for every session a client ends; not what is measured.
    logging.disable(logging.CRITICAL)
    mcp = FastMCP("bench", host="127.0.0.1", port=port, log_level="WARNING")

    @mcp.tool(description="Search")
    def search(query: str) -> str:
        return f"hits for {query}"

    async def plain(request: Request) -> JSONResponse:
        return JSONResponse({"result": f"hits for {request.query_params.get('query')}"})

    app = mcp.streamable_http_app()
    app.router.routes.append(Route("/plain", plain))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


async def measure(port: int, calls: int, rounds: int) -> dict[str, float]:
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client
    from temporalio.testing import ActivityEnvironment

    from activities.http import HTTPStepActivities
    from activities.mcp import MCPActivities
    from activities.secrets import SecretStore
    from activities.ssrf import AddressPolicy, GuardedTransport, guarded_client
    from workflows.messages import HTTPRequest, MCPCallRequest

    base = f"http://127.0.0.1:{port}"
    policy = AddressPolicy.from_setting("127.0.0.1")
    secrets = SecretStore({})
    env = ActivityEnvironment()
    mcp_request = MCPCallRequest(
        execution_id="bench", step_id="s", url=f"{base}/mcp", tool="search",
        arguments={"query": "q"},
    )  # fmt: skip
    http_request = HTTPRequest(
        execution_id="bench", step_id="s", method="GET", url=f"{base}/plain",
        query={"query": "q"}, idempotency_key="k",
    )  # fmt: skip
    timeout = httpx.Timeout(30.0)
    async with (
        guarded_client(policy, timeout, httpx.Limits()) as step_http,
        GuardedTransport(policy) as transport,
        httpx.AsyncClient(timeout=timeout) as raw,
        streamable_http_client(f"{base}/mcp", http_client=raw) as (open_read, open_write, _),
        ClientSession(open_read, open_write) as open_session,
    ):
        await open_session.initialize()
        http_steps = HTTPStepActivities(step_http, secrets, 10 << 20, policy=policy)
        mcp_steps = MCPActivities(transport, secrets, 10 << 20, 1 << 20)

        async def http_call() -> None:
            await env.run(http_steps.send_http_request, http_request)

        async def mcp_call() -> None:
            await env.run(mcp_steps.call_mcp_tool, mcp_request)

        async def sdk_call() -> None:
            async with (
                streamable_http_client(f"{base}/mcp", http_client=raw) as (read, write, _),
                ClientSession(read, write) as session,
            ):
                await session.initialize()
                await session.call_tool("search", {"query": "q"})

        async def open_call() -> None:
            await open_session.call_tool("search", {"query": "q"})

        variants: dict[str, Callable[[], Awaitable[None]]] = {
            "http": http_call, "mcp": mcp_call, "mcp-sdk": sdk_call, "mcp-open": open_call,
        }  # fmt: skip
        for call in variants.values():  # warm up: connections, imports
            for _ in range(5):
                await call()
        means: dict[str, list[float]] = {name: [] for name in variants}
        for index in range(rounds):
            names = list(variants)
            names = names[index % len(names) :] + names[: index % len(names)]
            for name in names:
                started = time.perf_counter()
                for _ in range(calls):
                    await variants[name]()
                means[name].append((time.perf_counter() - started) / calls * 1000)
    return {name: statistics.median(values) for name, values in means.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    logging.disable(logging.WARNING)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "bench.mcp", "--serve", str(port)])
    try:
        for _ in range(600):  # up to a minute on a busy machine
            try:
                httpx.get(f"http://127.0.0.1:{port}/plain", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        figures = asyncio.run(measure(port, args.calls, args.rounds))
    finally:
        server.terminate()
        try:
            server.wait(timeout=5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    print(f"{'variant':<10} {'ms/call':>8}")
    for name, value in figures.items():
        print(f"{name:<10} {value:>8.2f}")
    overhead = figures["mcp"] - figures["http"]
    print(f"MCP overhead per call over plain http: {overhead:.2f} ms "
          f"({figures['mcp'] / figures['http']:.1f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
