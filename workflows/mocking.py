"""A test run inside the workflow: mocked calls and virtual time (docs/testing.md).

A run whose input carries a :class:`~workflows.testfile.CaseRun` is a test run. It is the
same workflow on the same Temporal, with three differences, all held here:

- an activity call of a mocked step resolves from the mock, in the workflow: no activity, no
  I/O. A call without a mock fails its step (``UnmockedCall``) unless the case allows calls;
- delays and signal timeouts take virtual time: each is a deadline on a virtual clock, and
  when every branch of the run waits (on a timer or a signal), the earliest deadline fires.
  The case's signals are deadlines too, delivered at their virtual times;
- a wait for a signal that nothing will send fails its step (``NeverSignalled``) at once.

Runs without the flag never reach this module: their timers and waits are Temporal's own.
"""

from __future__ import annotations

import asyncio
import heapq
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, RetryState

from workflows import versions
from workflows.errors import FailureType, StepFailed
from workflows.messages import (
    CALL_LLM,
    CALL_MCP_TOOL,
    LIST_MCP_TOOLS,
    SEND_HTTP_REQUEST,
    HTTPResult,
)
from workflows.testfile import (
    MCP_TOOLS,
    MOCK_EXHAUSTED,
    MOCK_SHAPE,
    NEVER_SIGNALLED,
    UNMOCKED_CALL,
    CaseRun,
    Mock,
    mock_result,
)

# An agent's tool call: `<agent path>.turn[<n>].<tool>[<i>]`.
TOOL_CALL = re.compile(r"\.turn\[\d+\]\.([A-Za-z0-9_-]+)\[\d+\]$")
SHAPE_OF_ACTIVITY = {
    SEND_HTTP_REQUEST: "http",
    CALL_LLM: "ai",
    CALL_MCP_TOOL: "mcp",
    LIST_MCP_TOOLS: MCP_TOOLS,
}
# Calls an agent makes per tool, mocked by `agent.tool` (an MCP tool: `agent.docs__search`).
TOOL_ACTIVITIES = frozenset({SEND_HTTP_REQUEST, CALL_MCP_TOOL})
MCP_ACTIVITIES = frozenset({CALL_MCP_TOOL, LIST_MCP_TOOLS})
# What a derived tool list offers for each tool: any arguments (the model is mocked too).
ANY_ARGUMENTS = {"type": "object"}

# A test run's MCP calls are answered by their own mocks (`mcp` steps by id, an agent's MCP
# tools by `agent.docs__search`, its server's tool list by `agent.docs`: docs/testing.md);
# older test runs read them as any other call. (Here, not in interpreter/patches.py: the
# interpreter imports this module.)
MCP_MOCKS = "mcp-mocks"


@dataclass(order=True)
class _Deadline:
    at: float
    seq: int
    fired: bool = field(default=False, compare=False)
    dropped: bool = field(default=False, compare=False)
    action: Callable[[], None] | None = field(default=None, compare=False)


class VirtualClock:
    """Deadlines in virtual seconds since the run started, fired in order when the run idles."""

    def __init__(
        self, deliver: Callable[[str, Any], None], signals: list[Any], now: float = 0.0
    ) -> None:
        self.now = now
        self.sent = 0  # of ``signals``, delivered
        self._heap: list[_Deadline] = []
        self._seq = 0
        self.outside = 0  # real waits in flight (log writes, child runs): the clock holds
        self.signal_waits: dict[int, str] = {}  # waits with no timeout, by id: signal name
        self._quiet = False
        self._pending_signals: dict[str, int] = {}
        self.stuck_waits: set[int] = set()  # signal waits that can never end
        for signal in signals:
            self._pending_signals[signal.name] = self._pending_signals.get(signal.name, 0) + 1
            self._add(signal.after_seconds, self._delivery(deliver, signal))

    def _delivery(self, deliver: Callable[[str, Any], None], signal: Any) -> Callable[[], None]:
        def fire() -> None:
            self.sent += 1
            self._pending_signals[signal.name] -= 1
            deliver(signal.name, signal.payload)

        return fire

    def _add(self, at: float, action: Callable[[], None] | None = None) -> _Deadline:
        self._seq += 1
        deadline = _Deadline(at, self._seq, action=action)
        heapq.heappush(self._heap, deadline)
        return deadline

    @contextmanager
    def holding(self) -> Iterator[None]:
        """The clock holds while real work is out (a child run, a log write)."""
        self.outside += 1
        try:
            yield
        finally:
            self.outside -= 1

    def signals_to_come(self, name: str) -> bool:
        return self._pending_signals.get(name, 0) > 0

    def _live(self) -> bool:
        while self._heap and self._heap[0].dropped:
            heapq.heappop(self._heap)
        return bool(self._heap)

    def idle(self) -> bool:
        """True once the run has waited through one full pass of the workflow's event loop
        with nothing to do but wait on this clock: every branch has reached its wait."""
        if self.outside or not (self._live() or self.signal_waits):
            self._quiet = False
            return False
        if self._quiet:
            self._quiet = False
            return True
        self._quiet = True
        asyncio.get_running_loop().call_soon(lambda: None)  # one more pass to be sure
        return False

    async def drive(self, stuck: Callable[[], None]) -> None:
        """The clock's task: fire the earliest deadline each time the run idles; with none
        left and a branch waiting for a signal, that wait can never end (``stuck``)."""
        while True:
            await workflow.wait_condition(self.idle)
            if self._live():
                deadline = heapq.heappop(self._heap)
                self.now = max(self.now, deadline.at)
                deadline.fired = True
                if deadline.action is not None:
                    deadline.action()
            else:
                stuck()

    async def sleep(self, seconds: float) -> None:
        deadline = self._add(self.now + seconds)
        try:
            await workflow.wait_condition(lambda: deadline.fired)
        finally:
            deadline.dropped = True

    async def wait(self, ready: Callable[[], bool], timeout: float | None, name: str) -> None:
        """Wait until ``ready`` (a signal arrived) or the virtual ``timeout`` passes."""
        if ready():
            return
        deadline = self._add(self.now + timeout) if timeout is not None else None
        self._seq += 1
        key = self._seq
        if deadline is None:
            self.signal_waits[key] = name
        try:
            await workflow.wait_condition(
                lambda: (
                    ready() or (deadline is not None and deadline.fired) or key in self.stuck_waits
                )
            )
        finally:
            self.signal_waits.pop(key, None)
            if deadline is not None:
                deadline.dropped = True
        if key in self.stuck_waits:
            self.stuck_waits.discard(key)
            raise StepFailed(
                f"the run waits for a '{name}' signal and the case sends none (add it to the "
                "case's signals, or give the step a timeout)",
                NEVER_SIGNALLED,
            )
        if not ready():
            raise TimeoutError


