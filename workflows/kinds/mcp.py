"""`mcp`: call one tool of an MCP server (streamable HTTP), an activity.

The result is ``{content, structured, is_error, text}`` (docs/mcp.md). A tool that answers
with ``isError`` fails the step with type ``MCPToolError``: an answer, not a transport
failure, so Temporal does not retry it, and ``on_error`` may route it. The server's URL and
headers and the arguments are templated like an `http` step's fields (``{secrets.X}`` is a
slot the activity fills, never in history). A rerun reuses a call its source made
with the same rendered request.

The helpers below build the activity requests for this step and for an agent's MCP tools
(workflows/kinds/agent.py), so both send the same thing.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import ConfigDict, Field

from workflows.errors import FailureType, Problem, StepFailed
from workflows.kinds.base import StepKind, StepOutcome, StepRun, register
from workflows.kinds.common import ActivityMixin, FlowMixin, Model, StepBase
from workflows.kinds.http import header_problem
from workflows.kinds.slots import slot_models
from workflows.messages import (
    CALL_MCP_TOOL,
    MCPCallRequest,
    MCPCallResult,
    MCPListRequest,
)
from workflows.templating import VariableSubstitutor, to_text
from workflows.value_types import BOOL_T, DYN, STRING_T, Type, Typer, list_of, object_of

RESULT_TYPE = object_of(
    {"content": list_of(DYN), "structured": DYN, "is_error": BOOL_T, "text": STRING_T}
)
# An MCP tool name as a model may call it (OpenAI function names): other characters become _.
_NOT_IN_NAME = re.compile(r"[^A-Za-z0-9_-]")
MAX_TOOL_ERROR_TEXT = 2000


class MCPServer(Model):
    """An MCP server: its streamable HTTP endpoint and the headers of every request."""

    url: str = Field(min_length=1, max_length=8192)
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Sent with every request; {secrets.X} is filled inside the activity.",
    )


class MCPStep(StepBase, FlowMixin, ActivityMixin):
    """Call one tool of an MCP server; a tool error fails the step (MCPToolError)."""

    # How the console's graph words the step (docs/console.md).
    model_config = ConfigDict(json_schema_extra={"x-label": "MCP {tool}"})

    type: Literal["mcp"]
    url: str = Field(min_length=1, max_length=8192, description="The server's MCP endpoint.")
    headers: dict[str, str] = Field(default_factory=dict)
    tool: str = Field(min_length=1, max_length=256)
    arguments: dict[str, Any] = Field(
        default_factory=dict, description="The tool's arguments (templated)."
    )


def header_problems(headers: dict[str, str], where: str, step_id: str) -> list[Problem]:
    """The headers an MCP request may not carry (as for `http` steps)."""
    found = []
    for name, value in headers.items():
        problem = header_problem(name, value)
        if problem is not None:
            found.append(
                Problem(f"{where}.{name}", f"step '{step_id}': {problem}", code="invalid_header")
            )
    return found


def render_server(
    server: Any,
    substitutor: VariableSubstitutor,
    run: StepRun,
    step_id: str,
    path: str,
    arguments: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The request fields naming an MCP server (``url``, ``headers``, the secret slots), and
    the step's ``arguments`` when given (templates; an agent's come from the model: data)."""
    fields: dict[str, Any] = {"url": server.url, "headers": server.headers}
    if arguments is not None:
        fields["arguments"] = arguments
    rendered, slots = substitutor.render_deferred(fields)
    extra = {"arguments": rendered["arguments"]} if arguments is not None else {}
    return {
        **extra,
        "execution_id": run.execution_id,
        "step_id": step_id,
        "workflow_id": run.input.definition.key,
        "url": to_text(rendered["url"]),
        "headers": {str(k): to_text(v) for k, v in rendered["headers"].items()},
        "deferred": slot_models(slots),
        "path": path,
        "seq": run.seq,
    }


def list_request(
    server: Any, tools: list[str] | None, run: StepRun, step_id: str, path: str
) -> MCPListRequest:
    substitutor = VariableSubstitutor(run.variables, strict_indexes=run.strict_indexes)
    return MCPListRequest(**render_server(server, substitutor, run, step_id, path), tools=tools)


def offered_name(server: str, tool: str) -> str:
    """``docs__search``: the name a model calls an MCP server's tool by (at most 64 chars)."""
    return _NOT_IN_NAME.sub("_", f"{server}__{tool}")[:64]


def tool_error(result: MCPCallResult) -> str:
    return (result.text or "the tool reported an error")[:MAX_TOOL_ERROR_TEXT]


@register
class MCPKind(StepKind[MCPStep]):
    type = "mcp"
    model = MCPStep
    waits = True
    carries_log = True
    secrets = True

    def templated(self, step: MCPStep) -> dict[str, Any]:
        return {"url": step.url, "headers": step.headers, "arguments": step.arguments}

    def result_types(self, step: MCPStep, typer: Typer) -> dict[str, Type]:
        return {step.output: RESULT_TYPE} if step.output else {}

    def problems(self, step: MCPStep, where: str) -> list[Problem]:
        return header_problems(step.headers, f"{where}.headers", step.id)

    async def execute(self, step: MCPStep, run: StepRun) -> StepOutcome:
        substitutor = VariableSubstitutor(run.variables, strict_indexes=run.strict_indexes)
        fields = render_server(step, substitutor, run, step.id, run.path, step.arguments)
        request = MCPCallRequest(**fields, tool=step.tool)
        reused = run.reused(CALL_MCP_TOOL, request)
        if reused is not None:  # a rerun: the source made this very call already
            answer = MCPCallResult.model_validate(reused.result)
            outputs = {step.output: answer.as_output()} if step.output else {}
            return StepOutcome(outputs, step.next, reused_from=reused.source, reuse_key=reused.key)
        result = await run.call_activity(
            CALL_MCP_TOOL, request, MCPCallResult, run.activity_options(step)
        )
        if result.is_error:
            raise StepFailed(
                f"step '{step.id}': the MCP tool '{step.tool}' answered an error: "
                f"{tool_error(result)}",
                FailureType.MCP_TOOL_ERROR,
            )
        outputs = {step.output: result.as_output()} if step.output else {}
        return StepOutcome(output_vars=outputs, next_target=step.next)
