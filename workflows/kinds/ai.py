"""`ai`: a chat completion through OpenRouter (or any OpenAI-compatible server), an activity."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, model_validator
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

from workflows import versions
from workflows.errors import FailureType, Problem, StepFailed
from workflows.failures import describe_failure
from workflows.input_schema import schema_problems
from workflows.kinds.base import StepKind, StepOutcome, StepRun, register
from workflows.kinds.common import ActivityMixin, FlowMixin, Model, StepBase
from workflows.kinds.slots import slot_models
from workflows.messages import CALL_LLM, AIRequest, AIResult, AIUsage
from workflows.templating import VariableSubstitutor
from workflows.usage import Usage
from workflows.value_types import (
    DYN,
    INT_T,
    MAP,
    NEVER,
    NUMBER,
    STRING_T,
    Type,
    Typer,
    join,
    list_of,
    nullable,
    object_of,
    of_schema,
)


class ChatMessage(Model):
    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=1_000_000)


class JsonObjectFormat(Model):
    type: Literal["json_object"]


class JsonSchemaFormat(Model):
    type: Literal["json_schema"]
    schema_: dict[str, Any] = Field(alias="schema", description="JSON Schema the answer obeys.")
    name: str = Field("response", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    strict: bool = True


ResponseFormat = Annotated[JsonObjectFormat | JsonSchemaFormat, Field(discriminator="type")]


class AIStep(StepBase, FlowMixin, ActivityMixin):
    """A chat completion through OpenRouter (or any OpenAI-compatible server)."""

    # How the console's graph words the step (docs/console.md).
    model_config = ConfigDict(json_schema_extra={"x-label": ["{model}", "then {models}"]})

    type: Literal["ai"]
    model: str = Field(min_length=1, max_length=200)
    messages: list[ChatMessage] | None = Field(None, min_length=1)
    prompt: str | None = Field(
        None, max_length=1_000_000, description="Shorthand: one user message."
    )
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1, le=1_000_000)
    response_format: ResponseFormat | None = None
    models: list[str] = Field(
        default_factory=list,
        max_length=5,
        description="Fallbacks after `model`, tried in order when a model fails for a reason "
        "another may not share (docs/ai.md).",
    )
    repair_attempts: int = Field(
        1, ge=0, le=5, description="Ask again with the error when an answer fails the format."
    )

    @model_validator(mode="after")
    def _one_of_messages_or_prompt(self) -> AIStep:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("give exactly one of 'messages' or 'prompt'")
        return self


# Failures another model may not share (the table is docs/ai.md): the activity marks
# a provider's answer with a `fallback` reason; a provider still failing after its retries (5xx,
# timeouts) falls through too. Anything else (a bad key, no credits) fails the step at once.
FALLBACK_REASONS = frozenset({"model_unavailable", "context_length", "moderation"})
FALLBACK_TYPES = frozenset({FailureType.PROVIDER_RETRYABLE, FailureType.STEP_TIMEOUT})
PATCH_REPAIRS = "ai-repair-attempts"  # older runs let Temporal retry an invalid answer
# A call cancelled after it reached the provider returns its answer marked `cancelled`, and
# its usage counts: the provider bills it (older runs lost what such calls cost).
PATCH_COUNT_CANCELLED_CALLS = "count-cancelled-ai-calls"
REPAIR_PROMPT = (
    "Your previous answer could not be used: {error}. Answer again, with only the requested "
    "JSON and nothing else."
)


_USAGE_TYPE = object_of({name: nullable(INT_T) for name in AIUsage.model_fields})
_OPTIONAL = {"attempts": list_of(DYN), "repairs": INT_T, "tool_calls": list_of(DYN)}


def answer_json_type(response_format: Any) -> Type:
    """The type of an answer's parsed JSON: what the ``json_schema`` admits (the activity
    checks the answer against it), else unknown."""
    schema = getattr(response_format, "schema_", None)
    return of_schema(schema) if schema else DYN


def result_type(step: AIStep) -> Type:
    """What an ai step binds (AIResult.as_output): the result's keys, then the parsed JSON's
    own keys where the result has none of that name."""
    parsed = answer_json_type(step.response_format)
    fields: dict[str, Type] = {
        "text": STRING_T,
        "json": parsed,
        "model": nullable(STRING_T),
        "usage": nullable(_USAGE_TYPE),
        "cost": nullable(NUMBER),
        "finish_reason": nullable(STRING_T),
    }
    if MAP not in parsed.kinds:  # no object: nothing spreads
        return object_of({**fields, **_OPTIONAL})
    spread = [(name, value) for name, value in parsed.fields if name not in fields]
    for name, value in _OPTIONAL.items():  # absent when unused: the JSON's key may fill it
        fields[name] = join(value, parsed.field(name) or NEVER)
    fields.update((name, value) for name, value in spread if name not in _OPTIONAL)
    return object_of(fields, closed=parsed.closed, rest=parsed.rest)


@register
class AIKind(StepKind[AIStep]):
    type = "ai"
    model = AIStep
    waits = True
    carries_log = True
    secrets = True
    spends = True

    def templated(self, step: AIStep) -> dict[str, Any]:
        return model_fields(step)

    def result_types(self, step: AIStep, typer: Typer) -> dict[str, Type]:
        return {step.output: result_type(step)} if step.output else {}

    def problems(self, step: AIStep, where: str) -> list[Problem]:
        schema = getattr(step.response_format, "schema_", None)
        if schema is None:
            return []
        return schema_problems(schema, f"{where}.response_format.schema")

    async def execute(self, step: AIStep, run: StepRun) -> StepOutcome:
        answer = await ask(run, step, first_messages(step))
        outputs = {step.output: answer.result.as_output()} if step.output else {}
        return StepOutcome(
            output_vars=outputs,
            next_target=step.next,
            usage=answer.usage.for_step() if answer.usage.ai_calls else None,
            reused_from=answer.reused_from,
            reuse_key=answer.reuse_key,
        )


def model_fields(step: Any) -> dict[str, Any]:
    """The templated fields of a step that asks a model (`ai`, `agent`)."""
    fields: dict[str, Any] = {"model": step.model, "models": step.models}
    if step.messages is not None:
        fields["messages"] = [m.model_dump() for m in step.messages]
    if step.prompt is not None:
        fields["prompt"] = step.prompt
    return fields


def first_messages(step: Any) -> list[dict[str, Any]]:
    """`messages`, or `prompt` as one user message."""
    if step.messages is not None:
        return [m.model_dump() for m in step.messages]
    return [{"role": "user", "content": step.prompt}]


@dataclass
class Answer:
    """A model's answer after fallbacks and repairs, with what all the tries cost."""

    result: AIResult
    usage: Usage = field(default_factory=Usage)
    reused_from: str | None = None
    reuse_key: str | None = None


