"""Test files: cases that run a workflow with mocked steps and scripted signals (docs/testing.md).

A test file names a workflow and holds cases. Each case gives the run's inputs, a mock for
every step that would call out (by step id, or by the path of one place it runs), the signals
sent to it at virtual times, and what to expect: the status, a subset of the outputs, the
error's type, and the steps in the order visited.

:func:`file_problems` checks a file against the definition it tests: every mock names a step
the definition has, and a mock's result has the shape that step's kind binds. The models
here cross into the workflow (:class:`CaseRun`), so they stay free of I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from workflows.errors import Problem
from workflows.input_schema import schema_problems, value_problems
from workflows.kinds import kind_of
from workflows.kinds.common import StepBase
from workflows.kinds.mcp import offered_name
from workflows.kinds.wait_for_signal import WaitForSignalStep
from workflows.messages import AIResult, HTTPResult, MCPCallResult, MCPTool, MCPToolList

CASE_FILE_SCHEMA_ID = "https://workflow-engine.local/schemas/workflow-test.schema.json"
# Failure types only a test run records (the case fails whatever `on_error` made of them).
UNMOCKED_CALL = "UnmockedCall"
MOCK_EXHAUSTED = "MockExhausted"
MOCK_SHAPE = "MockShape"
NEVER_SIGNALLED = "NeverSignalled"
TEST_FAILURES = frozenset({UNMOCKED_CALL, MOCK_EXHAUSTED, MOCK_SHAPE, NEVER_SIGNALLED})
# The kinds a mock may stand in for: what each binds, as a mock gives it.
MOCKABLE = {"http": "http", "ai": "ai", "agent": "ai", "sub_workflow": "outputs", "mcp": "mcp"}
# The shape of an agent's MCP server entry (`agent.docs`): the tools it lists.
MCP_TOOLS = "mcp_tools"
SHAPE_NAMES = {
    "http": "an http answer",
    "ai": "a model's answer",
    "mcp": "an MCP tool's answer",
    MCP_TOOLS: "an MCP server's tool list",
    "outputs": "a child's outputs",
}
MockKey = str
KEY_PATTERN = re.compile(r"^[A-Za-z0-9_.\[\]-]{1,300}$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MockError(_Model):
    """The step fails as its activity would have: ``type`` is what `on_error` routes on."""

    type: str = Field(min_length=1, max_length=200, examples=["HTTPStatusError"])
    message: str = Field("mocked failure", max_length=2000)


class Mock(_Model):
    """What a step gets instead of calling out: one result, an error, or one result per visit."""

    result: Any = Field(None, description="The step's result (every visit).")
    error: MockError | None = Field(None, description="The step fails with this error.")
    results: list[Any] | None = Field(
        None, min_length=1, description="One result per visit, in order (a loop, a retry)."
    )

    @model_validator(mode="after")
    def _one_answer(self) -> Mock:
        names = ("result", "error", "results")
        given = [name for name in names if getattr(self, name) is not None]
        # A result may be null, so "given" is also "named" (but never beside another).
        if len(given) > 1 or not self.model_fields_set & set(names):
            raise ValueError("give exactly one of 'result', 'error' or 'results'")
        return self

    def answers(self) -> list[Any]:
        """The results it gives, in visit order (an error mock gives none)."""
        if self.results is not None:
            return list(self.results)
        return [] if self.error is not None else [self.result]


class HTTPMock(_Model):
    """The answer an `http` step (or an agent's http tool) gets."""

    status: int = Field(200, ge=100, le=599)
    headers: dict[str, str] = Field(default_factory=dict)
    json_: Any = Field(None, alias="json")
    text: str | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    def as_result(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "headers": self.headers,
            "json": self.json_,
            "text": self.text,
        }


class AIMock(_Model):
    """The answer an `ai` step (or one turn of an `agent`) gets."""

    text: str | None = None
    json_: Any = Field(None, alias="json")
    model: str | None = None
    usage: dict[str, Any] | None = None
    cost: float | None = None
    finish_reason: str | None = None
    tool_calls: list[dict[str, Any]] | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    def as_result(self) -> dict[str, Any]:
        text = self.text
        if text is None:
            text = "" if self.json_ is None else json.dumps(self.json_)
        value = self.model_dump(by_alias=True, exclude_none=True)
        if self.tool_calls is not None:
            value["tool_calls"] = [_tool_call(i, call) for i, call in enumerate(self.tool_calls)]
        return {**value, "text": text, "model": self.model or "mock"}


def _tool_call(index: int, call: dict[str, Any]) -> dict[str, Any]:
    """An agent's tool call as the provider's answer carries it: `name` and `arguments` are
    enough in a mock (the id and the raw arguments are made up from them)."""
    if not isinstance(call.get("name"), str):
        raise ValueError(f"tool_calls[{index}] needs the 'name' of the tool it calls")
    arguments = call.get("arguments", {})
    return {
        "id": f"call-{index}",
        "raw": json.dumps(arguments),
        **call,
        "arguments": arguments,
    }


class MCPMock(_Model):
    """The answer an `mcp` step (or one call of an agent's MCP tool) gets. ``text`` alone is
    enough: the content is then that one text block; ``structured`` alone gets its JSON as
    the text, as servers send it."""

    text: str | None = None
    content: list[dict[str, Any]] | None = None
    structured: Any = None
    is_error: bool = False

    def as_result(self) -> dict[str, Any]:
        text, content = self.text, self.content
        if text is None and content is None and self.structured is not None:
            text = json.dumps(self.structured)
        if content is None:
            content = [] if text is None else [{"type": "text", "text": text}]
        if text is None:
            text = "\n".join(
                block["text"]
                for block in content
                if block.get("type") == "text" and isinstance(block.get("text"), str)
            )
        return {
            "content": content,
            "structured": self.structured,
            "is_error": self.is_error,
            "text": text,
        }


class MCPToolsMock(_Model):
    """The tools an agent's MCP server lists: names, descriptions, input schemas."""

    tools: list[MCPTool]

    def as_result(self) -> dict[str, Any]:
        for tool in self.tools:
            problems = schema_problems(tool.input_schema, f"tools.{tool.name}.input_schema")
            if problems:
                raise ValueError(f"{problems[0].path}: {problems[0].message}")
        return {"tools": [tool.model_dump() for tool in self.tools]}


SHAPES: dict[str, type[BaseModel]] = {
    "http": HTTPMock,
    "ai": AIMock,
    "mcp": MCPMock,
    MCP_TOOLS: MCPToolsMock,
}
RESULTS: dict[str, type[BaseModel]] = {
    "http": HTTPResult,
    "ai": AIResult,
    "mcp": MCPCallResult,
    MCP_TOOLS: MCPToolList,
}


def mock_result(shape: str, value: Any) -> Any:
    """A mock's result as the step's activity returns it (raises ValidationError, ValueError)."""
    if shape == "outputs":
        if not isinstance(value, dict):
            raise ValueError("a sub_workflow's mock result is the child's outputs: an object")
        return value
    model = SHAPES[shape].model_validate(value)
    result: dict[str, Any] = model.as_result()  # type: ignore[attr-defined]
    RESULTS[shape].model_validate(result)  # what the step reads of it: checked here, not in the run
    return result


class ScriptedSignal(_Model):
    """A signal the case sends, ``after_seconds`` of virtual time after the run starts."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    payload: Any = None
    after_seconds: float = Field(0, ge=0, le=10 * 366 * 86400)


class Expectation(_Model):
    """What the case expects; every field left out is not checked."""

    status: Literal["completed", "failed", "cancelled"] | None = None
    outputs: dict[str, Any] | None = Field(
        None, description="A subset: every key given must match, recursively in objects."
    )
    error_type: str | None = None
    steps: list[str] | None = Field(None, description="Step ids in the order visited.")


class Case(_Model):
    name: str = Field(min_length=1, max_length=200)
    input_vars: dict[str, Any] = Field(default_factory=dict)
    mocks: dict[MockKey, Mock] = Field(
        default_factory=dict, description="By step id, or by path (`each[2].fetch`)."
    )
    signals: list[ScriptedSignal] = Field(default_factory=list, max_length=1000)
    expect: Expectation = Field(default_factory=Expectation)
    allow_calls: bool | None = Field(
        None, description="Steps without a mock call out for real (default: the file's)."
    )


class CaseFile(_Model):
    """A workflow's test cases (docs/testing.md)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "$id": CASE_FILE_SCHEMA_ID,
            "$schema": "https://json-schema.org/draft/2020-12/schema",
        },
    )

    workflow_id: str | int
    version: int | None = Field(None, ge=1, description="Test this version (default: current).")
    allow_calls: bool = Field(
        False, description="Steps without a mock call out for real instead of failing the case."
    )
    cases: list[Case] = Field(min_length=1, max_length=200)

    @model_validator(mode="after")
    def _unique_names(self) -> CaseFile:
        seen: set[str] = set()
        for case in self.cases:
            if case.name in seen:
                raise ValueError(f"two cases are named {case.name!r}")
            seen.add(case.name)
        return self


