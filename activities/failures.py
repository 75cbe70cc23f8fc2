"""How activity errors cross into Temporal: retryable or not, and how long to wait.

Temporal owns retries (every attempt is visible in the event history); activities only say
whether an error is worth retrying and, for Retry-After, when.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

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


def permanent(message: str, failure_type: str) -> ApplicationError:
    return ApplicationError(message, type=failure_type, non_retryable=True)