async def ask(
    run: StepRun,
    step: Any,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None = None,
    path: str | None = None,
    slots: list[Any] | None = None,
    label: str | None = None,
) -> Answer:
    """One answer: ``step.model``, then each of ``step.models`` when a model fails for a
    reason another may not share; an answer failing ``response_format`` is asked again with
    the error (``repair_attempts``). Budgets apply before and after every call; a rerun takes
    a result its source recorded for the same rendered request."""
    asking = _Asking(run, step, messages, tools, path, slots, label)
    for position, model in enumerate(asking.chain):
        conversation: list[dict[str, Any]] = list(asking.messages)
        repairs_left = step.repair_attempts
        while True:
            request = asking.request(model, conversation)
            reused = run.reused(CALL_LLM, request)
            if reused is not None:  # a rerun: the source paid for this answer already
                answer = AIResult.model_validate(reused.result)
                return Answer(answer, Usage(), reused.source, reused.key)
            outcome = await asking.call(request)
            if isinstance(outcome, AIResult):
                return asking.answered(outcome, model)
            if asking.repairs_it(outcome, repairs_left):
                repairs_left -= 1
                conversation = repaired(conversation, outcome)
                continue
            if outcome.falls_through and position + 1 < len(asking.chain):
                break  # the next model
            raise StepFailed(outcome.error, outcome.type, usage=asking.spent.for_step())
    raise AssertionError("unreachable: the last model either answers or raises")


def repaired(conversation: list[dict[str, Any]], failure: _Failure) -> list[dict[str, Any]]:
    """The conversation again, with the invalid answer and what was wrong with it."""
    return [
        *conversation,
        {"role": "assistant", "content": str(failure.details.get("text", ""))},
        {"role": "user", "content": REPAIR_PROMPT.format(error=failure.error)},
    ]


