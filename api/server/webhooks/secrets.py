"""WEBHOOK_SECRETS: a JSON object of secret name -> secret, or -> a list of secrets.

A list is how a secret rotates without downtime: every secret listed verifies a delivery, so
the new one is added, the sender switched over, then the old one removed (docs/webhooks.md).
"""

from __future__ import annotations

import json
from typing import Any

from activities.runtime.settings import Settings
from workflows.errors import ConfigurationError


def all_secrets(settings: Settings) -> dict[str, Any]:
    """The parsed object (empty when the setting is absent)."""
    if settings.webhook_secrets is None:
        return {}
    try:
        secrets: Any = json.loads(settings.webhook_secrets.get_secret_value())
    except ValueError:
        raise ConfigurationError("WEBHOOK_SECRETS: not valid JSON") from None
    if not isinstance(secrets, dict):
        raise ConfigurationError("WEBHOOK_SECRETS: must be a JSON object of name -> secret")
    return secrets


def secrets_named(settings: Settings, name: str) -> list[str] | None:
    """Every secret held under ``name`` (one, or several while rotating); None when the API
    holds none by that name (absent, empty, or not a string or a list of strings)."""
    value = all_secrets(settings).get(name)
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, str) and v for v in values):
        return None
    return list(values)
