"""``hmac``, this engine's own scheme (the default): three headers (docs/webhooks.md).

- ``X-Webhook-Timestamp``: the unix time in whole seconds when it was signed;
- ``X-Webhook-Delivery``: an id unique to the delivery (letters, digits, ``_``, ``:``, ``-``);
- ``X-Signature-256: sha256=<hex HMAC-SHA256 of "<timestamp>.<delivery>.<raw body>">``.

The signature covers the timestamp and the delivery id as well as the body, so neither can be
changed to make a captured request look new: a stale timestamp is refused by the tolerance
window, and a fresh one with a used delivery id by Temporal's workflow-id policy.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time

from api.server.webhooks.verifiers import (
    SignedRequest,
    Verified,
    Verifier,
    register,
)

SIGNATURE_HEADER = "X-Signature-256"
TIMESTAMP_HEADER = "X-Webhook-Timestamp"
DELIVERY_HEADER = "X-Webhook-Delivery"
# No '.': it separates the signed fields, so a delivery id must not be able to contain one
# (otherwise "<t>.<a.b>.<body>" could be re-read as another timestamp, id and body).
DELIVERY_ID = re.compile(r"[A-Za-z0-9_:-]{1,128}")


def signed_content(timestamp: str, delivery: str, body: bytes) -> bytes:
    """What the HMAC covers: ``<timestamp>.<delivery>.<raw body>``, byte for byte."""
    return f"{timestamp}.{delivery}.".encode() + body


def sign(secret: bytes, timestamp: str | int, delivery: str, body: bytes) -> str:
    """The X-Signature-256 value: ``sha256=<hex HMAC-SHA256 of the signed content>``."""
    content = signed_content(str(timestamp), delivery, body)
    return "sha256=" + hmac.new(secret, content, hashlib.sha256).hexdigest()


def signed_headers(
    secret: bytes, body: bytes, delivery: str, timestamp: int | None = None
) -> dict[str, str]:
    """The three headers a sender attaches (for tests and Python senders)."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    return {
        TIMESTAMP_HEADER: stamp,
        DELIVERY_HEADER: delivery,
        SIGNATURE_HEADER: sign(secret, stamp, delivery, body),
    }


@register
class HmacVerifier(Verifier):
    scheme = "hmac"
    signature_header = SIGNATURE_HEADER
    how_to_sign = (
        f"send {TIMESTAMP_HEADER} (unix seconds), {DELIVERY_HEADER} (a unique id) and "
        f"{SIGNATURE_HEADER}: sha256=<hex HMAC-SHA256 of '<timestamp>.<delivery>.<raw body>'> "
        "made with the secret the webhook trigger names (see docs/webhooks.md)"
    )

    def verify(self, request: SignedRequest) -> Verified:
        headers, body, secrets = request.headers, request.body, request.secrets
        signature = self.required(headers, SIGNATURE_HEADER)
        stamp = self.required(headers, TIMESTAMP_HEADER)
        delivery = self.required(headers, DELIVERY_HEADER)
        timestamp = self.timestamp(TIMESTAMP_HEADER, stamp)
        if not DELIVERY_ID.fullmatch(delivery):
            raise self.unsigned(
                f"{DELIVERY_HEADER} must be 1 to 128 letters, digits, '_', ':' or '-' (no '.')"
            )
        expected = [sign(s.encode(), stamp, delivery, body).encode() for s in secrets]
        self.matching(expected, [signature.lower().encode()])
        request.check_fresh(TIMESTAMP_HEADER, timestamp)
        return Verified(delivery)
