"""How activity errors cross into Temporal: retryable or not, and how long to wait.

Temporal owns retries (every attempt is visible in the event history); activities only say
whether an error is worth retrying and, for Retry-After, when. Foreign errors (httpx's, the
SSRF guard's) are mapped by one table per activity (:class:`Mapped` rules, :func:`classify`),
not by ``except`` ladders; the failure types are :class:`workflows.errors.FailureType`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from temporalio.exceptions import ApplicationError

# A server asking for a longer pause than this is treated as asking for this.
MAX_RETRY_AFTER = timedelta(hours=1)

RETRYABLE_STATUS = frozenset({408, 429})


def is_retryable_status(status: int) -> bool:
    return status in RETRYABLE_STATUS or status >= 500


def parse_retry_after(value: str | None, now: datetime | None = None) -> timedelta | None:
    """Retry-After as delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        delay = timedelta(seconds=max(0.0, float(value)))
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        delay = max(timedelta(0), when - (now or datetime.now(UTC)))
    return min(delay, MAX_RETRY_AFTER)


def retryable(
    message: str, failure_type: str, retry_after: timedelta | None = None
) -> ApplicationError:
    return ApplicationError(message, type=failure_type, next_retry_delay=retry_after)


def permanent(message: str, failure_type: str, *details: Any) -> ApplicationError:
    return ApplicationError(message, *details, type=failure_type, non_retryable=True)


@dataclass(frozen=True)
class Mapped:
    """How one foreign error (httpx's, ours) crosses into Temporal: its failure type, whether
    Temporal retries it, and the message (a format string over ``described``, ``err``, ``kind``
    and the caller's context)."""

    error: type[BaseException]
    failure_type: str
    message: str
    retry: bool = False


def classify(
    err: BaseException,
    table: tuple[Mapped, ...],
    fallback: Mapped,
    redact: Callable[[str], str] = str,
    **context: Any,
) -> ApplicationError:
    """The ApplicationError for ``err``: the first rule of ``table`` it is an instance of (order
    from specific to general), else ``fallback``. Every message leaves redacted."""
    rule = next((r for r in table if isinstance(err, r.error)), fallback)
    text = rule.message.format(err=err, kind=type(err).__name__, **context)
    make = retryable if rule.retry else permanent
    return make(redact(text), rule.failure_type)