class CaseRun(_Model):
    """What a test run carries in its input: the case's mocks and signals (the run's flag)."""

    case: str
    mocks: dict[str, Mock] = Field(default_factory=dict)
    signals: list[ScriptedSignal] = Field(default_factory=list)
    allow_calls: bool = False
    # Each mock key's shape (what its step binds), decided when the file was checked.
    shapes: dict[str, str] = Field(default_factory=dict)
    # Where a run that continued as new left off: each key's visits, the virtual time, how
    # many of the signals were sent.
    visits: dict[str, int] = Field(default_factory=dict)
    virtual_seconds: float = 0.0
    signals_sent: int = 0


# -- checking a file against its definition -----------------------------------------------


def _walk(steps: Sequence[Any]) -> Iterator[StepBase]:
    for step in steps:
        yield step
        for scope in kind_of(step).scopes(step):
            yield from _walk(scope.steps)


def mock_targets(steps: Sequence[Any]) -> dict[str, str]:
    """Every name a mock may have: step ids, and `agent.tool` for agents' tools; its shape
    (or the step's type, for a step a mock cannot stand in for). An agent's MCP server
    `docs` is `agent.docs` (its tool list) and each of its tools `agent.docs__search` (the
    name the model calls it by); a server whose tools the step does not list may have any
    (`agent.docs__*`). ``steps``: the workflow's, then those of the workflows it calls
    (their runs are test runs too): the first wins."""
    targets: dict[str, str] = {}
    for step in reversed(list(_walk(steps))):
        targets[step.id] = MOCKABLE.get(step.type, step.type)
        for tool in getattr(step, "tools", None) or []:
            mcp = getattr(tool, "mcp", None)
            if mcp is None:
                targets[f"{step.id}.{tool.name}"] = "http" if tool.http is not None else "outputs"
                continue
            targets[f"{step.id}.{tool.name}"] = MCP_TOOLS
            for name in mcp.tools if mcp.tools is not None else ["*"]:
                wildcard = f"{tool.name}__*" if name == "*" else None
                targets[f"{step.id}.{wildcard or offered_name(tool.name, name)}"] = "mcp"
    return targets


