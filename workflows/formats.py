"""The string ``format``s the engine asserts in user-written JSON Schemas.

JSON Schema 2020-12 makes ``format`` an annotation unless a validator opts in; the engine opts
in for the formats below, so ``{"format": "email"}`` refuses ``"2962"`` instead of accepting it
silently. Any other format (``uri-reference``, ``duration``, ``regex``, ...) stays an
annotation: it is accepted and checks nothing (docs/inputs.md).

Why our own checks and not jsonschema's FormatChecker: without extra packages it asserts
``date-time`` and ``time`` only when ``rfc3339-validator`` happens to be installed,
``hostname`` only with ``fqdn`` and ``uri`` only with ``rfc3987`` / ``rfc3986-validator``, and
its ``email`` is "contains an @". The checks here need nothing past the standard library,
RE2 (already the engine's regex engine) and ``idna`` (for ``xn--`` labels); they pass the
JSON-Schema-Test-Suite's format files (tests/test_json_schema_conformance.py). Every regex runs
on RE2, so a check is linear in the text whatever a caller sends. Every format here is ASCII by
definition (RFC 3339, 5321, 1123, 3986, 4122), so non-ASCII text is refused first.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

import idna
import re2


def _compile(pattern: str) -> Any:
    return re2.compile(pattern)


# -- RFC 3339 dates and times -------------------------------------------------------------------

_DATE = _compile(r"\A([0-9]{4})-([0-9]{2})-([0-9]{2})\z")
_TIME = _compile(
    r"\A([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.[0-9]+)?(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))\z"
)
_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def is_date(text: str) -> bool:
    """RFC 3339 ``full-date``: four-digit year, real month and day (leap years included)."""
    match = _DATE.search(text)
    if match is None:
        return False
    year, month, day = (int(part) for part in match.groups())
    if not 1 <= month <= 12:
        return False
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    return 1 <= day <= _DAYS[month - 1] + (1 if month == 2 and leap else 0)


def is_time(text: str) -> bool:
    """RFC 3339 ``full-time``: an offset is required; second 60 only at 23:59 UTC."""
    match = _TIME.search(text)
    if match is None:
        return False
    hour, minute, second = int(match[1]), int(match[2]), int(match[3])
    offset_hour, offset_minute = int(match[5] or 0), int(match[6] or 0)
    if hour > 23 or minute > 59 or second > 60 or offset_hour > 23 or offset_minute > 59:
        return False
    if second == 60:  # a leap second happens at the last minute of a UTC day
        sign = -1 if match[4] == "-" else 1
        utc = (hour * 60 + minute - sign * (offset_hour * 60 + offset_minute)) % (24 * 60)
        return utc == 23 * 60 + 59
    return True


def is_date_time(text: str) -> bool:
    """RFC 3339 ``date-time``: a full date, ``T`` (either case), a full time."""
    date, separator, time = text.partition("T") if "T" in text else text.partition("t")
    return bool(separator) and is_date(date) and is_time(time)


# -- hosts and addresses ------------------------------------------------------------------------

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = _compile(rf"\A(?:{_OCTET}\.){{3}}{_OCTET}\z")
_LABEL = _compile(r"\A[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\z")


def is_ipv4(text: str) -> bool:
    """Dotted decimal, four parts, no leading zeros (no ``inet_aton`` shorthands)."""
    return _IPV4.search(text) is not None


def is_ipv6(text: str) -> bool:
    """RFC 4291 text form, an embedded IPv4 tail allowed; no zone (``%eth0``), no brackets."""
    if not text.isascii() or "%" in text:
        return False
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def is_hostname(text: str) -> bool:
    """RFC 1123 host name (letters, digits, inner hyphens; labels of 1-63, at most 253 in
    all; no trailing dot); an ``xn--`` label must be a valid IDNA 2008 A-label (RFC 5891)."""
    if not text.isascii() or not 0 < len(text) <= 253:
        return False
    for label in text.split("."):
        if _LABEL.search(label) is None:
            return False
        if label[2:4] == "--":  # reserved for A-labels (RFC 5891 §4.2.3.1)
            if label[:4].lower() != "xn--":
                return False
            try:
                idna.decode(label.lower())
            except (idna.IDNAError, UnicodeError):
                return False
    return True


# -- e-mail addresses ---------------------------------------------------------------------------

_DOT_STRING = _compile(r"\A[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*\z")
_QUOTED_STRING = _compile(r'\A"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\[\x20-\x7e])*"\z')


def is_email(text: str) -> bool:
    """RFC 5321 ``Mailbox``: a dot-string or quoted local part, ``@``, then a host name or an
    address literal (``[192.0.2.1]``, ``[IPv6:::1]``). No display names, comments or lists."""
    if not text.isascii() or len(text) > 254:
        return False
    local, at, domain = text.rpartition("@")
    if not at or not local or len(local) > 64:
        return False
    if _DOT_STRING.search(local) is None and _QUOTED_STRING.search(local) is None:
        return False
    if domain.startswith("[") and domain.endswith("]"):
        literal = domain[1:-1]
        if literal[:5].lower() == "ipv6:":
            return is_ipv6(literal[5:])
        return is_ipv4(literal)
    return is_hostname(domain)


# -- URIs and UUIDs -----------------------------------------------------------------------------

_PCHAR = r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2})"
_URI = _compile(
    r"\A[A-Za-z][A-Za-z0-9+\-.]*:"  # scheme
    r"(?:"
    r"//(?:(?:[A-Za-z0-9\-._~!$&'()*+,;=:]|%[0-9A-Fa-f]{2})*@)?"  # userinfo
    r"(\[[^\[\]/?#@]*\]|(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})*)"  # host
    r"(?::[0-9]*)?"  # port
    rf"(?:/{_PCHAR}*)*"  # path-abempty
    rf"|/(?:{_PCHAR}+(?:/{_PCHAR}*)*)?"  # path-absolute
    rf"|{_PCHAR}+(?:/{_PCHAR}*)*"  # path-rootless
    r"|"  # path-empty
    r")"
    rf"(?:\?(?:{_PCHAR}|[/?])*)?"  # query
    rf"(?:#(?:{_PCHAR}|[/?])*)?\z"  # fragment
)
_IP_FUTURE = _compile(r"\A[vV][0-9A-Fa-f]+\.[A-Za-z0-9\-._~!$&'()*+,;=:]+\z")
_UUID = _compile(r"\A[0-9A-Fa-f]{8}-(?:[0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}\z")


def is_uri(text: str) -> bool:
    """RFC 3986 ``URI``: a scheme, then the generic syntax (a relative reference is not a URI;
    ``uri-reference`` is not asserted)."""
    match = _URI.search(text)
    if match is None:
        return False
    host = match[1] or ""
    if host.startswith("["):  # IP-literal: an IPv6 address or an IPvFuture
        inside = host[1:-1]
        return is_ipv6(inside) or _IP_FUTURE.search(inside) is not None
    return True


def is_uuid(text: str) -> bool:
    """RFC 4122 (RFC 9562) string form: 8-4-4-4-12 hex digits, any case, any version."""
    return _UUID.search(text) is not None


CHECKS: dict[str, Callable[[str], bool]] = {
    "date": is_date,
    "date-time": is_date_time,
    "email": is_email,
    "hostname": is_hostname,
    "ipv4": is_ipv4,
    "ipv6": is_ipv6,
    "time": is_time,
    "uri": is_uri,
    "uuid": is_uuid,
}
"""Format name -> check of a string (values of other types always pass, as JSON Schema says)."""

ASSERTED_FORMATS = tuple(sorted(CHECKS))


def conforms(format_name: str, value: object) -> bool:
    """Whether ``value`` passes ``format_name``: true for non-strings and unasserted formats."""
    check = CHECKS.get(format_name)
    if check is None or not isinstance(value, str):
        return True
    return value.isascii() and check(value)
