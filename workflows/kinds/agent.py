"""`agent`: a model that calls tools, durably.

Every model turn is a `call_llm` activity and every tool call an activity (`http` tools, through
the SSRF guard) or a child workflow (`workflow_id` tools), each with its own summary in the
Temporal UI. The activity checks a call's arguments against the tool's ``parameters`` and the
engine's value limits; a call that fails them (or a tool that fails) goes back to the model as
the tool's answer, never as a step failure. So do the calls past ``max_tool_calls_per_turn`` of
one answer, and every call past the step's ``max_tool_calls``: they never run, so one answer
cannot fill the run's history. The model's arguments are percent-encoded where they stand in a
tool's URL (workflows/kinds/tool_url.py). Budgets apply before and after every turn; a rerun
reuses the turns and calls its source already paid for (same path, same rendered request). The
result: ``{text, json?, turns, tool_calls: [{name, arguments, result | error}], usage, cost}``.

What the model and the tools say is data: the conversation is rendered once, at the start, and
nothing a model or a tool returns is ever substituted again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator
from temporalio.exceptions import ActivityError, ChildWorkflowError, is_cancelled_exception

from workflows import versions
from workflows.errors import EngineError, FailureType, Problem, StepFailed, TemplateError
from workflows.kinds.ai import (
    ChatMessage,
    ResponseFormat,
    answer_json_type,
    ask,
    first_messages,
    model_fields,
)
from workflows.kinds.base import StepKind, StepOutcome, StepRun, register
from workflows.kinds.common import (
    ActivityMixin,
    FlowMixin,
    Model,
    StepBase,
    WorkflowId,
    require_unique,
)
from workflows.kinds.http import HttpMethod, build_request, header_problem
from workflows.kinds.mcp import MCPServer, header_problems, tool_error
from workflows.kinds.mcp_tools import MCPOffer, call_mcp, list_mcp, offers_by_name
from workflows.kinds.sub_workflow import run_child
from workflows.kinds.tool_url import ARGS, dot_segment, encode_arguments
from workflows.messages import SEND_HTTP_REQUEST, AIResult, HTTPResult
from workflows.templating import DeferredSlot, VariableSubstitutor, references_in
from workflows.usage import TOKEN_FIELDS, Usage
from workflows.value_types import (
    DYN,
    INT_T,
    NUMBER,
    STRING_T,
    Type,
    Typer,
    list_of,
    object_of,
)

MAX_TOOL_ANSWER = 20_000  # characters of a tool's answer the model sees
# One answer may ask for any number of calls, each an activity (~6 history events): the caps
# keep a step's history far from Temporal's limit (docs/ai.md). Engine maxima: the bounds.
DEFAULT_TOOL_CALLS_PER_TURN = 16
MAX_TOOL_CALLS_PER_TURN = 64
DEFAULT_TOOL_CALLS = 100
MAX_TOOL_CALLS = 1000
PATCH_TOOL_LIMITS = "agent-tool-limits"  # older runs ran every call, URLs unencoded


class ToolHTTP(Model):
    """An http tool's request: the `http` step's fields, templated with `{args.NAME}`."""

    method: HttpMethod = "GET"
    url: str = Field(min_length=1, max_length=8192)
    headers: dict[str, str] = Field(default_factory=dict)
    query: dict[str, Any] = Field(default_factory=dict)
    json_body: Any = Field(None, alias="json")
    body: str | None = None
    expect_status: int | list[int] | None = None


class ToolMCP(MCPServer):
    """An MCP server whose tools the model may call (as ``<name>__<tool>``)."""

    tools: list[str] | None = Field(
        None, min_length=1, max_length=100, description="Only these of its tools (an allow-list)."
    )


class AgentTool(Model):
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str | None = Field(
        None, min_length=1, max_length=2000, description="Required, but for an MCP server."
    )
    parameters: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object", "properties": {}},
        description="JSON Schema of the arguments; calls that fail it go back to the model.",
    )
    http: ToolHTTP | None = None
    workflow_id: WorkflowId | None = Field(None, description="Run this workflow as a child.")
    mcp: ToolMCP | None = Field(
        None, description="An MCP server: its tools are offered with their own schemas."
    )

    @model_validator(mode="after")
    def _one_action(self) -> AgentTool:
        actions = [self.http, self.workflow_id, self.mcp]
        if sum(action is not None for action in actions) != 1:
            raise ValueError(
                f"tool {self.name!r}: give exactly one of 'http', 'workflow_id' or 'mcp'"
            )
        if self.mcp is None and self.description is None:
            raise ValueError(f"tool {self.name!r}: give a 'description'")
        return self

    def spec(self) -> dict[str, Any]:
        """The tool as the model sees it (OpenAI function calling)."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


