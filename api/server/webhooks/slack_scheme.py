"""``slack``: Slack apps (Events API, slash commands, interactivity).

``X-Slack-Request-Timestamp`` (unix seconds) and ``X-Slack-Signature: v0=<hex HMAC-SHA256 of
"v0:<timestamp>:<raw body>">``, keyed with the app's Signing Secret as text. The delivery id
is the event's ``event_id`` (kept by Slack's retries), else a command's or an action's
``trigger_id``, else the signature itself (a replay inside the window carries the same one).
The Events API's ``url_verification`` request is answered with its challenge and starts
nothing. A started run is answered 200 (Slack's acknowledgement) with a ``text`` line, which a
slash command shows to the user who typed it.
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

SIGNATURE_HEADER = "X-Slack-Signature"
TIMESTAMP_HEADER = "X-Slack-Request-Timestamp"
_SIGNATURE = re.compile(r"v0=[0-9a-fA-F]{64}")


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    content = f"v0:{timestamp}:".encode() + body
    return "v0=" + hmac.new(secret.encode(), content, hashlib.sha256).hexdigest()


@register
class SlackVerifier(Verifier):
    scheme = "slack"
    signature_header = SIGNATURE_HEADER
    json_form_field = "payload"
    # Slack wants a 200 within 3 seconds, and shows a command's answer to the user who typed it.
    started_status = 200
    how_to_sign = (
        f"Slack sends {TIMESTAMP_HEADER} and {SIGNATURE_HEADER}: v0=<hex HMAC-SHA256 of "
        "'v0:<timestamp>:<raw body>'> made with the app's Signing Secret, which the trigger's "
        "secret must hold (see docs/webhooks.md)"
    )

    def verify(self, request: SignedRequest) -> Verified:
        headers, body, secrets = request.headers, request.body, request.secrets
        presented = self.required(headers, SIGNATURE_HEADER)
        stamp = self.required(headers, TIMESTAMP_HEADER)
        if not _SIGNATURE.fullmatch(presented):
            raise self.unsigned(f"{SIGNATURE_HEADER} must be v0=<64 hex digits>")
        timestamp = self.timestamp(TIMESTAMP_HEADER, stamp)
        expected = [sign(secret, stamp, body).encode() for secret in secrets]
        self.matching(expected, [presented.lower().encode()])
        request.check_fresh(TIMESTAMP_HEADER, timestamp)
        return Verified()

    def delivery_id(self, verified: Verified, headers: Mapping[str, str], body: Any) -> str:
        for name in ("event_id", "trigger_id"):
            value = body.get(name) if isinstance(body, dict) else None
            if isinstance(value, str) and value:
                return value
        return headers[SIGNATURE_HEADER.lower()].lower()

    def reply(self, headers: Mapping[str, str], body: Any) -> Reply | None:
        if isinstance(body, dict) and body.get("type") == "url_verification":
            return Reply({"challenge": body.get("challenge")})
        return None

    def started(self, answer: dict[str, Any]) -> dict[str, Any]:
        return {"text": f"started {answer['execution_id']}", **answer}
