"""AI providers: OpenRouter (the default) and named OpenAI-compatible servers (``AI_PROVIDERS``).

A step's ``model`` is ``<provider>:<model>`` to reach a configured provider, else an
OpenRouter model id as before. OpenRouter's own ids may hold a colon (``vendor/model:free``),
but always after a ``/``: a prefix holding a ``/`` is never a provider name. The worker reads
``AI_PROVIDERS`` to route calls; the API reads the same setting to refuse, at save, a model
naming no configured provider, or a step whose cost it cannot know in a run with a
``max_cost_usd`` budget (docs/ai.md).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from workflows.errors import Problem
from workflows.kinds import Step
from workflows.step_graph import step_lists

OPENROUTER = "openrouter"  # `openrouter:<model>` names the default explicitly
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


class ModelPrice(BaseModel):
    """USD per million tokens, for providers that report no cost."""

    model_config = ConfigDict(extra="forbid")

    prompt_per_mtok: float = Field(ge=0)
    completion_per_mtok: float = Field(ge=0)


class ProviderConfig(BaseModel):
    """One OpenAI-compatible chat-completions server."""

    model_config = ConfigDict(extra="forbid")

    base_url: str
    # The name of a worker secret (SECRET_ENV_PREFIX or SECRETS_FILE) holding the API key;
    # none: requests carry no Authorization header (a local server).
    api_key_secret: str | None = None
    prices: dict[str, ModelPrice] = Field(default_factory=dict)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        return value.rstrip("/")

    def cost(self, model: str, usage: dict[str, Any] | None) -> float | None:
        """What a call cost from ``prices`` (None: no price for the model, or no usage)."""
        price = self.prices.get(model)
        if price is None or not isinstance(usage, dict):
            return None
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        if not isinstance(prompt, int) or not isinstance(completion, int):
            return None
        return (prompt * price.prompt_per_mtok + completion * price.completion_per_mtok) / 1e6


def parse_providers(text: str | None) -> dict[str, ProviderConfig]:
    """``AI_PROVIDERS`` as named configs; ValueError says what does not parse."""
    if text is None or not text.strip():
        return {}
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"is not JSON ({err.msg} at character {err.pos})") from None
    if not isinstance(raw, dict):
        raise ValueError('must be a JSON object: {"<name>": {"base_url": ...}}')
    providers = {}
    for name, config in raw.items():
        if not _NAME.match(name) or name == OPENROUTER:
            raise ValueError(
                f"provider name {name!r} must be 1-32 of a-z, 0-9, '_', '-' (and not "
                f"{OPENROUTER!r}, the default)"
            )
        try:
            providers[name] = ProviderConfig.model_validate(config)
        except ValidationError as err:
            first = err.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ValueError(f"provider {name!r}: {where}: {first['msg']}") from None
    return providers


@dataclass(frozen=True)
class Route:
    """Where one model string goes: ``provider`` None is OpenRouter."""

    provider: str | None
    model: str


def route(model: str) -> Route:
    """``<provider>:<model>`` or an OpenRouter model (see the module docstring)."""
    prefix, sep, rest = model.partition(":")
    if not sep or "/" in prefix or not _NAME.match(prefix):
        return Route(None, model)
    return Route(None if prefix == OPENROUTER else prefix, rest)


def _model_fields(step: Step) -> Iterator[tuple[str, str]]:
    model, models = getattr(step, "model", None), getattr(step, "models", None)
    if step.type not in ("ai", "agent") or not isinstance(model, str):
        return
    yield "model", model
    for index, fallback in enumerate(models or []):
        yield f"models[{index}]", str(fallback)


def provider_problems(
    steps: list[Step], providers: dict[str, ProviderConfig], cost_budget: bool
) -> list[Problem]:
    """Models naming no configured provider, and (with a ``max_cost_usd`` budget) models of
    a provider that reports no cost with no price for them. A templated model is known only
    when the run renders it: the worker checks it then."""
    problems = []
    for steps_list in step_lists(steps, {}):
        for index, step in enumerate(steps_list.steps):
            for name, model in _model_fields(step):
                if "{" in model:
                    continue
                where = f"{steps_list.at(index)}.{name}"
                target = route(model)
                if target.provider is None:
                    continue
                config = providers.get(target.provider)
                if config is None:
                    known = ", ".join(sorted(providers)) or "none"
                    problems.append(
                        Problem(
                            where,
                            f"no AI provider named {target.provider!r}; configured in "
                            f"AI_PROVIDERS: {known} (or no prefix for OpenRouter)",
                            code="unknown_provider",
                        )
                    )
                elif cost_budget and target.model not in config.prices:
                    problems.append(
                        Problem(
                            where,
                            f"the run has a max_cost_usd budget, but provider "
                            f"{target.provider!r} reports no cost and AI_PROVIDERS gives no "
                            f"price for {target.model!r}: add its prices, or use max_tokens",
                            code="unknown_cost",
                        )
                    )
    return problems


@dataclass(frozen=True)
class Endpoint:
    """One provider as the worker calls it: where, with which key, and how cost is known."""

    name: str
    base_url: str
    api_key: str | None = field(repr=False)  # never in a log line or a traceback's repr
    config: ProviderConfig | None = None  # None: OpenRouter
    app_title: str = "workflow-engine"
    referer: str | None = None

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"

    @property
    def key_hint(self) -> str:
        """Where a rejected key comes from (an answer 401 says it)."""
        if self.config is None:
            return "OPENROUTER_API_KEY on the worker"
        secret = self.config.api_key_secret
        return f"the worker secret {secret!r}" if secret else f"provider {self.name!r}'s key"

    def headers(self) -> dict[str, str]:
        headers = {}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        if self.config is None:  # OpenRouter's attribution headers
            headers["X-Title"] = self.app_title
            if self.referer:
                headers["HTTP-Referer"] = self.referer
        return headers

    def streamed(self, body: dict[str, Any]) -> dict[str, Any]:
        """``body`` asking for a stream whose last chunk reports usage."""
        if self.config is None:
            return {**body, "stream": True, "usage": {"include": True}}  # OpenRouter: with cost
        return {**body, "stream": True, "stream_options": {"include_usage": True}}

    def priced(self, answer: dict[str, Any], model: str) -> dict[str, Any]:
        """The answer with its cost from ``prices`` when the provider reported none, and its
        model named with the provider's prefix (as a step would name it)."""
        if self.config is None:
            return answer
        answer = dict(answer)
        answer["model"] = f"{self.name}:{answer.get('model') or model}"
        usage = answer.get("usage")
        if isinstance(usage, dict) and not isinstance(usage.get("cost"), int | float):
            cost = self.config.cost(model, usage)
            if cost is not None:
                answer["usage"] = {**usage, "cost": cost}
        return answer
