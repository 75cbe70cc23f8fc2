"""The `mcp` step on the real stack against an MCP server written with the official SDK
(FastMCP on loopback): results, the bearer secret, tool errors routed by on_error, a rerun
reusing the call, and bad input failing the step with a clear type."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.mcp import MCPActivities
from activities.runtime.settings import Settings
from activities.secrets import SecretStore
from activities.ssrf import AddressPolicy, GuardedTransport
from tests.conftest import eventually, save_definition
from tests.fakes import HttpSink, Reply
from tests.mcp_fakes import (
    DOCS_SECRET,
    FakeMCPServer,
    finished,
    history_text,
    run,
)
from workflows.messages import MCPCallRequest

FAST = {"max_attempts": 1}


@pytest.fixture(autouse=True)
def docs_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker reads secrets from its environment when it is built."""
    monkeypatch.setenv("WORKFLOW_SECRET_DOCS", DOCS_SECRET)


def mcp_step(url: str, tool: str, arguments: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "id": "ask",
        "type": "mcp",
        "url": url,
        "headers": {"Authorization": "Bearer {secrets.DOCS}"},
        "tool": tool,
        "arguments": arguments,
        "output": "found",
        "retry": FAST,
        **extra,
    }


def definition(*steps: dict[str, Any], workflow_id: str = "mcp-step") -> dict[str, Any]:
    return {
        "id": workflow_id,
        "inputs": {"type": "object", "properties": {"q": {"type": "string"}}},
        "steps": list(steps),
    }


async def test_an_mcp_step_calls_a_tool_with_its_secret_and_a_rerun_reuses_it(
    http: httpx.AsyncClient, settings: Settings, mcp_server: FakeMCPServer, client: Client
) -> None:
    save_definition(
        settings,
        definition(
            mcp_step(mcp_server.url, "search", {"query": "{q}", "limit": 2}),
            mcp_step(mcp_server.url, "stats", {"city": "{q}"}, id="numbers", output="numbers"),
            {"id": "stop", "type": "fail", "message": "stop here"},
        ),
    )
    state = await run(http, "mcp-step", q="Paris")
    assert state["status"] == "failed" and state["error"]["type"] == "WorkflowFailed"
    steps = {s["step_id"]: s for s in state["steps"]}
    assert steps["ask"]["status"] == "success"
    text = await history_text(client, state["execution_id"])
    assert "2 hits for Paris" in text  # the result, as the step bound it
    assert DOCS_SECRET not in text  # the secret never reaches history
    assert mcp_server.calls == {"search": 1, "stats": 1}
    # Every request carried the filled-in bearer header.
    assert set(mcp_server.authorization) == {f"Bearer {DOCS_SECRET}"}

    # Fix the last step; a rerun from it reuses both paid calls.
    save_definition(
        settings,
        definition(
            mcp_step(mcp_server.url, "search", {"query": "{q}", "limit": 2}),
            mcp_step(mcp_server.url, "stats", {"city": "{q}"}, id="numbers", output="numbers"),
            {"id": "stop", "type": "set", "values": {"done": True}},
        ),
    )
    answer = await http.post(
        f"/api/executions/{state['execution_id']}/rerun", json={"version": "latest"}
    )
    assert answer.status_code == 202, answer.text
    rerun = await finished(http, answer.json()["execution_id"])
    assert rerun["status"] == "completed", rerun["error"]
    outputs = rerun["outputs"]
    assert outputs["found"] == {
        "content": [{"type": "text", "text": "2 hits for Paris"}],
        "structured": {"result": "2 hits for Paris"},
        "is_error": False,
        "text": "2 hits for Paris",
    }
    assert outputs["numbers"]["structured"] == {"city": "Paris", "population": 1000}
    assert mcp_server.calls == {"search": 1, "stats": 1}  # nothing called again


