"""`agent`: a model that calls tools, durably (SPEC §11).

Every model turn is a `call_llm` activity and every tool call an activity (`http` tools, through
the SSRF guard) or a child workflow (`workflow_id` tools), each with its own summary in the
Temporal UI. The activity checks a call's arguments against the tool's ``parameters``; a call
that fails them (or a tool that fails) goes back to the model as the tool's answer, never as a
step failure. Budgets apply before and after every turn; a rerun reuses the turns and calls its
source already paid for (same path, same rendered request). The result: ``{text, json?, turns,
tool_calls: [{name, arguments, result | error}], usage, cost}``.

What the model and the tools say is data: the conversation is rendered once, at the start, and
nothing a model or a tool returns is ever substituted again.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import Field, model_validator
from temporalio import workflow
from temporalio.exceptions import ActivityError, ChildWorkflowError, is_cancelled_exception

from workflows.errors import FailureType, Problem, StepFailure, TemplateError
from workflows.kinds.ai import ChatMessage, ResponseFormat, ask, model_fields
from workflows.kinds.base import StepKind, StepOutcome, StepRun, register
from workflows.kinds.common import ActivityMixin, FlowMixin, Model, StepBase, WorkflowId, repeated
from workflows.kinds.http import HttpMethod, build_request, header_problem
from workflows.kinds.sub_workflow import run_child
from workflows.messages import SEND_HTTP_REQUEST, HTTPResult, request_key
from workflows.templating import VariableSubstitutor, references_in
from workflows.usage import Usage

MAX_TOOL_ANSWER = 20_000  # characters of a tool's answer the model sees


class ToolHTTP(Model):
    """An http tool's request: the `http` step's fields, templated with `{args.NAME}`."""

    method: HttpMethod = "GET"
    url: str = Field(min_length=1, max_length=8192)
    headers: dict[str, str] = Field(default_factory=dict)
    query: dict[str, Any] = Field(default_factory=dict)
    json_body: Any = Field(None, alias="json")
    body: str | None = None
    expect_status: int | list[int] | None = None


class AgentTool(Model):
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str = Field(min_length=1, max_length=2000)
    parameters: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object", "properties": {}},
        description="JSON Schema of the arguments; calls that fail it go back to the model.",
    )
    http: ToolHTTP | None = None
    workflow_id: WorkflowId | None = Field(None, description="Run this workflow as a child.")

    @model_validator(mode="after")
    def _one_action(self) -> AgentTool:
        if (self.http is None) == (self.workflow_id is None):
            raise ValueError(f"tool {self.name!r}: give exactly one of 'http' or 'workflow_id'")
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

    type: Literal["agent"]
    model: str = Field(min_length=1, max_length=200)
    models: list[str] = Field(default_factory=list, max_length=5)
    messages: list[ChatMessage] | None = Field(None, min_length=1)
    prompt: str | None = Field(None, max_length=1_000_000)
    tools: list[AgentTool] = Field(min_length=1, max_length=20)
    max_turns: int = Field(8, ge=1, le=50)
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1, le=1_000_000)
    response_format: ResponseFormat | None = None
    repair_attempts: int = Field(1, ge=0, le=5)

    @model_validator(mode="after")
    def _shape(self) -> AgentStep:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("give exactly one of 'messages' or 'prompt'")
        names = [tool.name for tool in self.tools]
        twice = repeated(names)
        if twice:
            raise ValueError(f"tool names must be unique; repeated: {', '.join(twice)}")
        return self


@register
class AgentKind(StepKind[AgentStep]):
    type = "agent"
    model = AgentStep
    waits = True
    secrets = True
    spends = True

    def templated(self, step: AgentStep) -> dict[str, Any]:
        return model_fields(step)

    def problems(self, step: AgentStep, where: str) -> list[Problem]:
        from workflows.input_schema import schema_problems

        problems: list[Problem] = []
        for i, tool in enumerate(step.tools):
            at = f"{where}.tools[{i}]"
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
        initial = (
            [m.model_dump() for m in step.messages]
            if step.messages is not None
            else [{"role": "user", "content": step.prompt}]
        )
        rendered, slots = VariableSubstitutor(
            run.variables, strict_indexes=run.strict_indexes
        ).render_deferred({"messages": initial})
        conversation: list[dict[str, Any]] = list(rendered["messages"])
        specs = [tool.spec() for tool in step.tools]
        tools = {tool.name: tool for tool in step.tools}
        spent = Usage()
        transcript: list[dict[str, Any]] = []
        for turn in range(step.max_turns):
            answer = await ask(
                run,
                step,
                conversation,
                tools=specs,
                path=f"{run.path}.turn[{turn}]",
                slots=slots,
                label=f"{step.label} · turn {turn + 1}",
            )
            spent.merge(answer.usage)
            result = answer.result
            calls = result.tool_calls or []
            if not calls:
                value = {
                    "text": result.text,
                    "turns": turn + 1,
                    "tool_calls": transcript,
                    "usage": spent.for_step(),
                    "cost": spent.cost_usd,
                }
                if result.json_ is not None:
                    value["json"] = result.json_
                outputs = {step.output: value} if step.output else {}
                usage = spent.for_step() if spent.ai_calls else None
                return StepOutcome(outputs, step.next, usage=usage)
            conversation.append(
                {
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
            )
            for index, call in enumerate(calls):
                entry: dict[str, Any] = {"name": call["name"], "arguments": call["arguments"]}
                if call.get("error"):
                    entry["error"] = call["error"]
                else:
                    where = f"{run.path}.turn[{turn}].{call['name']}[{index}]"
                    try:
                        entry["result"] = await _use(run, step, tools[call["name"]], call, where)
                    except _ToolFailed as failed:
                        entry["error"] = str(failed)
                transcript.append(entry)
                answer_text = json.dumps(
                    {"error": entry["error"]} if "error" in entry else entry["result"],
                    default=str,
                )[:MAX_TOOL_ANSWER]
                conversation.append(
                    {"role": "tool", "tool_call_id": call["id"], "content": answer_text}
                )
        raise StepFailure(
            f"the agent was still calling tools after {step.max_turns} turns (max_turns); "
            "raise max_turns or tell it to answer sooner",
            FailureType.AGENT_MAX_TURNS,
            usage=spent.for_step(),
        )


class _ToolFailed(Exception):
    """A tool call that failed: its message goes back to the model."""


async def _use(
    run: StepRun, step: AgentStep, tool: AgentTool, call: dict[str, Any], path: str
) -> Any:
    label = f"{step.label} · {tool.name}"
    if tool.workflow_id is not None:
        try:
            return await run_child(run, tool.workflow_id, None, call["arguments"], path, label)
        except StepFailure as failed:
            raise _ToolFailed(str(failed)) from None
    assert tool.http is not None
    return await _call_http(run, step, tool.http, call["arguments"], path, label)


async def _call_http(
    run: StepRun, step: AgentStep, http: ToolHTTP, arguments: Any, path: str, label: str
) -> Any:
    substitutor = VariableSubstitutor(
        {**run.variables, "args": arguments}, strict_indexes=run.strict_indexes
    )
    try:
        request = build_request(http, substitutor, run, step.id, path, path)
    except TemplateError as err:
        raise _ToolFailed(f"the tool's request cannot be built: {err}") from None
    reused = run.reused(request_key(SEND_HTTP_REQUEST, request))
    if reused is not None:
        return HTTPResult.model_validate(reused.result).as_output()
    options = run.activity_options(step)
    options["summary"] = label
    try:
        result: HTTPResult = await workflow.execute_activity(
            SEND_HTTP_REQUEST, request, result_type=HTTPResult, **options
        )
    except (ActivityError, ChildWorkflowError) as err:
        if is_cancelled_exception(err):
            raise
        cause = err.cause
        raise _ToolFailed(str(getattr(cause, "message", None) or cause or err)) from None
    return result.as_output()