def _bare(key: str) -> str:
    """A key without its visits: an agent's one turn (`agent.turn[1]`) is the agent, one tool
    call (`agent.turn[1].search[0]`) is `agent.search`."""
    key = re.sub(
        r"\.turn\[\d+\](?:\.([A-Za-z0-9_-]+)\[\d+\])?$", lambda m: f".{m[1]}" if m[1] else "", key
    )
    return re.sub(r"\[\d+\]", "", key)


def _target_of(key: str, targets: dict[str, str]) -> str | None:
    """The target a key names: a step id, `agent.tool`, or a path ending in either."""
    if key in targets:
        return key
    bare = _bare(key)
    parts = bare.split(".")
    for size in (2, 1):
        tail = ".".join(parts[-size:])
        if len(parts) >= size and tail in targets:
            return tail
    # A tool of an MCP server whose tools the step does not list: `agent.docs__<any>`.
    for match in re.finditer("__", parts[-1] if len(parts) >= 2 else ""):
        wildcard = f"{parts[-2]}.{parts[-1][: match.start()]}__*"
        if wildcard in targets:
            return wildcard
    return None


def _unknown(key: str, targets: dict[str, str]) -> str:
    """Why a key names nothing: a tool an agent's MCP server does not list, or no step."""
    server, cut, _ = _bare(key).rpartition("__")
    listed = sorted(t for t in targets if cut and t.startswith(f"{server}__") and "." in server)
    if listed:
        return f"the step lists only these tools of its MCP server: {', '.join(listed)}"
    return f"the workflow has no step '{key}'"