async def test_a_tool_error_is_routable_and_bad_input_fails_clearly(
    http: httpx.AsyncClient, settings: Settings, mcp_server: FakeMCPServer, sink: HttpSink
) -> None:
    routed = mcp_step(
        mcp_server.url,
        "broken",
        {"reason": "{q}"},
        on_error=[{"errors": ["MCPToolError"], "then": "handled"}],
    )
    handled = {"id": "handled", "type": "set", "values": {"why": "{last_error.message}"}}
    save_definition(settings, definition(routed, handled, workflow_id="routed"))
    state = await run(http, "routed", q="flaky")
    assert state["status"] == "completed", state["error"]
    assert "broken on purpose: flaky" in state["outputs"]["why"]
    assert mcp_server.calls["broken"] == 1  # an answer, not retried

    cases = {
        "unreachable": (mcp_step("http://127.0.0.1:9/mcp", "search", {}), "HTTPTransportError"),
        "private": (mcp_step("http://10.1.2.3/mcp", "search", {}), "SSRFBlocked"),
        "unknown": (mcp_step(mcp_server.url, "nope", {}), "MCPError"),
        "huge": (mcp_step(mcp_server.url, "huge", {"size": 1_200_000}), "ValueTooLarge"),
        "tool-error": (mcp_step(mcp_server.url, "broken", {}), "MCPToolError"),
        # A redirect off the endpoint's origin is not followed (nor sent its secret header).
        "redirect": (mcp_step(f"{sink.url}/mcp", "search", {}), "HTTPStatusError"),
        "slow": (
            mcp_step(mcp_server.url, "slow", {"seconds": 5}, timeout_seconds=1),
            "StepTimeout",
        ),
    }
    sink.script("/mcp", Reply(307, headers={"Location": "http://10.1.2.3/mcp"}))
    for name, (step, failure_type) in cases.items():
        save_definition(settings, definition(step, workflow_id=f"bad-{name}"))
        state = await run(http, f"bad-{name}", q="x")
        assert state["status"] == "failed", (name, state)
        assert state["error"]["type"] == failure_type, (name, state["error"])
    unknown = await run(http, "bad-unknown", q="x")
    assert "has no tool nope" in unknown["error"]["message"]
    assert "search" in unknown["error"]["message"]  # what it has


async def test_cancelling_a_run_stops_a_hung_mcp_call(
    http: httpx.AsyncClient, settings: Settings, mcp_server: FakeMCPServer
) -> None:
    hung = mcp_step(mcp_server.url, "slow", {"seconds": 60}, timeout_seconds=120)
    save_definition(settings, definition(hung, workflow_id="hung"))
    started = await http.post("/api/workflows/run", json={"workflow_id": "hung"})
    execution_id = started.json()["execution_id"]
    await eventually(lambda: mcp_server.calls["slow"] == 1)
    cancelled = await http.post(f"/api/executions/{execution_id}/cancel", json={})
    assert cancelled.status_code == 202, cancelled.text
    state = await finished(http, execution_id)
    assert state["status"] == "cancelled"
    assert state["steps"][0]["status"] == "cancelled"


async def test_an_answer_over_the_response_cap_stops_the_session(
    mcp_server: FakeMCPServer,
) -> None:
    """The activity itself (outside a worker) against the SDK server: an answer larger than
    HTTP_MAX_RESPONSE_BYTES stops the session with a clear failure, nothing hangs."""
    policy = AddressPolicy.from_setting("127.0.0.1")
    request = MCPCallRequest(
        execution_id="e", step_id="s", url=mcp_server.url, tool="huge", arguments={"size": 200_000}
    )
    async with GuardedTransport(policy) as transport:
        capped = MCPActivities(transport, SecretStore({}), 64 * 1024, 1024 * 1024)
        with pytest.raises(ApplicationError) as failed:
            await ActivityEnvironment().run(capped.call_mcp_tool, request)
    assert failed.value.type == "HTTPStatusError"
    assert "HTTP_MAX_RESPONSE_BYTES" in failed.value.message