class AgentStep(StepBase, FlowMixin, ActivityMixin):
    """A model that calls tools until it answers (or ``max_turns``)."""

    # How the console's graph words the step (docs/console.md).
    model_config = ConfigDict(
        json_schema_extra={"x-label": ["{model}", "then {models}", "tools: {tools}"]}
    )

    type: Literal["agent"]
    model: str = Field(min_length=1, max_length=200)
    models: list[str] = Field(default_factory=list, max_length=5)
    messages: list[ChatMessage] | None = Field(None, min_length=1)
    prompt: str | None = Field(None, max_length=1_000_000)
    tools: list[AgentTool] = Field(min_length=1, max_length=20)
    max_turns: int = Field(8, ge=1, le=50)
    max_tool_calls_per_turn: int = Field(
        DEFAULT_TOOL_CALLS_PER_TURN,
        ge=1,
        le=MAX_TOOL_CALLS_PER_TURN,
        description="Tool calls of one answer that run; the rest go back to the model as errors.",
    )
    max_tool_calls: int = Field(
        DEFAULT_TOOL_CALLS,
        ge=1,
        le=MAX_TOOL_CALLS,
        description="Tool calls the step runs in all; later calls go back to the model as errors.",
    )
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1, le=1_000_000)
    response_format: ResponseFormat | None = None
    repair_attempts: int = Field(1, ge=0, le=5)

    @model_validator(mode="after")
    def _shape(self) -> AgentStep:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("give exactly one of 'messages' or 'prompt'")
        require_unique([tool.name for tool in self.tools], "tool names")
        return self


@register
class AgentKind(StepKind[AgentStep]):
    type = "agent"
    model = AgentStep
    waits = True
    secrets = True
    spends = True

    def starts_executions(self, step: AgentStep) -> bool:
        return any(tool.workflow_id is not None for tool in step.tools)

    def calls(self, step: AgentStep) -> list[tuple[str, int | None]]:
        return [(str(t.workflow_id), None) for t in step.tools if t.workflow_id is not None]

    def templated(self, step: AgentStep) -> dict[str, Any]:
        return model_fields(step)

    def result_types(self, step: AgentStep, typer: Typer) -> dict[str, Type]:
        """What ``_Agent.finish`` binds: ``json`` only when the answer had some."""
        if not step.output:
            return {}
        usage = object_of({name: INT_T for name in TOKEN_FIELDS} | {"cost_usd": NUMBER})
        call = object_of({"name": STRING_T, "arguments": DYN, "result": DYN, "error": DYN})
        value = {
            "text": STRING_T,
            "json": answer_json_type(step.response_format),
            "turns": INT_T,
            "tool_calls": list_of(call),
            "usage": usage,
            "cost": NUMBER,
        }
        return {step.output: object_of(value)}

    def problems(self, step: AgentStep, where: str) -> list[Problem]:
        from workflows.input_schema import schema_problems

        problems: list[Problem] = []
        for i, tool in enumerate(step.tools):
            at = f"{where}.tools[{i}]"
            if tool.mcp is not None:
                problems += header_problems(tool.mcp.headers, f"{at}.mcp.headers", step.id)
                try:  # as for http tools: templates must parse
                    list(references_in(tool.mcp.model_dump(), f"{at}.mcp"))
                except TemplateError as err:
                    problems.append(Problem(f"{at}.mcp", f"step '{step.id}': {err}"))
                continue
            problems += schema_problems(tool.parameters, f"{at}.parameters")
            if tool.http is None:
                continue
            for name, value in tool.http.headers.items():
                problem = header_problem(name, value)
                if problem:
                    problems.append(
                        Problem(f"{at}.http.headers.{name}", f"step '{step.id}': {problem}")
                    )
            try:  # templates must parse; what they name is checked when the tool runs
                list(references_in(tool.http.model_dump(by_alias=True), f"{at}.http"))
            except TemplateError as err:
                problems.append(Problem(f"{at}.http", f"step '{step.id}': {err}"))
        return problems

    async def execute(self, step: AgentStep, run: StepRun) -> StepOutcome:
        agent = _Agent.start(step, run)
        await agent.discover()
        for turn in range(step.max_turns):
            answer = await ask(
                run,
                step,
                agent.conversation,
                tools=agent.specs,
                path=f"{run.path}.turn[{turn}]",
                slots=agent.slots,
                label=f"{step.label} · turn {turn + 1}",
            )
            agent.spent.merge(answer.usage)
            calls = answer.result.tool_calls or []
            if not calls:
                return agent.finish(answer.result, turns=turn + 1)
            agent.conversation.append(_assistant_turn(answer.result, calls))
            await agent.use_tools(turn, calls)
        raise StepFailed(
            f"the agent was still calling tools after {step.max_turns} turns (max_turns); "
            "raise max_turns or tell it to answer sooner",
            FailureType.AGENT_MAX_TURNS,
            usage=agent.spent.for_step(),
        )