class _Asking:
    """One step's tries at an answer: what every try sends, and what the tries cost."""

    def __init__(
        self,
        run: StepRun,
        step: Any,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        path: str | None,
        slots: list[Any] | None,
        label: str | None,
    ) -> None:
        substitutor = VariableSubstitutor(run.variables, strict_indexes=run.strict_indexes)
        fields = {"model": step.model, "models": list(step.models)}
        if slots is None:  # a step's own messages: templates
            rendered, slots = substitutor.render_deferred({**fields, "messages": messages})
        else:  # an agent's conversation: rendered once; what models and tools said is data
            rendered = {**substitutor.render(fields), "messages": messages}
        self.chain = [str(rendered["model"]), *(str(m) for m in rendered["models"])]
        self.messages: list[dict[str, Any]] = rendered["messages"]
        self.options = run.activity_options(step)
        if label is not None:
            self.options["summary"] = label
        self.response_format = (
            step.response_format.model_dump(by_alias=True) if step.response_format else None
        )
        self._run, self._step, self._tools, self._path, self._slots = run, step, tools, path, slots
        self.spent = Usage()
        self.attempts: list[dict[str, Any]] = []
        self.repairs = 0

    def request(self, model: str, conversation: list[dict[str, Any]]) -> AIRequest:
        run, step = self._run, self._step
        return AIRequest(
            execution_id=run.execution_id,
            step_id=step.id,
            workflow_id=run.input.definition.key,
            model=model,
            messages=conversation,
            temperature=step.temperature,
            max_tokens=step.max_tokens,
            response_format=self.response_format,
            deferred=slot_models(self._slots or []),
            path=self._path or run.path,
            seq=run.seq,
            tools=self._tools,
        )

    async def call(self, request: AIRequest) -> AIResult | _Failure:
        """One call, within the budget: the answer, or why the call failed (counted)."""
        run = self._run
        await run.budget_gate()
        request.report_when_cancelled = versions.patched(PATCH_COUNT_CANCELLED_CALLS)
        try:
            return await run.call_activity(CALL_LLM, request, AIResult, self.options)
        except ActivityError as err:
            if request.report_when_cancelled and is_cancelled_exception(err):
                run.release_budget()  # stopped before the provider answered
                raise
            failure = _failure(err, self._step.id)
        usage = failure.details.get("usage")
        self.spent.add(usage)
        run.account(usage)
        self.attempts.append(_attempt(request.model, "failed", failure.error, usage))
        return failure

    def repairs_it(self, failure: _Failure, repairs_left: int) -> bool:
        """An answer that failed its format is asked again, while repairs are left."""
        if (
            failure.type == FailureType.INVALID_MODEL_OUTPUT
            and repairs_left > 0
            and versions.patched(PATCH_REPAIRS)
        ):
            self._run.check_budget_after()
            self.repairs += 1
            return True
        return False

    def answered(self, result: AIResult, model: str) -> Answer:
        """The answer, with what every try of the step cost (and the tries, if several)."""
        usage = result.usage_record()
        self.spent.add(usage)
        self._run.account(usage)
        if result.cancelled:  # the step was cancelled, but the answer is paid for
            raise asyncio.CancelledError(f"cancelled after {model} answered")
        self.attempts.append(_attempt(result.model or model, "success", None, usage))
        self._run.check_budget_after()
        spent = self.spent
        result.usage = AIUsage(
            prompt_tokens=spent.prompt_tokens,
            completion_tokens=spent.completion_tokens,
            total_tokens=spent.total_tokens,
        )
        result.cost = spent.cost_usd if spent.cost_usd else result.cost
        if len(self.chain) > 1 or self.repairs or len(self.attempts) > 1:
            result.attempts = self.attempts
            result.repairs = self.repairs
        return Answer(result, spent, None, None)


@dataclass
class _Failure:
    type: str
    error: str
    details: dict[str, Any]
    falls_through: bool


def _failure(err: ActivityError, step_id: str) -> _Failure:
    described = describe_failure(err, step_id)
    cause = err.cause
    details: dict[str, Any] = {}
    if isinstance(cause, ApplicationError) and cause.details:
        first = cause.details[0]
        details = first if isinstance(first, dict) else {}
    falls = described.type in FALLBACK_TYPES or details.get("fallback") in FALLBACK_REASONS
    return _Failure(described.type, described.message, details, falls)


def _attempt(
    model: str, status: str, error: str | None, usage: dict[str, Any] | None
) -> dict[str, Any]:
    attempt: dict[str, Any] = {"model": model, "status": status}
    if error is not None:
        attempt["error"] = error
    if usage:
        attempt["usage"] = usage
    return attempt
