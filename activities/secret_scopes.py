"""Where a secret may go: the ``workflows`` and ``hosts`` a ``SECRETS_FILE`` entry binds it to.

Redaction cannot follow a secret a target transforms (docs/secrets.md), so a secret that only
one workflow needs, sent to one API, is bound to them::

    {"TOKEN": {"value": "...", "workflows": ["billing"], "hosts": ["api.stripe.com"]}}

A step of another workflow that names it, or a request that would carry it to another host,
fails before anything is sent (type ``SecretNotAllowed``). Hosts are written as in
``HTTP_ALLOWED_HOSTS`` (a name, an IP address or CIDR, each optionally with ``:port``) and
parsed by the same parser. The workflow is the definition whose step sends the request, as
the workflow put it in the request from the run's input: no template can change it.

The check is one dictionary lookup per slot: a request without bound secrets pays nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from temporalio.exceptions import ApplicationError

from activities.ssrf import AllowEntry, allow_entry, ip_literal, normalise_host, parse_allow_entry
from workflows.errors import ConfigurationError, FailureType

SETTING = "SECRETS_FILE"
ENTRY_KEYS = frozenset({"value", "workflows", "hosts"})


@dataclass(frozen=True)
class SecretRule:
    """The workflows and hosts one secret is bound to; ``None``: any."""

    workflows: frozenset[str] | None = None
    hosts: tuple[AllowEntry, ...] | None = None

    def permits_host(self, host: str, port: int) -> bool:
        if self.hosts is None:
            return True
        name = normalise_host(host)
        address = ip_literal(name)
        if address is not None:
            return any(entry.permits_address(address, port) for entry in self.hosts)
        return any(entry.permits_name(name, port) for entry in self.hosts)


def parse_entry(name: str, raw: Any) -> tuple[str, SecretRule | None]:
    """One ``SECRETS_FILE`` entry: a string (any workflow, any host) or an object
    ``{"value", "workflows"?, "hosts"?}``; ConfigurationError naming the secret otherwise."""
    if isinstance(raw, str):
        return raw, None
    where = f"{SETTING}: secret {name!r}"
    if not isinstance(raw, dict):
        raise ConfigurationError(f"{where} must be a string or an object with a 'value'")
    unknown = sorted(set(raw) - ENTRY_KEYS)
    if unknown:
        raise ConfigurationError(
            f"{where} has unknown keys {unknown}; an entry holds 'value', 'workflows', 'hosts'"
        )
    value = raw.get("value")
    if not isinstance(value, str):
        raise ConfigurationError(f"{where} needs a 'value' that is a string")
    workflows = _names(where, "workflows", raw.get("workflows"))
    hosts_text = _names(where, "hosts", raw.get("hosts"))
    hosts = None
    if hosts_text is not None:
        hosts = tuple(_host_entry(where, text) for text in sorted(hosts_text))
    return value, SecretRule(workflows, hosts)


def _names(where: str, key: str, raw: Any) -> frozenset[str] | None:
    if raw is None:
        return None
    # Workflow ids may be integers in a definition; both spellings name the same workflow.
    if not isinstance(raw, list) or not raw or not all(isinstance(v, str | int) for v in raw):
        raise ConfigurationError(
            f"{where}: {key!r} must be a non-empty list of strings (leave it out to allow any)"
        )
    return frozenset(str(v) for v in raw)


def _host_entry(where: str, text: str) -> AllowEntry:
    try:
        return parse_allow_entry(text.strip())
    except ConfigurationError as err:
        # The parser names HTTP_ALLOWED_HOSTS; the problem is in this file's entry.
        reason = str(err).split(": ", 1)[-1]
        raise ConfigurationError(f"{where}: 'hosts' entry {reason}") from None


def secret_names(deferred: Iterable[Any]) -> set[str]:
    """The secrets a request's slots name (``{secrets.NAME}`` -> ``NAME``)."""
    names = set()
    for slot in deferred:
        for part in slot.parts:
            ref = part.get("ref")
            if ref:
                names.add(ref.split(".")[1] if "." in ref else ref)
    return names


def refused(message: str) -> ApplicationError:
    return ApplicationError(message, type=FailureType.SECRET_NOT_ALLOWED, non_retryable=True)


def check_workflow(
    rules: Mapping[str, SecretRule], names: Iterable[str], workflow_id: str | None, step_id: str
) -> None:
    """Refuse a secret whose ``workflows`` do not name the step's workflow."""
    for name in sorted(names):
        rule = rules.get(name)
        if rule is None or rule.workflows is None or workflow_id in rule.workflows:
            continue
        allowed = ", ".join(repr(w) for w in sorted(rule.workflows))
        if workflow_id is None:  # a request an older worker scheduled names no workflow
            who = "this request names no workflow (it was scheduled by an older worker)"
            fix = "run the workflow again"
        else:
            who = f"workflow {workflow_id!r} may not use it"
            fix = f'add {workflow_id!r} to the secret\'s "workflows" in {SETTING} to allow it'
        raise refused(
            f"step {step_id!r}: secret {name!r} is bound to the workflows {allowed} "
            f"({SETTING}); {who}, so nothing was sent ({fix})"
        )


def check_host(
    rules: Mapping[str, SecretRule], names: Iterable[str], host: str, port: int, step_id: str
) -> None:
    """Refuse a request whose target is outside the ``hosts`` of a secret it carries."""
    for name in sorted(names):
        rule = rules.get(name)
        if rule is None or rule.permits_host(host, port):
            continue
        assert rule.hosts is not None
        allowed = ", ".join(repr(entry.text) for entry in rule.hosts)
        target = allow_entry(normalise_host(host), port)
        raise refused(
            f"step {step_id!r}: secret {name!r} is bound to the hosts {allowed} ({SETTING}); "
            f"this request goes to {target}, so it was not sent (add {target!r} to the "
            f'secret\'s "hosts" to allow it)'
        )