@dataclass
class _Agent:
    """One agent step in progress: the conversation, what it cost, the tool calls made."""

    step: AgentStep
    run: StepRun
    conversation: list[dict[str, Any]]
    slots: list[DeferredSlot]
    # The tool-call caps and the encoding of arguments in tool URLs; runs recorded before
    # them ran every call an answer made, so they replay as they ran (PATCH_TOOL_LIMITS).
    limited: bool
    spent: Usage = field(default_factory=Usage)
    transcript: list[dict[str, Any]] = field(default_factory=list)
    ran: int = 0  # tool calls run (activities or child workflows), for max_tool_calls
    offers: dict[str, MCPOffer] = field(default_factory=dict)  # MCP servers' tools, by name

    @classmethod
    def start(cls, step: AgentStep, run: StepRun) -> _Agent:
        limited = versions.patched(PATCH_TOOL_LIMITS)
        # The conversation is rendered once: what models and tools say later is data.
        rendered, slots = VariableSubstitutor(
            run.variables, strict_indexes=run.strict_indexes
        ).render_deferred({"messages": first_messages(step)})
        return cls(step, run, list(rendered["messages"]), slots, limited)

    async def discover(self) -> None:
        """List the tools of the step's MCP servers (no MCP server: no activity, as before)."""
        found: list[MCPOffer] = []
        for tool in self.step.tools:
            if tool.mcp is not None:
                found += await list_mcp(self.run, self.step, tool.name, tool.mcp)
        self.offers = offers_by_name(found, {tool.name for tool in self.step.tools})

    @property
    def specs(self) -> list[dict[str, Any]]:
        own = [tool.spec() for tool in self.step.tools if tool.mcp is None]
        return own + [offer.spec for offer in self.offers.values()]

    def finish(self, result: AIResult, turns: int) -> StepOutcome:
        value: dict[str, Any] = {
            "text": result.text,
            "turns": turns,
            "tool_calls": self.transcript,
            "usage": self.spent.for_step(),
            "cost": self.spent.cost_usd,
        }
        if result.json_ is not None:
            value["json"] = result.json_
        outputs = {self.step.output: value} if self.step.output else {}
        usage = self.spent.for_step() if self.spent.ai_calls else None
        return StepOutcome(outputs, self.step.next, usage=usage)

    async def use_tools(self, turn: int, calls: list[dict[str, Any]]) -> None:
        """Run the calls of one answer (up to the caps); every call gets a tool answer."""
        tools = {tool.name: tool for tool in self.step.tools}
        for index, call in enumerate(calls):
            entry: dict[str, Any] = {"name": call["name"], "arguments": call["arguments"]}
            refusal = self._over_cap(index) or call.get("error")
            if refusal:
                entry["error"] = refusal
            else:
                self.ran += 1
                where = f"{self.run.path}.turn[{turn}].{call['name']}[{index}]"
                offer = self.offers.get(call["name"])
                try:
                    if offer is not None:
                        entry["result"] = await _use_mcp(self.run, self.step, offer, call, where)
                    else:
                        entry["result"] = await _use(
                            self.run, self.step, tools[call["name"]], call, where, self.limited
                        )
                except _ToolFailed as failed:
                    entry["error"] = str(failed)
            self.transcript.append(entry)
            answer = {"error": entry["error"]} if "error" in entry else entry["result"]
            self.conversation.append(
                {
                    "role": "tool",
                    "tool_call_id": call["id"],
                    "content": json.dumps(answer, default=str)[:MAX_TOOL_ANSWER],
                }
            )

    def _over_cap(self, index: int) -> str | None:
        """Why a call may not run: the answer or the step has made all the calls it may."""
        if not self.limited:
            return None
        per_turn, total = self.step.max_tool_calls_per_turn, self.step.max_tool_calls
        if index >= per_turn:
            return (
                f"not run: one answer may call at most {per_turn} tools "
                f"(max_tool_calls_per_turn), this was call {index + 1}; call fewer tools at "
                "once and make the other calls in your next answer"
            )
        if self.ran >= total:
            return (
                f"not run: this step has made all {total} tool calls it may make "
                "(max_tool_calls); answer with what you have"
            )
        return None


