"""API keys, roles and workflow scopes (README "Keys and roles"; OWASP API1/API2/API5).

A key is ``{"key", "name", "role", "workflows"}``; roles:

- ``admin``: everything;
- ``runner``: run, read, cancel and signal executions of the listed workflows, read those
  definitions;
- ``viewer``: read only, within the listed workflows.

Keys are compared in constant time (over their SHA-256 digests, so neither content nor
length leaks through timing). Objects outside a key's scope answer 404, never 403, so a key
cannot learn that another team's workflow or execution exists.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
    field_validator,
)

from activities.runtime.settings import Settings
from api.server.errors import ApiError
from workflows.errors import ConfigurationError

logger = logging.getLogger(__name__)

Role = Literal["admin", "runner", "viewer"]
# A key kept in the database: (SHA-256 digest, name, role, workflows or None for all).
StoredKey = tuple[bytes, str, str, list[str] | None]


class Action(StrEnum):
    READ = "read"  # executions, logs, definitions in scope
    RUN = "run"
    CONTROL = "control"  # cancel, signal
    MANAGE = "manage"  # save and delete definitions


ROLE_ACTIONS: dict[str, frozenset[Action]] = {
    "admin": frozenset(Action),
    "runner": frozenset({Action.READ, Action.RUN, Action.CONTROL}),
    "viewer": frozenset({Action.READ}),
}


class ApiKeySpec(BaseModel):
    """One entry of API_KEYS / API_KEYS_FILE."""

    model_config = ConfigDict(extra="forbid")

    key: SecretStr = Field(min_length=16)
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.@:-]+$")
    role: Role
    workflows: list[str] | Literal["*"] = "*"

    @field_validator("workflows")
    @classmethod
    def _ids(cls, value: list[str] | str) -> list[str] | str:
        if isinstance(value, list) and not value:
            raise ValueError('list at least one workflow id, or "*" for all')
        return value


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's name, role and scope."""

    name: str
    role: str
    workflows: frozenset[str] | None  # None: every workflow

    def can(self, action: Action) -> bool:
        return action in ROLE_ACTIONS[self.role]

    def require(self, action: Action, what: str) -> None:
        """403 unless the role may ``action``; ``what`` says it in the answer."""
        if not self.can(action):
            raise ApiError(403, "forbidden", f"role '{self.role}' cannot {what}")

    def sees(self, workflow_id: str | int | None) -> bool:
        return self.workflows is None or (
            workflow_id is not None and str(workflow_id) in self.workflows
        )

    def scope_ids(self) -> list[str] | None:
        return None if self.workflows is None else sorted(self.workflows)


ANONYMOUS_ADMIN = Principal(name="anonymous", role="admin", workflows=None)


class KeyRing:
    """The configured keys; ``authenticate`` never short-circuits on the first mismatch."""

    def __init__(
        self,
        keys: Sequence[ApiKeySpec],
        disabled: bool = False,
        stored: Sequence[StoredKey] = (),
    ) -> None:
        self.disabled = disabled
        self._entries = [
            (hashlib.sha256(k.key.get_secret_value().encode()).digest(), _principal(k))
            for k in keys
        ]
        names = [p.name for _, p in self._entries]
        if len(set(names)) != len(names):
            raise ConfigurationError("API_KEYS: key names must be unique")
        # Keys kept in the database (by digest); a configured key of the same name wins.
        configured = set(names)
        for digest, name, role, workflows in stored:
            if name not in configured and role in ROLE_ACTIONS:
                scope = None if workflows is None else frozenset(workflows)
                self._entries.append((digest, Principal(name=name, role=role, workflows=scope)))

    def __len__(self) -> int:
        return len(self._entries)

    def authenticate(self, presented: str | None) -> Principal | None:
        if self.disabled:
            return ANONYMOUS_ADMIN
        if not presented:
            return None
        digest = hashlib.sha256(presented.encode()).digest()
        found = None
        for stored, principal in self._entries:
            if secrets.compare_digest(stored, digest):
                found = principal
        return found


def _principal(spec: ApiKeySpec) -> Principal:
    workflows = None if spec.workflows == "*" else frozenset(spec.workflows)
    return Principal(name=spec.name, role=spec.role, workflows=workflows)


_KEY_LIST = TypeAdapter(list[ApiKeySpec])


def parse_keys(raw: Any, source: str) -> list[ApiKeySpec]:
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError as err:
            raise ConfigurationError(f"{source}: not valid JSON ({err})") from None
    if not isinstance(raw, list):
        raise ConfigurationError(f"{source}: must be a JSON list of key objects")
    try:
        return _KEY_LIST.validate_python(raw)
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigurationError(f"{source}: {where}: {first['msg']}") from None


def load_key_ring(settings: Settings, stored: Sequence[StoredKey] = ()) -> KeyRing:
    """Keys from API_KEYS and API_KEYS_FILE, and those ``stored`` in the database; no keys
    at all needs AUTH_DISABLED=true."""
    keys: list[ApiKeySpec] = []
    if settings.api_keys is not None:
        keys += parse_keys(settings.api_keys.get_secret_value(), "API_KEYS")
    if settings.api_keys_file is not None:
        path = Path(settings.api_keys_file)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            raise ConfigurationError(f"API_KEYS_FILE: cannot read {path}: {err.strerror}") from None
        keys += parse_keys(text, "API_KEYS_FILE")
    if settings.auth_disabled:
        logger.warning(
            "AUTH_DISABLED=true: every request is treated as an admin. Never do this on a "
            "network others can reach."
        )
        return KeyRing(keys, disabled=True, stored=stored)
    if not keys and not stored:
        raise ConfigurationError(
            "no API keys: set API_KEYS or API_KEYS_FILE (a JSON list of "
            '{"key", "name", "role", "workflows"}), or AUTH_DISABLED=true for local use only'
        )
    return KeyRing(keys, stored=stored)


def new_admin_key_file(path: Path) -> str:
    """Create a key file holding one fresh admin key (for `wfe dev`); return the key."""
    key = "wfe_" + secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps([{"key": key, "name": "dev-admin", "role": "admin", "workflows": "*"}], indent=2)
        + "\n",
        encoding="utf-8",
    )
    path.chmod(0o600)
    return key
