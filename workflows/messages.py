"""Messages between the workflow, the activities and the API: names, records, requests, results.

Everything here is a pydantic model carried by ``pydantic_data_converter``, so the client and
the worker must both use that converter (see :func:`activities.runtime.temporal_client.connect`).
Nothing here knows the definition format, so the step kinds can use these models;
:mod:`workflows.shared` adds the execution's input (which carries the definition).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from temporalio.common import SearchAttributeKey

WORKFLOW_TYPE = "WorkflowExecutor"
# Test runs (docs/testing.md) have ids of their own, so lists leave them out.
TEST_ID_PREFIX = "test-"
CANCEL_SIGNAL = "cancel"
STATUS_QUERY = "status"
# The status with large values summarised (workflows/status_view.py): what the API asks.
STATUS_VIEW_QUERY = "status_view"

# Activity names (verb_noun), referenced by name from the workflow.
CALL_LLM = "call_llm"
SEND_HTTP_REQUEST = "send_http_request"
# An MCP server's tools (docs/mcp.md): listing them, calling one.
LIST_MCP_TOOLS = "list_mcp_tools"
CALL_MCP_TOOL = "call_mcp_tool"
WRITE_EXECUTION_LOG = "write_execution_log"
# A share of a large foreach, run as a child workflow (workflows/kinds/foreach.py).
FOREACH_BATCH_TYPE = "ForeachBatch"

# Search attributes the project registers on the server (see workflows/search_attributes.py).
SA_DEFINITION_ID = SearchAttributeKey.for_keyword("WorkflowDefinitionId")
SA_STATUS = SearchAttributeKey.for_keyword("WorkflowStatus")
SA_DEFINITION_VERSION = SearchAttributeKey.for_int("WorkflowDefinitionVersion")
SA_STARTED_BY = SearchAttributeKey.for_keyword("StartedBy")
# The run's AI spend so far: `WorkflowCostUsd > 1` in the Temporal UI.
SA_COST_USD = SearchAttributeKey.for_float("WorkflowCostUsd")
SA_TOKENS = SearchAttributeKey.for_int("WorkflowTokens")
SEARCH_ATTRIBUTES = (
    SA_DEFINITION_ID,
    SA_STATUS,
    SA_DEFINITION_VERSION,
    SA_STARTED_BY,
    SA_COST_USD,
    SA_TOKENS,
)
BUDGET_SIGNAL = "budget"
# What a `budget` signal may carry: new limits, or a refusal.
BUDGET_PAYLOAD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "max_cost_usd": {"type": "number", "exclusiveMinimum": 0},
        "max_tokens": {"type": "integer", "minimum": 1},
        "approve": {"type": "boolean"},
    },
    "additionalProperties": False,
}

ExecutionStatus = Literal["running", "completed", "failed", "cancelled", "terminated"]
StepStatus = Literal["running", "success", "failed", "cancelled"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


def library_key(workflow_id: str | int, version: int | None) -> str:
    """The key of a definition in a run's library: ``id`` (current) or ``id@version``."""
    return str(workflow_id) if version is None else f"{workflow_id}@{version}"


class ExecutionLimits(_Model):
    """The bounds a run holds to (README "Limits"): the operator's settings, lowered by the
    definition's own ``timeout_seconds`` and ``limits``. Runs started before limits existed
    carry none and keep their old behaviour."""

    max_steps: int = Field(ge=1)
    timeout_seconds: float = Field(gt=0)
    max_value_bytes: int = Field(ge=1024)
    max_buffered_signals: int = Field(ge=1)
    foreach_max_items: int = Field(10_000, ge=1, description="FOREACH_MAX_ITEMS.")
    max_descendants: int | None = Field(
        None,
        ge=0,
        description="EXECUTION_MAX_DESCENDANTS: executions one start's tree of sub-workflows "
        "and foreach shares may start (workflows/run_tree.py); None for runs before the cap.",
    )


# The status keeps this many recent step records; the log keeps them all.
STATUS_STEP_WINDOW = 200


class StepRecord(_Model):
    """One step as it appears in the log and in the status query."""

    seq: int
    step_id: str
    name: str
    type: str
    start_time: datetime
    end_time: datetime | None = None
    status: StepStatus = "running"
    output_vars: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
    error_type: str | None = None
    attempts: int | None = None
    usage: dict[str, Any] | None = None
    run_id: str | None = Field(
        None, description="The Temporal run that ran the step (a reset starts another run)."
    )
    path: str | None = Field(
        None,
        description="Where the step ran: its id at the top level, `fan.b.fetch` in a parallel "
        "branch, `each[3].fetch` in a foreach iteration.",
    )
    reused_from: str | None = Field(
        None, description="A rerun took this step's result from that execution (no call made)."
    )
    reuse_key: str | None = Field(
        None, description="The rendered request's key a rerun matches results by."
    )
    child_execution_id: str | None = Field(
        None, description="A `sub_workflow` step's child execution (its own status and log)."
    )