def _assistant_turn(result: AIResult, calls: list[dict[str, Any]]) -> dict[str, Any]:
    """The model's answer as the conversation's assistant message, every call in it."""
    return {
        "role": "assistant",
        "content": result.text or "",
        "tool_calls": [
            {
                "id": call["id"],
                "type": "function",
                "function": {"name": call["name"], "arguments": call["raw"]},
            }
            for call in calls
        ],
    }


class _ToolFailed(EngineError):
    """A tool call that failed: its message goes back to the model."""


async def _use(
    run: StepRun, step: AgentStep, tool: AgentTool, call: dict[str, Any], path: str, limited: bool
) -> Any:
    label = f"{step.label} · {tool.name}"
    if tool.workflow_id is not None:
        try:
            child = await run_child(run, tool.workflow_id, None, call["arguments"], path, label)
            return child.outputs
        except StepFailed as failed:
            raise _ToolFailed(str(failed)) from None
    assert tool.http is not None
    return await _call_http(run, step, tool.http, call["arguments"], path, label, limited)


async def _use_mcp(
    run: StepRun, step: AgentStep, offer: MCPOffer, call: dict[str, Any], path: str
) -> Any:
    try:
        result = await call_mcp(run, step, offer, call["arguments"], path)
    except ActivityError as err:
        if is_cancelled_exception(err):
            raise
        cause = err.cause
        raise _ToolFailed(str(getattr(cause, "message", None) or cause or err)) from None
    if result.is_error:
        raise _ToolFailed(tool_error(result))
    return {"text": result.text, "structured": result.structured, "content": result.content}


async def _call_http(
    run: StepRun,
    step: AgentStep,
    http: ToolHTTP,
    arguments: Any,
    path: str,
    label: str,
    limited: bool,
) -> Any:
    escape = encode_arguments if limited else None
    substitutor = VariableSubstitutor(
        {**run.variables, ARGS: arguments}, strict_indexes=run.strict_indexes, escape=escape
    )
    try:
        request = build_request(http, substitutor, run, step.id, path, path)
    except TemplateError as err:
        raise _ToolFailed(f"the tool's request cannot be built: {err}") from None
    segment = dot_segment(request.url) if limited else None
    if segment is not None:
        raise _ToolFailed(
            f"the tool's URL path would hold a {segment!r} segment, which servers read as a "
            "directory step; send another value"
        )
    reused = run.reused(SEND_HTTP_REQUEST, request)
    if reused is not None:
        return HTTPResult.model_validate(reused.result).as_output()
    options = run.activity_options(step)
    options["summary"] = label
    try:
        result = await run.call_activity(SEND_HTTP_REQUEST, request, HTTPResult, options)
    except (ActivityError, ChildWorkflowError) as err:
        if is_cancelled_exception(err):
            raise
        cause = err.cause
        raise _ToolFailed(str(getattr(cause, "message", None) or cause or err)) from None
    return result.as_output()
