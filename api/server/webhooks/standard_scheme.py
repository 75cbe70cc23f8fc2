"""``standard-webhooks``: the Standard Webhooks specification (the `standardwebhooks` libraries,
Svix and the senders built on them).

- ``webhook-id``: the message id, the same on every retry of a message (the delivery id);
- ``webhook-timestamp``: unix seconds;
- ``webhook-signature``: space-separated ``v1,<base64 HMAC-SHA256>`` entries of
  ``"<id>.<timestamp>.<raw body>"``, keyed with the base64-decoded part of a ``whsec_``
  secret. Several entries are the sender's rotation; entries of other versions (``v1a``, an
  asymmetric signature) are skipped.

Svix, whose libraries the specification grew from, sends the same three headers named
``svix-id``, ``svix-timestamp`` and ``svix-signature``: they are read when the ``webhook-``
ones are absent.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping

from api.server.webhooks.verifiers import (
    SignedRequest,
    Verified,
    Verifier,
    register,
)

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
WHSEC = "whsec_"


def secret_key(secret: str) -> bytes | None:
    """The HMAC key of a ``whsec_<base64>`` secret (None: not of that form)."""
    if not secret.startswith(WHSEC):
        return None
    try:
        key = base64.b64decode(secret[len(WHSEC) :], validate=True)
    except (binascii.Error, ValueError):
        return None
    return key or None


def signature(key: bytes, message_id: str, timestamp: str, body: bytes) -> str:
    """One ``v1,<base64>`` entry."""
    content = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()


def _with_svix_names(headers: Mapping[str, str]) -> Mapping[str, str]:
    """The headers, with Svix's names read as the specification's when those are absent."""
    names = (ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER)
    if any(name in headers for name in names):
        return headers
    svix = {name: headers.get(name.replace("webhook-", "svix-"), "") for name in names}
    return {**headers, **svix}


@register
class StandardWebhooksVerifier(Verifier):
    scheme = "standard-webhooks"
    signature_header = SIGNATURE_HEADER
    how_to_sign = (
        f"send {ID_HEADER}, {TIMESTAMP_HEADER} (unix seconds) and {SIGNATURE_HEADER}: "
        "v1,<base64 HMAC-SHA256 of '<id>.<timestamp>.<raw body>'> keyed with the base64 part "
        "of the whsec_ secret the webhook trigger names (Standard Webhooks; see "
        "docs/webhooks.md)"
    )

    def secret_problem(self, secret: str) -> str | None:
        if secret_key(secret) is None:
            return "a Standard Webhooks secret is 'whsec_' followed by base64 (e.g. whsec_MfKQ...)"
        return None

    def verify(self, request: SignedRequest) -> Verified:
        headers, body, secrets = request.headers, request.body, request.secrets
        headers = _with_svix_names(headers)
        presented = self.required(headers, SIGNATURE_HEADER)
        message_id = self.required(headers, ID_HEADER)
        stamp = self.required(headers, TIMESTAMP_HEADER)
        timestamp = self.timestamp(TIMESTAMP_HEADER, stamp)
        entries = presented.split()
        if not all("," in entry for entry in entries):
            raise self.unsigned(
                f"{SIGNATURE_HEADER} must be space-separated '<version>,<base64>' entries"
            )
        given = [e.encode() for e in entries if e.startswith("v1,")]
        keys = [key for key in map(secret_key, secrets) if key is not None]
        expected = [signature(key, message_id, stamp, body).encode() for key in keys]
        self.matching(expected, given)
        request.check_fresh(TIMESTAMP_HEADER, timestamp)
        return Verified(message_id)