class CarriedState(_Model):
    """State handed to the next run when the execution continues as new."""

    context: dict[str, Any]
    next_index: int
    seq: int
    started_at: datetime
    first_run_id: str
    steps_done: int
    runs: int = 1
    recent_steps: list[StepRecord] = Field(default_factory=list)
    pending_signals: dict[str, list[Any]] = Field(default_factory=dict)
    usage: dict[str, Any] | None = None
    budget: dict[str, Any] | None = None  # limits raised by `budget` signals
    # How the run reads {items.01} (workflows/templating.py); None: carried by an older version.
    strict_indexes: bool | None = None
    # Executions the run may still start (workflows/run_tree.py); None: not counted.
    descendants_left: int | None = None
    # The run's CEL evaluator goes on in the next run (absent in older states: legacy).
    cel_conformant: bool = False
    # The run holds its concurrency place (workflows/flow/): the next run keeps it.
    concurrency_held: bool = False


class ExecutionError(_Model):
    type: str
    message: str
    step_id: str | None = None


class ExecutionState(_Model):
    """Live status (query answer) and the workflow's result."""

    execution_id: str
    run_id: str
    workflow_id: str | int
    workflow_name: str | None = None
    definition_version: int | None = None
    status: ExecutionStatus
    current_step: str | None = None
    current_steps: list[str] = Field(
        default_factory=list, description="Paths of every step in flight (parallel branches)."
    )
    started_at: datetime
    ended_at: datetime | None = None
    steps: list[StepRecord] = Field(default_factory=list)
    steps_total: int = 0
    outputs: dict[str, Any] = Field(default_factory=dict)
    error: ExecutionError | None = None
    buffered_signals: dict[str, int] = Field(
        default_factory=dict, description="Signals received and not yet read, by name."
    )
    rerun_of: str | None = Field(None, description="The execution this one reruns.")
    usage: dict[str, Any] | None = Field(
        None,
        description="The run's AI totals: prompt_tokens, completion_tokens, total_tokens, "
        "cost_usd, ai_calls.",
    )
    waiting_for: str | None = Field(None, description="The signal a wait_for_signal awaits.")
    waiting_until: datetime | None = Field(None, description="When that wait times out.")
    waiting_payload_schema: dict[str, Any] | None = Field(
        None,
        description="The JSON Schema the awaited signal's payload must satisfy (the step's "
        "`payload_schema`; for `budget`, new limits or a refusal), else null.",
    )
    descendants_left: int | None = Field(
        None, description="Executions the run's tree did not use of its allowance (to its parent)."
    )
    concurrency_key: str | None = Field(
        None, description="The run's concurrency key (its definition's `concurrency`), if any."
    )
    waiting_place: int | None = Field(
        None,
        description="With `waiting_for` \"concurrency\": the run's place in its key's queue "
        "(1: next to start).",
    )


class StatusRequest(_Model):
    """The argument of the ``status_view`` query: how much of the run's values to answer.

    The query's result is built and serialised on the worker that runs the execution, so its
    size is the cost of every poll: values are summarised unless asked for in full, and a
    full answer past ``max_bytes`` is refused (summaries, with ``variables_bytes`` set).
    """

    variables: Literal["summary", "full", "none"] = Field(
        "summary",
        description="`summary`: values over `value_bytes` become summaries; `full`: the "
        "variables in full (only `names`, when given); `none`: no variables and no steps.",
    )
    names: list[str] | None = Field(None, description="With `full`: only these variables.")
    value_bytes: int = Field(4096, ge=64, description="A value larger than this is summarised.")
    budget_bytes: int = Field(
        64 * 1024, ge=1024, description="Values kept as they are, in all, before summaries."
    )
    max_bytes: int = Field(16 * 1024 * 1024, ge=1024, description="The most `full` answers.")


class ExecutionView(ExecutionState):
    """The ``status_view`` query's answer: the status, large values summarised."""

    summarised: list[str] = Field(
        default_factory=list, description="Variables whose value (or part) is a summary."
    )
    variables_bytes: int | None = Field(
        None, description="Set when `full` variables would exceed `max_bytes`: their size."
    )


