"""`http`: an HTTP request, an activity; 2xx (or ``expect_status``) succeeds."""

from __future__ import annotations

import hashlib
import re
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from workflows.errors import Problem
from workflows.kinds.base import StepKind, StepOutcome, StepRun, register
from workflows.kinds.common import ActivityMixin, FlowMixin, StepBase
from workflows.kinds.slots import slot_models
from workflows.messages import SEND_HTTP_REQUEST, HTTPRequest, HTTPResult
from workflows.templating import VariableSubstitutor, to_text
from workflows.value_types import DYN, INT_T, STRING_T, Type, Typer, map_of, object_of

HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]

# Request headers an `http` step may not set (checked here at save and again in the
# activity): the transport derives them from the URL and the body. `Host` would address
# another virtual host than the one the SSRF guard checked; the others frame the message or
# the connection, and a step setting them could desynchronise it (request smuggling) or hang.
FORBIDDEN_REQUEST_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "proxy-connection",
        "upgrade",
        "te",
        "trailer",
        "expect",
        "http2-settings",
    }
)
# What an http step binds (HTTPResult.as_output): `json` when the answer was JSON, else `text`.
RESULT_TYPE = object_of(
    {"status": INT_T, "headers": map_of(STRING_T, STRING_T), "json": DYN, "text": STRING_T}
)
# RFC 9110 field-name: a token.
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


class HTTPStep(StepBase, FlowMixin, ActivityMixin):
    """An HTTP request; 2xx (or ``expect_status``) succeeds, 5xx/429 are retried."""

    # How the console's graph words the step (docs/console.md).
    model_config = ConfigDict(json_schema_extra={"x-label": "{method|GET} {url}"})

    type: Literal["http"]
    method: HttpMethod = "GET"
    url: str = Field(min_length=1, max_length=8192)
    headers: dict[str, str] = Field(default_factory=dict)
    query: dict[str, Any] = Field(default_factory=dict)
    json_body: Any = Field(None, alias="json", description="JSON request body (templated).")
    body: str | None = Field(None, description="Raw request body (templated).")
    expect_status: int | list[int] | None = Field(
        None, description="Accepted status code(s); default any 2xx."
    )

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_body(self) -> HTTPStep:
        if self.json_body is not None and self.body is not None:
            raise ValueError("give at most one of 'json' or 'body'")
        return self

    def accepts(self, status: int) -> bool:
        if self.expect_status is None:
            return 200 <= status < 300
        if isinstance(self.expect_status, int):
            return status == self.expect_status
        return status in self.expect_status


def header_problem(name: str, value: str | None = None) -> str | None:
    """Why an `http` step may not send this header, or None (shared with the activity)."""
    if not HEADER_NAME.fullmatch(name):
        return f"{name!r} is not a valid header name (letters, digits and !#$%&'*+.^_`|~-)"
    if name.lower() in FORBIDDEN_REQUEST_HEADERS:
        return (
            f"the {name!r} header is set by the engine from the URL and the body; a step may "
            f"not set {', '.join(sorted(FORBIDDEN_REQUEST_HEADERS))}"
        )
    if value is not None and any(char in value for char in "\r\n\0"):
        return f"the value of the {name!r} header holds a line break or NUL character"
    return None


def idempotency_key(execution_id: str, step_id: str, seq: int) -> str:
    """Stable across retries of one step visit; distinct for each visit of a loop."""
    digest = hashlib.sha256(f"{execution_id}\x1f{step_id}\x1f{seq}".encode()).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"


def build_request(
    spec: Any,
    substitutor: VariableSubstitutor,
    run: StepRun,
    step_id: str,
    key_name: str,
    path: str,
) -> HTTPRequest:
    """The rendered request of an `http` step or an agent's http tool (``spec`` has the
    fields ``method``, ``url``, ``headers``, ``query``, ``json_body``, ``body``,
    ``expect_status``); ``key_name`` names the visit in its idempotency key."""
    fields = {
        "url": spec.url,
        "headers": dict(spec.headers),
        "query": dict(spec.query),
        "json": spec.json_body,
        "body": spec.body,
    }
    rendered, slots = substitutor.render_deferred(fields)
    expect = spec.expect_status
    return HTTPRequest(
        execution_id=run.execution_id,
        step_id=step_id,
        workflow_id=run.input.definition.key,
        method=spec.method,
        url=to_text(rendered["url"]),
        headers={str(k): to_text(v) for k, v in rendered["headers"].items()},
        query=rendered["query"],
        json_body=rendered["json"],
        has_json=spec.json_body is not None,
        body=None if rendered["body"] is None else to_text(rendered["body"]),
        expect_status=[expect] if isinstance(expect, int) else expect,
        idempotency_key=idempotency_key(run.execution_id, key_name, run.seq),
        deferred=slot_models(slots),
        path=path,
        seq=run.seq,
    )


@register
class HTTPKind(StepKind[HTTPStep]):
    type = "http"
    model = HTTPStep
    waits = True
    carries_log = True
    secrets = True

    def templated(self, step: HTTPStep) -> dict[str, Any]:
        return {
            "url": step.url,
            "headers": step.headers,
            "query": step.query,
            "json": step.json_body,
            "body": step.body,
        }

    def result_types(self, step: HTTPStep, typer: Typer) -> dict[str, Type]:
        return {step.output: RESULT_TYPE} if step.output else {}

    def problems(self, step: HTTPStep, where: str) -> list[Problem]:
        problems = []
        for name, value in step.headers.items():
            problem = header_problem(name, value)
            if problem is not None:
                problems.append(
                    Problem(
                        f"{where}.headers.{name}",
                        f"step '{step.id}': {problem}",
                        code="invalid_header",
                    )
                )
        return problems

    async def execute(self, step: HTTPStep, run: StepRun) -> StepOutcome:
        substitutor = VariableSubstitutor(run.variables, strict_indexes=run.strict_indexes)
        request = build_request(step, substitutor, run, step.id, step.id, run.path)
        reused = run.reused(SEND_HTTP_REQUEST, request)
        if reused is not None:  # a rerun: the source made this very request already
            answer = HTTPResult.model_validate(reused.result)
            outputs = {step.output: answer.as_output()} if step.output else {}
            return StepOutcome(outputs, step.next, reused_from=reused.source, reuse_key=reused.key)
        result = await run.call_activity(
            SEND_HTTP_REQUEST, request, HTTPResult, run.activity_options(step)
        )
        outputs = {step.output: result.as_output()} if step.output else {}
        return StepOutcome(output_vars=outputs, next_target=step.next)
