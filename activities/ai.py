"""AIClient: chat completions through OpenRouter, or a provider named in ``AI_PROVIDERS``
(``model: "<name>:<model>"``, activities/providers.py), streamed (activities/ai_stream.py).

The activity reads the API key from the worker's settings (a provider's: a worker secret);
the key never travels in workflow input, history or logs. Errors are classified for
Temporal: 408/429/5xx/timeouts and broken answers (or streams) are retried (Retry-After
honoured through ``next_retry_delay``); 400/401/402/403 fail at once with the provider's own
message.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import SecretStr
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.ai_stream import ChunkFolder, StreamProgress, broken_stream, sse_data
from activities.failures import (
    Mapped,
    classify,
    is_retryable_status,
    parse_retry_after,
    permanent,
    retryable,
)
from activities.heartbeat import with_heartbeats
from activities.logs import WorkflowLogger, carried_log
from activities.metrics import ModelLabels, record_ai_usage
from activities.providers import OPENROUTER, Endpoint, ProviderConfig, route
from activities.rate_limits import RateLimits
from activities.secrets import SecretStore, fill_secrets
from activities.ssrf import DEFAULT_PORTS
from workflows.errors import FailureType, ValueLimitError
from workflows.flow.turns import estimated_tokens
from workflows.input_schema import VIOLATION, value_problems
from workflows.messages import CALL_LLM, AIRequest, AIResult, AIUsage
from workflows.values import DEFAULT_MAX_VALUE_BYTES, parse_json

_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)
# A tool call's arguments as JSON text, at most: the engine's default limit for a value.
MAX_TOOL_ARGUMENT_BYTES = DEFAULT_MAX_VALUE_BYTES


# How a failed call to the provider crosses into Temporal (activities/failures.py).
POST_FAILURES = (
    Mapped(
        httpx.TimeoutException,
        FailureType.PROVIDER_RETRYABLE,
        "the AI provider did not answer in time",
        retry=True,
    ),
)
POST_FALLBACK = Mapped(
    httpx.TransportError,
    FailureType.PROVIDER_RETRYABLE,
    "cannot reach the AI provider at {url}: {kind}",
    retry=True,
)


# How long a cancelled call waits for the answer of a request already sent (see _answer):
# long enough for an answer that is nearly there to be counted, short enough that a cancel
# still feels immediate. A call cut off later may still be billed (docs/ai.md says so).
CANCELLED_CALL_GRACE_SECONDS = 3.0


class AIClient:
    """OpenRouter chat completions as a Temporal activity."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        api_key: SecretStr | None,
        secrets: SecretStore,
        app_title: str = "workflow-engine",
        referer: str | None = None,
        logs: WorkflowLogger | None = None,
        model_labels: ModelLabels | None = None,
        limits: RateLimits | None = None,
        providers: dict[str, ProviderConfig] | None = None,
    ) -> None:
        self._http = http
        self._limits = limits  # AI_RATE_LIMITS
        self._model_labels = model_labels or ModelLabels()
        self._logs = logs
        key = api_key.get_secret_value() if api_key is not None else None
        self._openrouter = Endpoint(OPENROUTER, base_url, key, None, app_title, referer)
        self._providers = providers or {}
        self._secrets = secrets

    def _endpoint(self, provider: str | None) -> Endpoint:
        """Where a call goes, with its key; a call no configured provider can take fails."""
        if provider is None:
            if not self._openrouter.api_key:
                raise permanent(
                    "OPENROUTER_API_KEY is not set on the worker: set it in the worker's "
                    "environment and run the execution again",
                    FailureType.MISSING_CONFIGURATION,
                )
            return self._openrouter
        config = self._providers.get(provider)
        if config is None:
            known = ", ".join(sorted(self._providers)) or "none"
            raise permanent(
                f"no AI provider named {provider!r} on this worker; configured in "
                f"AI_PROVIDERS: {known}",
                FailureType.MISSING_CONFIGURATION,
            )
        key = None
        if config.api_key_secret is not None:
            key = self._secrets.get(config.api_key_secret)
            if key is None:
                raise permanent(
                    f"provider {provider!r} takes its API key from the worker secret "
                    f"{config.api_key_secret!r}, which the worker does not hold",
                    FailureType.MISSING_CONFIGURATION,
                )
        return Endpoint(provider, config.base_url, key, config)

    @activity.defn(name=CALL_LLM)
    async def call_llm(self, request: AIRequest) -> AIResult:
        """Activity: one chat completion; the answer is parsed and checked when asked."""
        if route(request.model).provider is None and not self._openrouter.api_key:
            self._endpoint(None)  # fails at once, naming the missing key
        # The workflow rendered {"model", "messages"}: its secret slots are located from there.
        fields = fill_secrets(
            {"model": request.model, "messages": [dict(m) for m in request.messages]},
            request.deferred,
            self._secrets,
            request.workflow_id,
            request.step_id,
        )
        target = route(str(fields["model"]))
        endpoint = self._endpoint(target.provider)
        provider = httpx.URL(endpoint.url)
        # Where an ai step's secrets go: a secret bound to hosts must name the provider's.
        port = provider.port or DEFAULT_PORTS.get(provider.scheme, 0)
        self._secrets.check_host(request.deferred, provider.host, port, request.step_id)
        body = self._request_body(request, target.model, fields["messages"])
        progress = StreamProgress(
            request.seq, request.path, self._secrets.redact, self._secrets.unsafe_tail
        )
        call = _Call(endpoint, endpoint.streamed(body), progress)
        # The call's turn under AI_RATE_LIMITS (the run usually waited for it already).
        limits = self._limits
        turn = await limits.ai_turn(request, estimated_tokens(request)) if limits else None
        async with carried_log(self._logs, request.log) as log:
            try:
                answer, cancelled = await self._answer(call, request.report_when_cancelled)
                answer = endpoint.priced(answer, target.model)
                if limits is not None:
                    await limits.settle(turn, total_tokens(answer))
                # Tokens are spent even if checks fail.
                record_ai_usage(answer, request.model, self._model_labels)
                if cancelled:  # no checks: the step is over; what the answer cost still counts
                    return self._paid_but_cancelled(request, answer)
                try:
                    result = await asyncio.to_thread(self._result, request, answer)  # checks
                except ApplicationError as err:
                    if err.type != FailureType.INVALID_MODEL_OUTPUT:
                        raise
                    # The workflow asks again with the error (repair_attempts): it needs the
                    # answer to show the model, and what it cost (tokens are spent all the same).
                    raise permanent(
                        err.message, err.type, invalid_answer(request, answer)
                    ) from None
            except ApplicationError as err:
                # Provider messages and answer snippets may quote the key or a filled-in secret.
                raise self._redacted(err) from None
            result = self._secrets.redact_model(result)
            result.log_written = await log.written()
        return result

    async def _answer(self, call: _Call, report: bool) -> tuple[dict[str, Any], bool]:
        """The provider's answer, and whether the activity was cancelled meanwhile.

        With ``report``, a cancel that arrives once the request is out does not abandon it:
        the provider bills the call whether or not we read the answer, so the activity waits
        (at most CANCELLED_CALL_GRACE_SECONDS) for it and hands back what it cost."""
        beats = call.progress.details
        if not report:
            return await with_heartbeats(self._post(call), details=beats), False
        posting = asyncio.ensure_future(self._post(call))
        try:
            return await with_heartbeats(asyncio.shield(posting), details=beats), False
        except asyncio.CancelledError:
            details = activity.cancellation_details()
            if details is None or not details.cancel_requested:
                posting.cancel()  # a timeout or a shutdown: hang up, Temporal retries the call
                raise
            try:
                answer = await asyncio.wait_for(posting, CANCELLED_CALL_GRACE_SECONDS)
            except Exception:  # failed or still pending: nothing known to be paid
                raise asyncio.CancelledError() from None
            return answer, True

    def _paid_but_cancelled(self, request: AIRequest, answer: dict[str, Any]) -> AIResult:
        usage, cost = usage_of(answer)
        model = answer.get("model") or request.model
        return AIResult(text="", model=model, usage=usage, cost=cost, cancelled=True)

    def _redacted(self, err: ApplicationError) -> ApplicationError:
        message = self._secrets.redact(err.message)
        details = [self._secrets.redact(d) for d in err.details]
        if message == err.message and details == list(err.details):
            return err
        return ApplicationError(
            message,
            *details,
            type=err.type,
            non_retryable=err.non_retryable,
            next_retry_delay=err.next_retry_delay,
        )

    def _request_body(
        self, request: AIRequest, model: str, messages: list[dict[str, Any]]
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": model,
            "messages": messages,
        }
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.max_tokens is not None:
            body["max_tokens"] = request.max_tokens
        fmt = request.response_format
        if fmt and fmt.get("type") == "json_schema":
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": fmt.get("name", "response"),
                    "strict": fmt.get("strict", True),
                    "schema": fmt["schema"],
                },
            }
        elif fmt:
            body["response_format"] = {"type": "json_object"}
        if request.tools:
            body["tools"] = request.tools  # an agent turn (OpenAI function-calling format)
        return body

    async def _post(self, call: _Call) -> dict[str, Any]:
        """The provider's answer: streamed (folded into one answer), or plain JSON."""
        url = call.endpoint.url
        try:
            async with self._http.stream(
                "POST", url, json=call.body, headers=call.endpoint.headers()
            ) as response:
                streamed = response.headers.get("content-type", "").startswith("text/event-stream")
                if response.status_code == 200 and streamed:
                    return await self._read_stream(call, response)
                await response.aread()
        except httpx.TransportError as err:
            raise classify(err, POST_FAILURES, POST_FALLBACK, url=url) from None
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if response.status_code != 200:
            raise self._status_error(call, response.status_code, answer, response.text, retry_after)
        if not isinstance(answer, dict):
            raise retryable(
                "the AI provider answered with malformed JSON", FailureType.PROVIDER_RETRYABLE
            )
        if isinstance(answer.get("error"), dict):
            code = answer["error"].get("code")
            status = code if isinstance(code, int) else 502
            raise self._status_error(call, status, answer, "", retry_after)
        return answer

    async def _read_stream(self, call: _Call, response: httpx.Response) -> dict[str, Any]:
        """A streamed answer; an error event mid-stream fails it as the same error would."""
        folder = ChunkFolder(call.progress)
        async for data in sse_data(response):
            error = folder.add(data)
            if error is not None:
                code = error["error"].get("code")
                status = code if isinstance(code, int) else 502
                raise self._status_error(call, status, error, "", None)
            if folder.done:
                break
        if not folder.complete:
            raise broken_stream()
        call.progress.end()  # the answer's last words, for readers of the stream
        return folder.answer()

    def _status_error(
        self, call: _Call, status: int, answer: Any, text: str, retry_after: Any
    ) -> Exception:
        message = provider_message(answer) or text.strip()[:300] or "no error message"
        described = f"the AI provider answered {status}: {message}"
        if is_retryable_status(status) or (status == 402 and retry_after is not None):
            return retryable(described, FailureType.PROVIDER_RETRYABLE, retry_after)
        hint = {401: f" (check {call.endpoint.key_hint})"}.get(status, "")
        if status == 402 and call.endpoint.config is None:
            hint = " (add credits to the OpenRouter account)"
        # Which failures another model may not share (the `models` fallback): docs/ai.md.
        reason = fallback_reason(status, message)
        details = [{"fallback": reason}] if reason else []
        return permanent(described + hint, FailureType.PROVIDER_ERROR, *details)

    def _result(self, request: AIRequest, answer: dict[str, Any]) -> AIResult:
        choices = answer.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise retryable(
                "the AI provider answered with no choices", FailureType.PROVIDER_RETRYABLE
            )
        choice = choices[0]
        message: dict[str, Any] = choice.get("message") or {}
        if not isinstance(message, dict):
            message = {}
        text = message.get("content") or ""
        if not isinstance(text, str):
            text = json.dumps(text)
        calls = tool_calls(message.get("tool_calls"), request.tools or [])
        parsed: Any = None
        if request.response_format and not calls:  # tool calls come before the final answer
            parsed = parse_json_answer(text, request.response_format)
        usage, cost = usage_of(answer)
        return AIResult(
            text=text,
            json_=parsed,
            model=answer.get("model") or request.model,
            usage=usage,
            cost=cost,
            finish_reason=choice.get("finish_reason"),
            tool_calls=calls or None,
        )


