"""Secret values for `{secrets.NAME}`, resolved only inside activities.

Sources, later ones winning: the JSON object in ``SECRETS_FILE``, then environment variables
named ``WORKFLOW_SECRET_<NAME>`` (prefix configurable). A ``SECRETS_FILE`` entry may bind its
secret to workflows and hosts (activities/secret_scopes.py); an environment variable of the
same name replaces the value, never the binding. Values never leave the worker process
except inside the request they were put in; :meth:`SecretStore.redact` scrubs them from any
text (errors, results) that goes back to the workflow, and :class:`RedactingFilter` from
every line the worker process logs (docs/secrets.md says what can and cannot be caught).

A secret rarely comes back verbatim: httpx percent-encodes it in a URL (``quote`` or, in a
query, ``quote_plus``), a JSON body or an error snippet escapes it (``\\"``, ``\\u00e9``).
So each secret is matched as a sequence of characters each written raw, percent-encoded
(either hex case, ``+`` for a space) or JSON-escaped, in any mixture.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel
from temporalio.exceptions import ApplicationError

from activities.secret_scopes import (
    SecretRule,
    check_host,
    check_workflow,
    parse_entry,
    secret_names,
)
from workflows.errors import ConfigurationError, FailureType, InvalidReferenceError
from workflows.templating import DeferredSlot, fill_deferred

REDACTED = "[REDACTED]"

M = TypeVar("M", bound=BaseModel)


class SecretStore(Mapping[str, str]):
    """A read-only name -> value map of the worker's secrets."""

    def __init__(
        self,
        values: Mapping[str, str],
        extra_sensitive: list[str] | None = None,
        rules: Mapping[str, SecretRule] | None = None,
    ) -> None:
        self._values = dict(values)
        self._rules = dict(rules or {})  # name -> the workflows and hosts it is bound to
        # Values that are not addressable as {secrets.X} but must never leak either
        # (the OpenRouter key, for one).
        self._sensitive = [v for v in [*self._values.values(), *(extra_sensitive or [])] if v]
        self._sensitive.sort(key=len, reverse=True)
        self._pattern = encoded_forms(self._sensitive)

    @classmethod
    def from_environment(
        cls,
        prefix: str,
        secrets_file: Path | None,
        extra_sensitive: list[str] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> SecretStore:
        values: dict[str, str] = {}
        rules: dict[str, SecretRule] = {}
        if secrets_file is not None:
            values, rules = read_secrets_file(Path(secrets_file))
        env = os.environ if environ is None else environ
        for key, value in env.items():
            if key.startswith(prefix) and len(key) > len(prefix):
                # The value only: a binding in SECRETS_FILE is never loosened from outside.
                values[key[len(prefix) :]] = value
        return cls(values, extra_sensitive, rules)

    def __getitem__(self, name: str) -> str:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def rule(self, name: str) -> SecretRule | None:
        """The workflows and hosts a secret is bound to (None: a plain, global secret)."""
        return self._rules.get(name)

    def check_workflow(self, deferred: list[Any], workflow_id: str | None, step_id: str) -> None:
        """SecretNotAllowed when a slot names a secret bound to other workflows."""
        if self._rules:
            check_workflow(self._rules, secret_names(deferred), workflow_id, step_id)

    def check_host(self, deferred: list[Any], host: str, port: int, step_id: str) -> None:
        """SecretNotAllowed when a slot names a secret bound to other hosts than this one."""
        if not self._rules:
            return
        try:
            check_host(self._rules, secret_names(deferred), host, port, step_id)
        except ApplicationError as err:
            # The host may itself have been filled from a secret.
            raise ApplicationError(
                self.redact(err.message), type=err.type, non_retryable=True
            ) from None

    def unsafe_tail(self, text: str) -> int:
        """How many of ``text``'s last characters may be the beginning of a secret still
        being written (a streamed answer shows them once more arrives): the end from where it
        is a secret's beginning, or, where an encoded form may be starting, the window one
        could fill."""
        if not self._sensitive:
            return 0
        longest = len(self._sensitive[0])
        window = text[-3 * longest :]  # percent-encoding triples an ASCII character
        if "%" in window or "\\" in window or "+" in window:
            return len(window)
        for start in range(max(0, len(text) - longest + 1), len(text)):
            piece = text[start:]
            if any(secret.startswith(piece) for secret in self._sensitive):
                return len(text) - start
        return 0

    def redact_model(self, model: M) -> M:
        """A copy of a result model with secret values scrubbed."""
        if not self._sensitive:
            return model
        return type(model).model_validate(self.redact(model.model_dump(by_alias=True)))

    def redact(self, value: Any) -> Any:
        """Replace every secret, in any of its encoded forms, inside the strings (keys too)
        of a JSON-like value."""
        if not self._sensitive:
            return value
        if isinstance(value, str):
            return self._redact_text(value)
        if isinstance(value, dict):
            return {self.redact(k): self.redact(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.redact(v) for v in value]
        return value

    def _redact_text(self, text: str) -> str:
        # An encoded form always holds one of these; without any, plain search is enough
        # (str.replace is C-fast; a multi-megabyte response seldom needs the regex).
        if "%" in text or "\\" in text or "+" in text:
            assert self._pattern is not None
            return self._pattern.sub(REDACTED, text)
        for secret in self._sensitive:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text


def read_secrets_file(path: Path) -> tuple[dict[str, str], dict[str, SecretRule]]:
    """``SECRETS_FILE``: name -> a string, or ``{"value", "workflows"?, "hosts"?}``."""
    try:
        loaded: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ConfigurationError(f"SECRETS_FILE: cannot read {path}: {err}") from None
    if not isinstance(loaded, dict):
        raise ConfigurationError("SECRETS_FILE: must hold a JSON object (name -> secret)")
    values: dict[str, str] = {}
    rules: dict[str, SecretRule] = {}
    for name, raw in loaded.items():
        values[name], rule = parse_entry(name, raw)
        if rule is not None:
            rules[name] = rule
    return values, rules


def fill_secrets(
    fields: Any,
    deferred: list[Any],
    store: SecretStore,
    workflow_id: str | None = None,
    step_id: str = "",
) -> Any:
    """Fill the workflow's deferred `{secrets.X}` slots in ``fields`` (by position, once),
    after checking that ``workflow_id`` may use every secret they name."""
    store.check_workflow(deferred, workflow_id, step_id)
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


# -- the encoded forms of a secret -------------------------------------------------------------

_JSON_SHORT = {'"': '\\"', "\\": "\\\\", "/": "\\/", "\b": "\\b", "\f": "\\f", "\n": "\\n",
               "\r": "\\r", "\t": "\\t"}  # fmt: skip


def _hex(value: int, width: int) -> str:
    """A case-insensitive pattern for ``value`` in hex (servers echo %2f as well as %2F)."""
    return "".join(f"[{d.lower()}{d.upper()}]" if d.isalpha() else d for d in f"{value:0{width}X}")


def _char_forms(char: str) -> str:
    """A pattern for one character of a secret in every form it may be written in."""
    forms = [re.escape(char)]
    # Percent-encoding (quote, quote_plus, httpx's own): each UTF-8 byte as %XX.
    forms.append("".join("%" + _hex(byte, 2) for byte in char.encode("utf-8", "surrogatepass")))
    if char == " ":
        forms.append(r"\+")  # quote_plus and form encoding
    # JSON: a short escape where one exists, else \\uXXXX (a surrogate pair beyond the BMP).
    if char in _JSON_SHORT:
        forms.append(re.escape(_JSON_SHORT[char]))
    units = char.encode("utf-16-be", "surrogatepass")
    forms.append(
        "".join(
            r"\\u" + _hex(int.from_bytes(units[i : i + 2], "big"), 4)
            for i in range(0, len(units), 2)
        )
    )
    return "(?:" + "|".join(forms) + ")"


def encoded_forms(secrets: Iterable[str]) -> re.Pattern[str] | None:
    """One pattern matching each secret written raw, percent-encoded or JSON-escaped, in any
    mixture (httpx leaves some characters of a path raw and encodes others).

    Longest secrets first, so a secret that contains another is replaced whole. The pattern
    is a plain concatenation of small alternations per character: matching is linear in the
    text for a fixed set of secrets (no nested quantifiers).
    """
    ordered = sorted({s for s in secrets if s}, key=len, reverse=True)
    if not ordered:
        return None
    return re.compile("|".join("".join(_char_forms(c) for c in secret) for secret in ordered))


# -- the process's own log lines ---------------------------------------------------------------

# userinfo and query of http(s) URLs in log text: tokens ride there (?key=..., user:pass@).
_URL_PARTS = re.compile(r"(?i)\b(https?://)(?:[^\s/?#@\"'<>]*@)?([^\s?#\"'<>]*)(?:\?[^\s#\"'<>]*)?")


def scrub_urls(text: str) -> str:
    """``text`` with every http(s) URL's credentials and query string removed."""
    if "://" not in text:
        return text
    return _URL_PARTS.sub(r"\1\2", text)


class RedactingFilter(logging.Filter):
    """Scrubs every record a handler emits: secrets in any encoded form, URL queries and
    credentials, in the message, the formatted exception and the stack.

    Installed on the worker's handlers (:func:`install_log_redaction`), so it covers every
    library's lines (httpx, Temporal's SDK, ours), not only the loggers we own.
    """

    def __init__(self, store: SecretStore) -> None:
        super().__init__()
        self._store = store
        self._formatter = logging.Formatter()

    def _clean(self, text: str) -> str:
        return str(self._store.redact(scrub_urls(text)))

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record whose arguments do not fit its format: log it raw
            message = f"{record.msg!r} {record.args!r}"
        record.msg, record.args = self._clean(message), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            # Formatters print exc_text when it is set: the redacted text is what is written.
            record.exc_text = self._clean(record.exc_text)
        if record.stack_info:
            record.stack_info = self._clean(record.stack_info)
        return True


# Libraries that log every request's full URL at INFO (httpx: 'HTTP Request: GET https://...').
CHATTY_LOGGERS = ("httpx", "httpcore")


def install_log_redaction(
    store: SecretStore, root: logging.Logger | None = None
) -> RedactingFilter:
    """Redact every record the process's handlers write; quieten per-request INFO lines."""
    root = root or logging.getLogger()
    redacting = RedactingFilter(store)
    for handler in root.handlers:
        handler.addFilter(redacting)
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    return redacting
