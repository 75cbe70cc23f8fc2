"""The verifier of each signing scheme, in one registry keyed by the trigger's ``scheme``.

A verifier knows its sender's headers, what its signature covers and how it is encoded, the
form its secrets take, and the id that makes a redelivery recognisable. Each scheme is one
module beside this one (``<scheme>_scheme.py``), registered with :func:`register`; the route
(api/server/routes/hooks.py) only asks the registry.

Every refusal here is a 401 (the route charges it to the caller's address, never to the
workflow): a missing or malformed header names the header; a signature no held secret makes
is ``invalid_signature``; a well-signed timestamp outside WEBHOOK_TOLERANCE_SECONDS is
``timestamp_outside_tolerance``. The timestamp is judged only once the signature (which
covers it) has been checked, so an unsigned caller learns nothing about the window.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from api.server.errors import ApiError


@dataclass(frozen=True)
class Verified:
    """What a correctly signed delivery told: its delivery id, when the sender has one outside
    the body (Stripe's and Slack's are in it: see :meth:`Verifier.delivery_id`)."""

    delivery: str | None = None


@dataclass(frozen=True)
class SignedRequest:
    """A delivery as its verifier judges it: headers, the raw body, every secret it may be
    signed with (rotation: old and new), and the API's clock with its tolerance."""

    headers: Mapping[str, str]
    body: bytes
    secrets: Sequence[str]
    tolerance: int
    now: float

    def check_fresh(self, header: str, timestamp: int) -> None:
        check_fresh(header, timestamp, self.tolerance, self.now)


@dataclass(frozen=True)
class Reply:
    """A 200 answer that starts no run (a sender's handshake), unless ``unless_filter`` and
    the trigger's filter accepts the delivery."""

    body: dict[str, Any]
    unless_filter: bool = False


class Verifier:
    """One signing scheme. Subclasses set the class attributes and implement :meth:`verify`."""

    scheme: ClassVar[str]
    signature_header: ClassVar[str]
    how_to_sign: ClassVar[str]
    # A form-encoded body made of this one field holds the event as JSON (GitHub, Slack).
    json_form_field: ClassVar[str | None] = None
    # The status of the answer that started a run (a sender may want exactly 200).
    started_status: ClassVar[int] = 202

    def secret_problem(self, secret: str) -> str | None:
        """Why ``secret`` cannot be one of this scheme's secrets (None: it can)."""
        return None

    def verify(self, request: SignedRequest) -> Verified:
        """Check the signature (with every secret), then the signed timestamp; raise ApiError
        401 when the delivery is not the sender's."""
        raise NotImplementedError

    def delivery_id(self, verified: Verified, headers: Mapping[str, str], body: Any) -> str:
        """The id naming this delivery's run (a redelivery carries the same)."""
        assert verified.delivery is not None, f"{self.scheme} reads its delivery id from a header"
        return verified.delivery

    def reply(self, headers: Mapping[str, str], body: Any) -> Reply | None:
        """A handshake answered without a run (Slack's url_verification, GitHub's ping)."""
        return None

    def started(self, answer: dict[str, Any]) -> dict[str, Any]:
        """The answer to a delivery that started a run (the API's run answer by default)."""
        return answer

    # -- helpers for the schemes -------------------------------------------------------------

    def unsigned(self, problem: str) -> ApiError:
        return ApiError(401, "invalid_signature", f"{problem}: {self.how_to_sign}")

    def mismatch(self) -> ApiError:
        return self.unsigned(f"{self.signature_header} does not match")

    def matching(self, expected: Sequence[bytes], presented: Sequence[bytes]) -> None:
        """One presented signature is one the secrets make (else 401), compared in constant
        time whichever matches."""
        if not any_matches(expected, presented):
            raise self.mismatch()

    def required(self, headers: Mapping[str, str], name: str) -> str:
        value = headers.get(name.lower(), "").strip()
        if not value:
            raise self.unsigned(f"{name} is missing")
        return value

    def timestamp(self, header: str, value: str) -> int:
        if not value.isascii() or not value.isdigit() or len(value) > 12:
            raise self.unsigned(f"{header} must be the unix time in whole seconds")
        return int(value)


def any_matches(expected: Sequence[bytes], presented: Sequence[bytes]) -> bool:
    """Whether any presented signature equals any expected one, each compared in constant
    time (several secrets while rotating, several signatures where the scheme sends them)."""
    found = False
    for want in expected:
        for given in presented:
            found |= hmac.compare_digest(want, given)
    return found


def check_fresh(header: str, timestamp: int, tolerance: int, now: float) -> None:
    """A signed timestamp within ``tolerance`` seconds of the API's clock, either way."""
    age = int(now) - timestamp
    if abs(age) > tolerance:
        when = f"{age} s old" if age > 0 else f"{-age} s in the future"
        raise ApiError(
            401,
            "timestamp_outside_tolerance",
            f"{header} is {when}; the tolerance is {tolerance} s "
            "(WEBHOOK_TOLERANCE_SECONDS). Sign each delivery (and each retry) with the current "
            "unix time, and keep the sender's clock in sync.",
        )


SCHEMES: dict[str, Verifier] = {}
V = TypeVar("V", bound=Verifier)


def register(cls: type[V]) -> type[V]:
    SCHEMES[cls.scheme] = cls()
    return cls


def verifier_for(scheme: str) -> Verifier:
    return SCHEMES[scheme]


def guessed(headers: Mapping[str, str]) -> Verifier:
    """The scheme whose signature header the request carries (``hmac`` if none): how a
    request to a workflow without a webhook is answered, exactly like a wrong signature of the
    scheme the caller used, so it learns nothing about which workflows exist."""
    for verifier in SCHEMES.values():
        if verifier.signature_header.lower() in headers:
            return verifier
    if "svix-signature" in headers:
        return SCHEMES["standard-webhooks"]
    return SCHEMES["hmac"]