@dataclass
class _Call:
    """One request to a provider: where it goes, what it sends, the answer so far."""

    endpoint: Endpoint
    body: dict[str, Any]
    progress: StreamProgress


# Provider answers another model may not share: the model is unknown or down, the
# prompt is over its context length, its moderation refused. Keys are words of the message.
_MODEL_GONE = ("not a valid model", "model not found", "no endpoints found", "is not available")
_CONTEXT = ("context length", "context_length", "maximum context", "too many tokens")


def total_tokens(answer: dict[str, Any]) -> int | None:
    """The tokens the provider counted for an answer, if it said."""
    usage, _ = usage_of(answer)
    return usage.total_tokens if usage is not None else None


def usage_of(answer: dict[str, Any]) -> tuple[AIUsage | None, float | None]:
    """The tokens an answer reports (None if it reports none) and its cost in USD, if said."""
    raw = answer.get("usage")
    if not isinstance(raw, dict) or not raw:
        return None, None
    usage = AIUsage(
        prompt_tokens=raw.get("prompt_tokens"),
        completion_tokens=raw.get("completion_tokens"),
        total_tokens=raw.get("total_tokens"),
    )
    cost = raw.get("cost")
    return usage, float(cost) if isinstance(cost, int | float) else None


def fallback_reason(status: int, message: str) -> str | None:
    """Why a permanent provider failure lets the next model try (None: it does not)."""
    text = message.lower()
    if status == 404 or any(words in text for words in _MODEL_GONE):
        return "model_unavailable"
    if any(words in text for words in _CONTEXT):
        return "context_length"
    if status == 403:
        return "moderation"
    return None


