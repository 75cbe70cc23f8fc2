"""Webhook deliveries: one verifier per signing scheme (``<scheme>_scheme`` modules, registered
in :mod:`.verifiers`), the secrets they use (:mod:`.secrets`), the body and headers a run reads
(:mod:`.payloads`) and the trigger's filter (:mod:`.filters`). The route is
api/server/routes/hooks.py; each sender's settings are in docs/webhooks.md."""

from api.server.webhooks import (
    github_scheme,
    hmac_scheme,
    slack_scheme,
    standard_scheme,
    stripe_scheme,
)
from api.server.webhooks.verifiers import SCHEMES, Verifier, guessed, verifier_for

__all__ = [
    "SCHEMES",
    "Verifier",
    "github_scheme",
    "guessed",
    "hmac_scheme",
    "slack_scheme",
    "standard_scheme",
    "stripe_scheme",
    "verifier_for",
]
