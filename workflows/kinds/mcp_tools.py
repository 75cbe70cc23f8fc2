"""An agent's MCP servers: their tools, listed once per step, and calls to them.

An agent tool ``{"name": "docs", "mcp": {"url", "headers", "tools"?}}`` stands for the tools
that server lists when the step starts: the `list_mcp_tools` activity asks it (its answer is
recorded in history, so a replay never calls out) and checks each input schema. The model sees
them as ``docs__<tool>`` with their own descriptions and input schemas, and `call_llm` checks a
call's arguments against that schema before anything runs (an invalid call goes back to the
model). Every call is a `call_mcp_tool` activity of its own, summarised in the Temporal UI as
``<step> · docs: <tool>``; a rerun reuses a call its source made with the same request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workflows.errors import FailureType, StepFailed
from workflows.kinds.base import StepRun
from workflows.kinds.mcp import list_request, offered_name, render_server
from workflows.messages import (
    CALL_MCP_TOOL,
    LIST_MCP_TOOLS,
    MCPCallRequest,
    MCPCallResult,
    MCPToolList,
)
from workflows.templating import VariableSubstitutor


@dataclass(frozen=True)
class MCPOffer:
    """One tool of an agent's MCP server, as offered to the model."""

    server: str  # the agent tool's name ("docs")
    tool: str  # the server's name for the tool ("search")
    endpoint: Any  # the agent tool's `mcp` (url, headers)
    spec: dict[str, Any]  # as the model sees it (OpenAI function calling)

    @property
    def label(self) -> str:
        return f"{self.server}: {self.tool}"


async def list_mcp(run: StepRun, step: Any, server: str, endpoint: Any) -> list[MCPOffer]:
    """The tools of one MCP server, as offers (an activity: recorded, never called on replay)."""
    request = list_request(endpoint, endpoint.tools, run, step.id, f"{run.path}.{server}")
    options = run.activity_options(step)
    options["summary"] = f"{step.label} · {server}: list tools"
    listed = await run.call_activity(LIST_MCP_TOOLS, request, MCPToolList, options)
    offers = []
    for tool in listed.tools:
        name = offered_name(server, tool.name)
        spec = {
            "type": "function",
            "function": {
                "name": name,
                "description": tool.description or f"The {tool.name} tool of {server}",
                "parameters": tool.input_schema or {"type": "object", "properties": {}},
            },
        }
        offers.append(MCPOffer(server, tool.name, endpoint, spec))
    return offers


def offers_by_name(offers: list[MCPOffer], taken: set[str]) -> dict[str, MCPOffer]:
    """The offers by the name the model calls them; a name given twice fails the step."""
    named: dict[str, MCPOffer] = {}
    for offer in offers:
        name = offer.spec["function"]["name"]
        if name in named or name in taken:
            raise StepFailed(
                f"two tools would be offered to the model as {name!r}; rename the agent "
                f"tool {offer.server!r} or list fewer of its tools",
                FailureType.MCP_ERROR,
            )
        named[name] = offer
    return named


async def call_mcp(
    run: StepRun, step: Any, offer: MCPOffer, arguments: dict[str, Any], path: str
) -> MCPCallResult:
    """One call of an offered tool (or its source's result, in a rerun)."""
    substitutor = VariableSubstitutor(run.variables, strict_indexes=run.strict_indexes)
    server = render_server(offer.endpoint, substitutor, run, step.id, path)
    request = MCPCallRequest(**server, tool=offer.tool, arguments=arguments)
    reused = run.reused(CALL_MCP_TOOL, request)
    if reused is not None:
        return MCPCallResult.model_validate(reused.result)
    options = run.activity_options(step)
    options["summary"] = f"{step.label} · {offer.label}"
    return await run.call_activity(CALL_MCP_TOOL, request, MCPCallResult, options)
