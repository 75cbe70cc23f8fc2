"""``github``: GitHub's webhooks (repository, organisation and app webhooks).

- ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>``, keyed with the secret
  typed into the webhook's settings (any text);
- ``X-GitHub-Delivery``: a GUID, kept by a redelivery (the delivery id);
- ``X-GitHub-Event``: the event's name (``push``, ``ping``...), in ``headers`` for filters.

GitHub signs the body alone, with no timestamp: the delivery id is not covered, which GitHub's
design leaves to HTTPS. A ``ping`` (sent when the webhook is created) is answered 200 and
starts nothing, unless the trigger's filter accepts it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import Any

from api.server.webhooks.verifiers import (
    Reply,
    SignedRequest,
    Verified,
    Verifier,
    register,
)

SIGNATURE_HEADER = "X-Hub-Signature-256"
DELIVERY_HEADER = "X-GitHub-Delivery"
EVENT_HEADER = "X-GitHub-Event"
_SIGNATURE = re.compile(r"sha256=[0-9a-fA-F]{64}")
_DELIVERY = re.compile(r"[A-Za-z0-9_:.-]{1,128}")


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@register
class GitHubVerifier(Verifier):
    scheme = "github"
    signature_header = SIGNATURE_HEADER
    json_form_field = "payload"
    how_to_sign = (
        f"GitHub sends {SIGNATURE_HEADER}: sha256=<hex HMAC-SHA256 of the raw body> and "
        f"{DELIVERY_HEADER}; set the webhook's secret to the one the trigger names "
        "(see docs/webhooks.md)"
    )

    def verify(self, request: SignedRequest) -> Verified:
        headers, body, secrets = request.headers, request.body, request.secrets
        presented = self.required(headers, SIGNATURE_HEADER)
        delivery = self.required(headers, DELIVERY_HEADER)
        if not _SIGNATURE.fullmatch(presented):
            raise self.unsigned(f"{SIGNATURE_HEADER} must be sha256=<64 hex digits>")
        if not _DELIVERY.fullmatch(delivery):
            raise self.unsigned(f"{DELIVERY_HEADER} must be a GUID")
        expected = [sign(secret, body).encode() for secret in secrets]
        self.matching(expected, [presented.lower().encode()])
        return Verified(delivery)

    def reply(self, headers: Mapping[str, str], body: Any) -> Reply | None:
        if headers.get(EVENT_HEADER.lower()) == "ping":
            return Reply({"ignored": True}, unless_filter=True)
        return None