class CaseRunner:
    """One test run's mocks (each key's visits counted) and its virtual clock."""

    def __init__(self, case: CaseRun, deliver: Callable[[str, Any], None]) -> None:
        self.case = case
        self.visits: dict[str, int] = dict(case.visits)
        signals = list(case.signals)[case.signals_sent :]
        self.clock = VirtualClock(deliver, signals, case.virtual_seconds)

    def start_clock(self, log: Any) -> asyncio.Task[None]:
        """Drive the virtual clock for the run; its log writes hold the clock (``log.clock``)."""
        log.clock = self.clock
        return asyncio.create_task(self.clock.drive(self.stuck))

    def carried(self) -> CaseRun:
        """The case as the next run of the execution goes on with it (continue-as-new)."""
        return self.case.model_copy(
            update={
                "visits": dict(self.visits),
                "virtual_seconds": self.clock.now,
                "signals_sent": self.case.signals_sent + self.clock.sent,
            }
        )

    def stuck(self) -> None:
        """No deadline is left and the run waits for signals that will never come."""
        self.clock.stuck_waits.update(self.clock.signal_waits)

    def _find(self, keys: list[str]) -> tuple[str, Mock] | None:
        for key in keys:
            if key in self.case.mocks:
                return key, self.case.mocks[key]
        return None

    def keys_for(self, activity: str, call_path: str, step_path: str, step_id: str) -> list[str]:
        """The mock keys a call answers to, most precise first: an agent's tool call by its
        path, `agent.tool`; any other call by its path, its step's path, its step's id."""
        tool = TOOL_CALL.search(call_path) if activity in TOOL_ACTIVITIES else None
        if tool is not None:
            name = tool.group(1)
            return [call_path, f"{step_path}.{name}", f"{step_id}.{name}"]
        return list(dict.fromkeys([call_path, step_path, step_id]))

    def answer(self, activity: str, request: Any, step_path: str) -> Any | None:
        """The mock's answer to one activity call (the activity's result, as a dict), or None
        when the case allows real calls and has no mock for it."""
        call_path = getattr(request, "path", None) or step_path
        legacy = activity in MCP_ACTIVITIES and not versions.patched(MCP_MOCKS)
        if activity == LIST_MCP_TOOLS and not legacy:
            return self._tool_list(request, call_path, step_path)
        # Test runs from before MCP mocks read an MCP call as any other call.
        kind = "legacy" if legacy else activity
        keys = self.keys_for(kind, call_path, step_path, request.step_id)
        found = self._find(keys)
        if found is None:
            if self.case.allow_calls:
                return None
            raise StepFailed(
                f"it would call out ({activity}) and the case has no mock for it: add a mock "
                f"named '{keys[-1]}' (or '{call_path}')",
                UNMOCKED_CALL,
            )
        key, mock = found
        shape = "outputs" if legacy else None
        return self._answer_of(key, mock, activity, request, call_path, shape)

    def _tool_list(self, request: Any, call_path: str, step_path: str) -> Any | None:
        """An agent's MCP server's tools (`agent.docs`): its mock; else, unless the case allows
        calls, the tools the step lists or, when it lists none, those the case mocks
        (`agent.docs__search`), each taking any arguments."""
        server = call_path.rsplit(".", 1)[-1]
        found = self._find(list(dict.fromkeys([call_path, f"{request.step_id}.{server}"])))
        if found is not None:
            return self._answer_of(*found, LIST_MCP_TOOLS, request, call_path)
        if self.case.allow_calls:
            return None
        names = request.tools
        if names is None:
            agents = {step_path, request.step_id}
            mocked = (TOOL_CALL.sub(lambda m: f".{m[1]}", key) for key in self.case.mocks)
            calls = (key.rsplit(".", 1) for key in mocked if "." in key)
            prefix = f"{server}__"
            names = sorted(
                {
                    name[len(prefix) :]
                    for agent, name in calls
                    if agent in agents and name.startswith(prefix)
                }
            )
        tools = [{"name": name, "description": "", "input_schema": ANY_ARGUMENTS} for name in names]
        return {"tools": tools}

    def child_outputs(self, path: str) -> dict[str, Any] | None:
        """A mocked child run's outputs (a sub_workflow step, an agent's workflow tool); None:
        no mock, and the child runs, as a test run."""
        tool = TOOL_CALL.search(path)
        if tool is not None:  # `agent.turn[0].tool[1]`: the agent's path, its id
            agent = TOOL_CALL.sub("", path)
            agent_id = re.sub(r"\[\d+\]", "", agent).rsplit(".", 1)[-1]
            keys = [path, f"{agent}.{tool.group(1)}", f"{agent_id}.{tool.group(1)}"]
        else:
            keys = [path, re.sub(r"\[\d+\]", "", path).rsplit(".", 1)[-1]]
        found = self._find(list(dict.fromkeys(keys)))
        if found is None:
            return None
        key, mock = found
        result = self._answer_of(key, mock, "sub_workflow", None, path)
        return dict(result)

    def _answer_of(
        self,
        key: str,
        mock: Mock,
        activity: str,
        request: Any,
        path: str,
        shape: str | None = None,
    ) -> Any:
        visit = self.visits.get(key, 0)
        self.visits[key] = visit + 1
        if mock.error is not None:
            raise _activity_error(mock.error.type, mock.error.message, activity)
        answers = mock.answers()
        if visit >= len(answers):
            raise StepFailed(
                f"mock '{key}' gives {len(answers)} result(s) and this is visit {visit + 1}",
                MOCK_EXHAUSTED,
            )
        shape = shape or SHAPE_OF_ACTIVITY.get(activity, "outputs")
        try:
            result = mock_result(shape, answers[visit])
        except (ValidationError, ValueError) as err:
            raise StepFailed(
                f"mock '{key}' does not fit step '{path}' ({activity}): {err}", MOCK_SHAPE
            ) from None
        if activity == SEND_HTTP_REQUEST:
            _check_status(result, request)
        if activity == CALL_LLM:
            _refuse_unknown_tools(result, request)
        return result


