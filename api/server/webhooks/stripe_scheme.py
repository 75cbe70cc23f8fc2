"""``stripe``: Stripe's webhook endpoints.

``Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...][,v0=...]``, each ``v1`` the hex
HMAC-SHA256 of ``"<t>.<raw body>"`` keyed with the endpoint's signing secret (``whsec_...``,
used as it is). Stripe sends several ``v1`` while an endpoint's secret is being rolled;
``v0`` (test signatures of an old scheme) is ignored. The delivery id is the event's ``id``
(``evt_...``), which every retry of the event keeps.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from api.server.errors import ApiError
from api.server.webhooks.verifiers import (
    SignedRequest,
    Verified,
    Verifier,
    register,
)

SIGNATURE_HEADER = "Stripe-Signature"
WHSEC = "whsec_"


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    content = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), content, hashlib.sha256).hexdigest()


@register
class StripeVerifier(Verifier):
    scheme = "stripe"
    signature_header = SIGNATURE_HEADER
    how_to_sign = (
        f"Stripe sends {SIGNATURE_HEADER}: t=<unix seconds>,v1=<hex HMAC-SHA256 of "
        "'<t>.<raw body>'> made with the endpoint's signing secret (whsec_...), which the "
        "trigger's secret must hold (see docs/webhooks.md)"
    )

    def secret_problem(self, secret: str) -> str | None:
        if not secret.startswith(WHSEC) or len(secret) <= len(WHSEC):
            return "a Stripe signing secret starts with 'whsec_' (the endpoint's 'Signing secret')"
        return None

    def verify(self, request: SignedRequest) -> Verified:
        headers, body, secrets = request.headers, request.body, request.secrets
        presented = self.required(headers, SIGNATURE_HEADER)
        pairs = [item.strip().partition("=") for item in presented.split(",")]
        stamps = [value for key, _, value in pairs if key == "t"]
        given = [value.lower().encode() for key, _, value in pairs if key == "v1"]
        if len(stamps) != 1 or not given:
            raise self.unsigned(f"{SIGNATURE_HEADER} must be t=<unix seconds>,v1=<hex>[,v1=...]")
        timestamp = self.timestamp(f"{SIGNATURE_HEADER} t", stamps[0])
        expected = [sign(secret, stamps[0], body).encode() for secret in secrets]
        self.matching(expected, given)
        request.check_fresh(f"{SIGNATURE_HEADER} t", timestamp)
        return Verified()

    def delivery_id(self, verified: Verified, headers: Mapping[str, str], body: Any) -> str:
        event_id = body.get("id") if isinstance(body, dict) else None
        if not isinstance(event_id, str) or not event_id:
            raise ApiError(
                422, "invalid_input", "a Stripe event is a JSON object with its 'id'", "$.id"
            )
        return event_id