class CancelRequest(_Model):
    reason: str = "cancelled by request"
    requested_by: str | None = None


class LogWrite(_Model):
    """One write of the execution log: the header fields plus the step records to upsert.

    ``step`` is the single record of the first interpreter version (kept so recorded
    histories still decode); newer runs send ``steps``, a batch.
    """

    execution_id: str
    run_id: str
    workflow_id: str | int
    workflow_name: str | None = None
    workflow_version: int | None = None
    status: ExecutionStatus
    start_time: datetime
    end_time: datetime | None = None
    error: ExecutionError | None = None
    usage: dict[str, Any] | None = Field(None, description="The run's AI totals so far.")
    step: StepRecord | None = None
    steps: list[StepRecord] = Field(default_factory=list)
    records_only: bool = Field(
        False,
        description="A foreach share's write: its records are merged, the header above is the "
        "log's own (used only by a log that has none yet).",
    )

    def records(self) -> list[StepRecord]:
        return ([self.step] if self.step is not None else []) + list(self.steps)


class DeferredSlotModel(_Model):
    location: list[str | int]
    parts: list[dict[str, str]]


class StepRequest(_Model):
    """What every step activity's input says of the step sending it (and the log records it
    carries); the rendered fields are the subclass's."""

    execution_id: str
    step_id: str
    workflow_id: str | None = Field(
        None,
        description="The definition whose step sends this, from the run's input (secrets bound "
        "to workflows are checked against it; no template can set it).",
    )
    path: str | None = Field(None, description="The step's path (reruns match requests by it).")
    seq: int | None = Field(None, description="The step visit's number in its execution.")
    deferred: list[DeferredSlotModel] = Field(default_factory=list)
    log: LogWrite | None = Field(
        None,
        description="Log records the activity writes alongside its call (the interpreter's "
        "batched records and the previous step's), so no step needs a log activity of its own.",
    )


class RateTurn(_Model):
    """A turn under a shared rate limit (AI_RATE_LIMITS), reserved by the workflow before it
    scheduled the call: the activity's first attempt uses it instead of asking again."""

    resource: str
    request_id: str
    at: datetime


class AIRequest(StepRequest):
    """Input of ``call_llm``: rendered fields; secret slots are filled by the activity."""

    model: str
    messages: list[dict[str, Any]]
    temperature: float | None = None
    max_tokens: int | None = None
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = Field(
        None, description="An agent turn's tools (OpenAI function format) for the model."
    )
    report_when_cancelled: bool = Field(
        False,
        description="Cancelled once the request is sent, wait (briefly) for the provider's "
        "answer and return it marked `cancelled`: the call is paid for, and the run counts it.",
    )
    rate_turn: RateTurn | None = Field(
        None, description="The turn the run waited for under AI_RATE_LIMITS, if any."
    )


class AIUsage(_Model):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None


class AIResult(_Model):
    text: str
    json_: Any = Field(None, alias="json")
    model: str | None = None
    usage: AIUsage | None = None
    cost: float | None = None
    finish_reason: str | None = None
    attempts: list[dict[str, Any]] | None = Field(
        None, description="Every model tried: {model, status, error?, usage?}."
    )
    repairs: int | None = Field(None, description="Answers asked again for failing the format.")
    tool_calls: list[dict[str, Any]] | None = Field(
        None,
        description="An agent turn's tool calls: {id, name, raw, arguments, error?} (checked "
        "against each tool's parameters by the activity).",
    )
    log_written: bool = Field(False, description="The activity wrote the log records it carried.")
    cancelled: bool = Field(
        False, description="Cancelled after the provider answered: only the usage counts."
    )

    model_config = ConfigDict(extra="forbid", populate_by_name=True, serialize_by_alias=True)

    def as_output(self) -> dict[str, Any]:
        """The value an `ai` step binds to its `output`.

        The parsed JSON's fields are reachable directly (`classification.priority`) as well as
        under `json` (the README's example); the result's own keys win on a clash.
        """
        value = self.model_dump(by_alias=True, exclude={"log_written", "cancelled"})
        for optional in ("attempts", "repairs", "tool_calls"):
            if value.get(optional) is None:
                value.pop(optional, None)
        if isinstance(self.json_, dict):
            for key, item in self.json_.items():
                value.setdefault(key, item)
        return value

    def usage_record(self) -> dict[str, Any] | None:
        """This answer's usage: the token counts, plus `cost_usd` when the provider said."""
        if self.usage is None:
            return None
        usage = self.usage.model_dump()
        if self.cost is not None:
            usage["cost_usd"] = self.cost
        return usage