def invalid_answer(request: AIRequest, answer: dict[str, Any]) -> dict[str, Any]:
    """What a repair needs of an answer that failed ``response_format``: its text, the model
    that gave it and what it cost."""
    choices = answer.get("choices")
    first = choices[0] if isinstance(choices, list) and choices else None
    message = first.get("message") if isinstance(first, dict) else None
    if not isinstance(message, dict):
        message = {}
    usage = answer.get("usage")
    if not isinstance(usage, dict):
        usage = {}
    return {
        "text": str(message.get("content") or "")[:20_000],
        "model": answer.get("model") or request.model,
        "usage": {
            key: usage.get(key)
            for key in ("prompt_tokens", "completion_tokens", "total_tokens", "cost")
            if isinstance(usage.get(key), int | float)
        },
    }


def tool_calls(raw: Any, tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tools an agent turn's answer calls: ``{"id", "name", "raw", "arguments"}``, plus
    ``"error"`` when the arguments are not JSON or fail the tool's ``parameters`` schema (the
    agent sends that back to the model as the tool's answer; it never fails the step)."""
    if not isinstance(raw, list):
        return []
    schemas = {
        str(t.get("function", {}).get("name")): t.get("function", {}).get("parameters")
        for t in tools
        if isinstance(t, dict)
    }
    calls = []
    for index, item in enumerate(raw):
        function = item.get("function") if isinstance(item, dict) else None
        if not isinstance(function, dict):
            continue
        name = str(function.get("name") or "")
        text = function.get("arguments")
        text = text if isinstance(text, str) else json.dumps(text or {})
        call: dict[str, Any] = {
            "id": str(item.get("id") or f"call_{index}"),
            "name": name,
            "raw": text,
            "arguments": None,
        }
        arguments, problem = call_arguments(text)
        if problem is not None:
            call["error"] = problem
            if arguments is _OVER_LIMITS:
                # Neither history nor the next turn carries what broke the limits.
                call["raw"] = "{}"
            calls.append(call)
            continue
        call["arguments"] = arguments
        if name not in schemas:
            call["error"] = f"there is no tool named {name!r}; use one of {', '.join(schemas)}"
        elif not isinstance(arguments, dict):
            call["error"] = "the arguments must be a JSON object"
        elif isinstance(schemas[name], dict):
            problems = value_problems(schemas[name], arguments)
            if problems:
                first = problems[0]
                call["error"] = (
                    f"the arguments do not match the tool's parameters at {first.path}: "
                    f"{first.message}"
                )
        calls.append(call)
    return calls


_OVER_LIMITS = object()  # call_arguments' value for arguments past the engine's value limits


def call_arguments(text: str) -> tuple[Any, str | None]:
    """A tool call's arguments, or why they cannot be used (told to the model as the tool's
    answer). They become a run's values (a child's inputs, a request's fields), so they are
    held to the engine's limits for any value (workflows/values.py): too large, too deep, NaN
    or a lone surrogate is an invalid call, not a failed step."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_TOOL_ARGUMENT_BYTES:
        return _OVER_LIMITS, (
            f"the arguments are {size:,} bytes; the limit is {MAX_TOOL_ARGUMENT_BYTES:,} bytes: "
            "send less"
        )
    try:
        return parse_json(text or "{}"), None
    except ValueLimitError as err:
        return _OVER_LIMITS, f"the arguments cannot be used: {err.reason}; send a simpler object"
    except json.JSONDecodeError as err:
        return None, f"the arguments are not JSON ({err.msg}); send a JSON object"


def provider_message(answer: Any) -> str | None:
    """OpenRouter's error body is {"error": {"code", "message", "metadata"}}."""
    if not isinstance(answer, dict) or not isinstance(answer.get("error"), dict):
        return None
    error = answer["error"]
    message = str(error.get("message") or "").strip()
    metadata = error.get("metadata")
    if isinstance(metadata, dict):
        reasons = metadata.get("reasons")
        if isinstance(reasons, list) and reasons:
            message += f" (reasons: {', '.join(map(str, reasons))})"
        flagged = metadata.get("flagged_input")
        if isinstance(flagged, str) and flagged:
            message += f" (flagged input: {flagged[:100]!r})"
        raw = metadata.get("raw")
        if isinstance(raw, str) and raw and not reasons:
            message += f" ({raw[:200]})"
    return message or None


def parse_json_answer(text: str, response_format: dict[str, Any]) -> Any:
    """Parse a JSON answer (tolerating a ```json fence) and check it against the schema."""
    fenced = _FENCE.match(text)
    candidate = fenced.group(1) if fenced else text
    try:
        parsed = json.loads(candidate)
    except json.JSONDecodeError as err:
        raise retryable(
            f"the model's answer is not valid JSON ({err.msg} at character {err.pos}): "
            f"{text[:200]!r}",
            FailureType.INVALID_MODEL_OUTPUT,
        ) from None
    schema = response_format.get("schema")
    if schema:
        # workflows/input_schema.py: no $ref retrieval, RE2 patterns, a time budget.
        problems = value_problems(schema, parsed)
        if problems:
            first = problems[0]
            if first.code != VIOLATION:
                # The schema itself cannot be applied: asking the model again cannot help.
                raise permanent(
                    f"the response schema cannot be applied: {first.message}",
                    FailureType.INVALID_REQUEST,
                )
            raise retryable(
                f"the model's answer does not match the response schema at {first.path}: "
                f"{first.message}",
                FailureType.INVALID_MODEL_OUTPUT,
            )
    return parsed