def _activity_error(error_type: str, message: str, activity: str) -> ActivityError:
    """The error the step's activity would have raised (so `on_error` and an ai step's
    fallbacks treat a mocked failure as a real one)."""
    err = ActivityError(
        f"{activity} failed (mocked)",
        scheduled_event_id=0,
        started_event_id=0,
        identity="test",
        activity_type=activity,
        activity_id="mock",
        retry_state=RetryState.NON_RETRYABLE_FAILURE,
    )
    err.__cause__ = ApplicationError(message, type=error_type, non_retryable=True)
    return err


def _refuse_unknown_tools(result: dict[str, Any], request: Any) -> None:
    """A mocked turn's call of a tool the agent does not offer (an MCP tool its server's
    list lacks) goes back to the model as the real call's would."""
    offered = [spec["function"]["name"] for spec in getattr(request, "tools", None) or []]
    for call in result.get("tool_calls") or []:
        if call["name"] not in offered and versions.patched(MCP_MOCKS):
            call["error"] = (
                f"there is no tool named {call['name']!r}; use one of {', '.join(offered)}"
            )


def _check_status(result: dict[str, Any], request: Any) -> None:
    """A mocked status the step does not accept fails it as the activity would."""
    status = result["status"]
    accepted = getattr(request, "expect_status", None)
    if (status in accepted) if accepted else 200 <= status < 300:
        return
    retryable = status in (408, 429) or status >= 500
    kind = FailureType.HTTP_RETRYABLE if retryable else FailureType.HTTP_STATUS
    text = result.get("text") or ""
    message = f"{request.method} {request.url} answered {status} (mocked): {text[:300]}"
    raise _activity_error(kind, message, SEND_HTTP_REQUEST)


def http_result(value: dict[str, Any]) -> HTTPResult:
    return HTTPResult.model_validate({k: v for k, v in value.items() if v is not None})