class HTTPRequest(StepRequest):
    """Input of ``send_http_request``: the rendered request and its idempotency key."""

    method: str
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    query: dict[str, Any] = Field(default_factory=dict)
    json_body: Any = None
    has_json: bool = False
    body: str | None = None
    expect_status: list[int] | None = None
    idempotency_key: str


class HTTPResult(_Model):
    status: int
    headers: dict[str, str]
    json_: Any = Field(None, alias="json")
    text: str | None = None
    log_written: bool = Field(False, description="The activity wrote the log records it carried.")

    model_config = ConfigDict(extra="forbid", populate_by_name=True, serialize_by_alias=True)

    def as_output(self) -> dict[str, Any]:
        """The value an `http` step binds to its `output`: `{status, headers, json or text}`."""
        return self.model_dump(by_alias=True, exclude_none=True, exclude={"log_written"})


class MCPServerRequest(StepRequest):
    """An MCP server as a step addresses it: its URL and the headers of every request."""

    url: str
    headers: dict[str, str] = Field(default_factory=dict)


class MCPListRequest(MCPServerRequest):
    """Input of ``list_mcp_tools``: which server, and which of its tools (None: all)."""

    tools: list[str] | None = None


class MCPTool(_Model):
    name: str
    description: str = ""
    input_schema: dict[str, Any] = Field(default_factory=dict)


class MCPToolList(_Model):
    tools: list[MCPTool]
    log_written: bool = Field(False, description="The activity wrote the log records it carried.")


class MCPCallRequest(MCPServerRequest):
    """Input of ``call_mcp_tool``: one tool call with its (rendered) arguments."""

    tool: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class MCPCallResult(_Model):
    """A tool's answer: its content blocks, structured content, whether it is an error, and
    its text parts joined."""

    content: list[dict[str, Any]] = Field(default_factory=list)
    structured: Any = None
    is_error: bool = False
    text: str = ""
    log_written: bool = Field(False, description="The activity wrote the log records it carried.")

    def as_output(self) -> dict[str, Any]:
        """The value an `mcp` step binds: ``{content, structured, is_error, text}``."""
        return self.model_dump(exclude={"log_written"})


class ForeachBatchInput(_Model):
    """One share of a large `foreach`'s items, run by a child workflow of its own."""

    step: dict[str, Any] = Field(description="The foreach step, as in the definition.")
    path: str
    items: list[Any]
    offset: int = Field(ge=0, description="The index of the first item in the whole list.")
    variables: dict[str, Any] = Field(default_factory=dict)
    # The parent's reading of {items.01} (workflows/templating.py); None from older parents.
    strict_indexes: bool | None = None
    # The parent's CEL evaluator (absent from shares older parents started: legacy).
    cel_conformant: bool = False
    # The parent's log, for a share that writes its records there itself (None: the share
    # hands every record back, as shares of older parents did).
    log: LogWrite | None = None
    first_seq: int = Field(0, ge=0, description="The number of the share's first step visit.")
    hand_back: int = Field(0, ge=0, description="How many of its latest records it hands back.")


class ForeachBatchResult(_Model):
    """A share's results (in item order) and the records of the steps it ran (the latest
    ``hand_back`` of them, already in the log, from a share that writes its own)."""

    results: list[Any]
    records: list[StepRecord] = Field(default_factory=list)
    steps_done: int = 0
    descendants_left: int | None = None  # what the share's tree did not use of its allowance


class ReusedResult(_Model):
    """A result a rerun takes instead of calling out: what the source recorded."""

    result: Any
    source: str = Field(description="The execution that paid for it.")


# Fields of a request that name the run, not what is asked: a rerun matches without them.
_NOT_THE_REQUEST = frozenset(
    {
        "execution_id",
        "idempotency_key",
        "log",
        "seq",
        "step_id",
        "report_when_cancelled",
        "workflow_id",
        "rate_turn",
    }
)


def request_key(kind: str, request: BaseModel | dict[str, Any], step_id: str = "") -> str:
    """The key of a rendered request: the same path and the same rendered fields give the
    same key, in the workflow (before it calls) and in the API (reading the source's history).
    Requests recorded before paths existed count as at their step id (top-level steps)."""
    # Not the carried log: it is no part of the request, and may be large.
    data = (
        request.model_dump(mode="json", exclude={"log"})
        if isinstance(request, BaseModel)
        else dict(request)
    )
    data["path"] = data.get("path") or data.get("step_id") or step_id
    fields = {k: v for k, v in data.items() if k not in _NOT_THE_REQUEST}
    canonical = json.dumps([kind, fields], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()