def case_problems(
    case: Case, targets: dict[str, str], where: str
) -> tuple[list[Problem], dict[str, str]]:
    """A case's mocks against the definition's steps: the problems, and each key's shape."""
    problems: list[Problem] = []
    shapes: dict[str, str] = {}
    for key, mock in case.mocks.items():
        at = f"{where}.mocks.{key}"
        target = _target_of(key, targets) if KEY_PATTERN.match(key) else None
        if target is None:
            problems.append(Problem(at, _unknown(key, targets), "unknown_step"))
            continue
        shape = targets[target]
        if target.endswith("__*"):  # one tool of a server's: name it as the key does
            target = key
        if shape not in SHAPE_NAMES:
            problems.append(
                Problem(
                    at,
                    f"step '{target}' is a '{shape}' step: it calls nothing out, so it takes "
                    "no mock (delays and signal timeouts take virtual time in a test)",
                    "not_mockable",
                )
            )
            continue
        shapes[key] = shape
        for index, value in enumerate(mock.answers()):
            field = f"{at}.results[{index}]" if mock.results is not None else f"{at}.result"
            problem = _shape_problem(value, shape, target)
            if problem is not None:
                problems.append(Problem(field, problem, "invalid_mock"))
    return problems, shapes


def _shape_problem(value: Any, shape: str, target: str) -> str | None:
    try:
        mock_result(shape, value)
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        where = f"{loc}: " if loc else ""
        return f"step '{target}' binds {SHAPE_NAMES[shape]}: {where}{first['msg']}"
    except ValueError as err:
        return f"step '{target}': {err}"
    return None


def awaited_signals(steps: Sequence[Any]) -> dict[str, list[Any]]:
    """Each signal name a `wait_for_signal` step waits for: the payload schemas it checks."""
    awaited: dict[str, list[Any]] = {}
    for step in _walk(steps):
        if isinstance(step, WaitForSignalStep):
            schemas = awaited.setdefault(step.signal, [])
            if step.payload_schema is not None:
                schemas.append(step.payload_schema)
    return awaited


def signal_problems(case: Case, awaited: dict[str, list[Any]], where: str) -> list[Problem]:
    """A case's signals: a name no step waits for (a typo), a payload its step refuses (the
    API would refuse it too)."""
    problems: list[Problem] = []
    for index, signal in enumerate(case.signals):
        at = f"{where}.signals[{index}]"
        if signal.name not in awaited:
            names = ", ".join(sorted(awaited)) or "none"
            problems.append(
                Problem(
                    f"{at}.name",
                    f"no step waits for a '{signal.name}' signal (the workflow waits for: {names})",
                    "unknown_signal",
                )
            )
            continue
        for schema in awaited[signal.name]:
            for problem in value_problems(schema, signal.payload, f"{at}.payload"):
                message = f"the '{signal.name}' payload does not fit the step's payload_schema"
                problems.append(
                    Problem(problem.path, f"{message}: {problem.message}", "invalid_payload")
                )
    return problems


def file_problems(file: CaseFile, steps: Sequence[Any]) -> tuple[list[Problem], list[CaseRun]]:
    """Every problem of a file against the definition's steps (and those of the workflows it
    calls, after its own), and each case's run flag."""
    targets = mock_targets(steps)
    awaited = awaited_signals(steps)
    problems: list[Problem] = []
    runs: list[CaseRun] = []
    for index, case in enumerate(file.cases):
        found, shapes = case_problems(case, targets, f"$.cases[{index}]")
        problems += found + signal_problems(case, awaited, f"$.cases[{index}]")
        allow = file.allow_calls if case.allow_calls is None else case.allow_calls
        signals = sorted(case.signals, key=lambda s: s.after_seconds)
        runs.append(
            CaseRun(
                case=case.name, mocks=case.mocks, signals=signals, allow_calls=allow, shapes=shapes
            )
        )
    return problems, runs
