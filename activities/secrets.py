"""Secret values for `{secrets.NAME}`, resolved only inside activities.

Sources, later ones winning: the JSON object in ``SECRETS_FILE``, then environment variables
named ``WORKFLOW_SECRET_<NAME>`` (prefix configurable). Values never leave the worker process
except inside the request they were put in; :meth:`SecretStore.redact` scrubs them from any
text (errors, results) that goes back to the workflow.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel
from temporalio.exceptions import ApplicationError

from workflows.errors import ConfigurationError, FailureType, InvalidReferenceError
from workflows.templating import DeferredSlot, fill_deferred

REDACTED = "[REDACTED]"

M = TypeVar("M", bound=BaseModel)


class SecretStore(Mapping[str, str]):
    """A read-only name -> value map of the worker's secrets."""

    def __init__(self, values: Mapping[str, str], extra_sensitive: list[str] | None = None) -> None:
        self._values = dict(values)
        # Values that are not addressable as {secrets.X} but must never leak either
        # (the OpenRouter key, for one).
        self._sensitive = [v for v in [*self._values.values(), *(extra_sensitive or [])] if v]
        self._sensitive.sort(key=len, reverse=True)

    @classmethod
    def from_environment(
        cls,
        prefix: str,
        secrets_file: Path | None,
        extra_sensitive: list[str] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> SecretStore:
        values: dict[str, str] = {}
        if secrets_file is not None:
            try:
                loaded: Any = json.loads(Path(secrets_file).read_text(encoding="utf-8"))
            except (OSError, ValueError) as err:
                raise ConfigurationError(
                    f"SECRETS_FILE: cannot read {secrets_file}: {err}"
                ) from None
            if not isinstance(loaded, dict) or not all(isinstance(v, str) for v in loaded.values()):
                raise ConfigurationError("SECRETS_FILE: must hold a JSON object of strings")
            values.update(loaded)
        env = os.environ if environ is None else environ
        for key, value in env.items():
            if key.startswith(prefix) and len(key) > len(prefix):
                values[key[len(prefix) :]] = value
        return cls(values, extra_sensitive)

    def __getitem__(self, name: str) -> str:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def redact_model(self, model: M) -> M:
        """A copy of a result model with secret values scrubbed."""
        if not self._sensitive:
            return model
        return type(model).model_validate(self.redact(model.model_dump(by_alias=True)))

    def redact(self, value: Any) -> Any:
        """Replace every secret value inside strings of a JSON-like value."""
        if not self._sensitive:
            return value
        if isinstance(value, str):
            for secret in self._sensitive:
                if secret in value:
                    value = value.replace(secret, REDACTED)
            return value
        if isinstance(value, dict):
            return {k: self.redact(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.redact(v) for v in value]
        return value


def fill_secrets(fields: Any, deferred: list[Any], store: SecretStore) -> Any:
    """Fill the workflow's deferred `{secrets.X}` slots in ``fields`` (by position, once)."""
    slots = [DeferredSlot(location=list(s.location), parts=list(s.parts)) for s in deferred]
    try:
        return fill_deferred(fields, slots, {"secrets": store})
    except InvalidReferenceError as err:
        name = err.path.split(".", 1)[-1]
        raise ApplicationError(
            f"secret '{name}' is not configured on the worker: set the environment variable "
            f"WORKFLOW_SECRET_{name} (or add it to SECRETS_FILE) and run again",
            type=FailureType.INVALID_REFERENCE,
            non_retryable=True,
        ) from None
