"""The I/O side's errors, under the engine's one root (workflows.errors.EngineError).

    EngineError (workflows.errors)
    └── IOSideError                 something the worker or the API met outside the workflow
        ├── SSRFBlocked             a request the address policy refuses, before any connection
        ├── ResponseTooLarge        an HTTP answer over HTTP_MAX_RESPONSE_BYTES
        ├── TooManyRedirects        more than HTTP_MAX_REDIRECTS redirects
        ├── SecretBodyRedirect      a redirect to another origin would re-send a secret body
        ├── MCPProtocolError        an MCP server broke the protocol (no such tool, bad schema)
        ├── InvalidExecutionId      an execution id that cannot name a log (also a ValueError)
        ├── PayloadStoreError       a large value missing or damaged in the payload store
        └── StorageError            a storage operation failed (also an OSError)
            └── PreconditionFailed  a conditional write found the object changed

Activities do not let these out as they are: activities/failures.py maps each to the
``ApplicationError`` (a FailureType, retryable or not) the workflow routes on.
"""

from __future__ import annotations

from workflows.errors import EngineError


class IOSideError(EngineError):
    """Base of the errors of activities, storage and the API's plumbing."""


class SSRFBlocked(IOSideError):
    """A request the policy refuses; raised before any connection is attempted."""

    def __init__(self, message: str, host: str = "", address: str | None = None) -> None:
        super().__init__(message)
        self.host = host
        self.address = address


class ResponseTooLarge(IOSideError):
    """An HTTP answer longer than HTTP_MAX_RESPONSE_BYTES (the read stops there)."""


class TooManyRedirects(IOSideError):
    """More redirects than HTTP_MAX_REDIRECTS."""


class SecretBodyRedirect(IOSideError):
    """A redirect to another origin would re-send a body that carries a secret."""


class InvalidExecutionId(IOSideError, ValueError):
    """An execution id that cannot name a log."""


class PayloadStoreError(IOSideError):
    """A referenced payload is missing or damaged in the payload store."""


class StorageError(IOSideError, OSError):
    """A storage operation failed (an OSError, so callers' disk-error paths cover S3 too)."""


class PreconditionFailed(StorageError):
    """A conditional put found the object changed (or present, or gone) since it was read."""


class MCPProtocolError(IOSideError):
    """An MCP server broke the protocol or refused the request: no such tool, a tool schema
    that is not JSON Schema, a JSON-RPC error answer."""
