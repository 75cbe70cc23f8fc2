"""`ai`: a chat completion through OpenRouter (or any OpenAI-compatible server), an activity."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator
from temporalio import workflow

from workflows.errors import Problem
from workflows.input_schema import schema_problems
from workflows.kinds.base import StepKind, StepOutcome, StepRun, register
from workflows.kinds.common import ActivityMixin, FlowMixin, Model, StepBase
from workflows.kinds.slots import slot_models
from workflows.messages import CALL_LLM, AIRequest, AIResult, request_key
from workflows.templating import VariableSubstitutor


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

    type: Literal["ai"]
    model: str = Field(min_length=1, max_length=200)
    messages: list[ChatMessage] | None = Field(None, min_length=1)
    prompt: str | None = Field(
        None, max_length=1_000_000, description="Shorthand: one user message."
    )
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1, le=1_000_000)
    response_format: ResponseFormat | None = None

    @model_validator(mode="after")
    def _one_of_messages_or_prompt(self) -> AIStep:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("give exactly one of 'messages' or 'prompt'")
        return self


@register
class AIKind(StepKind[AIStep]):
    type = "ai"
    model = AIStep
    waits = True
    carries_log = True
    secrets = True

    def templated(self, step: AIStep) -> dict[str, Any]:
        fields: dict[str, Any] = {"model": step.model}
        if step.messages is not None:
            fields["messages"] = [m.model_dump() for m in step.messages]
        if step.prompt is not None:
            fields["prompt"] = step.prompt
        return fields

    def problems(self, step: AIStep, where: str) -> list[Problem]:
        schema = getattr(step.response_format, "schema_", None)
        if schema is None:
            return []
        return schema_problems(schema, f"{where}.response_format.schema")

    async def execute(self, step: AIStep, run: StepRun) -> StepOutcome:
        fields: dict[str, Any] = {"model": step.model}
        if step.messages is not None:
            fields["messages"] = [m.model_dump() for m in step.messages]
        else:
            fields["messages"] = [{"role": "user", "content": step.prompt}]
        rendered, slots = VariableSubstitutor(run.variables).render_deferred(fields)
        response_format = (
            step.response_format.model_dump(by_alias=True) if step.response_format else None
        )
        request = AIRequest(
            execution_id=run.execution_id,
            step_id=step.id,
            model=str(rendered["model"]),
            messages=rendered["messages"],
            temperature=step.temperature,
            max_tokens=step.max_tokens,
            response_format=response_format,
            deferred=slot_models(slots),
            log=run.log,
            path=run.path,
            seq=run.seq,
        )
        key = request_key(CALL_LLM, request)
        reused = run.reused(key)
        if reused is not None:  # a rerun: the source paid for this answer already
            answer = AIResult.model_validate(reused.result)
            outputs = {step.output: answer.as_output()} if step.output else {}
            return StepOutcome(outputs, step.next, reused_from=reused.source, reuse_key=key)
        result: AIResult = await workflow.execute_activity(
            CALL_LLM, request, result_type=AIResult, **run.activity_options(step)
        )
        outputs = {step.output: result.as_output()} if step.output else {}
        return StepOutcome(
            output_vars=outputs,
            next_target=step.next,
            usage=result.usage_record(),
            logged=result.log_written,
        )
