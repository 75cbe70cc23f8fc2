"""The checked types of the settings (activities/runtime/settings.py): each says what a value
must look like and, when it does not, what to write instead. An empty value (``FOO=`` in a
.env file) means unset wherever a setting may be unset.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    model_validator,
)
from pydantic_settings import NoDecode

from activities.providers import parse_providers
from activities.runtime.database_url import check_database_url
from activities.runtime.storage.location import parse_storage_url


def blank(value: Any) -> bool:
    """Unset, or set to nothing but spaces (``FOO=`` in a .env file): both mean unset."""
    return value is None or (isinstance(value, str) and not value.strip())


def _secret_text(value: Any) -> Any:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def _empty_is_unset(value: Any) -> Any:
    return None if blank(value) else value


def _http_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError("must start with http:// or https://")
    return value.rstrip("/")


def _host_port(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError("must be host:port, e.g. localhost:7233")
    return value


def _providers(value: str | None) -> str | None:
    parse_providers(value)  # raises ValueError naming the problem
    return value


def _storage_url(value: str) -> str:
    parse_storage_url(value)  # raises ValueError naming the problem
    return value.strip()


def _database_url(value: Any) -> Any:
    text = _secret_text(value)
    if blank(text):
        return None  # empty: the embedded SQLite database, as when unset
    check_database_url(str(text))  # raises ValueError naming the URL, password hidden
    return str(text).strip()


def _s3_endpoint(value: str | None) -> str | None:
    if value is not None and not value.startswith(("http://", "https://")):
        raise ValueError("must start with http:// or https://, e.g. http://minio:9000")
    return value.rstrip("/") if value else value


def _bind_address(value: Any) -> Any:
    if blank(value):
        return None  # empty: metrics off, as when unset
    host, sep, port = str(value).strip().rpartition(":")
    try:
        # Temporal's exporter binds a socket address: an IP, not a host name.
        bracketed = host.startswith("[") and host.endswith("]")
        address = ipaddress.ip_address(host[1:-1] if bracketed else host)
        valid = (
            bool(sep)
            and (address.version == 4) != bracketed  # IPv6 in brackets, IPv4 without
            and port.isdigit()
            and 0 < int(port) < 65536
        )
    except ValueError:
        valid = False
    if not valid:
        raise ValueError(
            "must be IP:port to serve metrics on, e.g. 127.0.0.1:9464, 0.0.0.0:9464 or "
            "[::1]:9464 (a host name is not accepted)"
        )
    return str(value).strip()


def _metrics_key(value: Any) -> Any:
    text = _secret_text(value)
    if blank(text):
        return None  # empty: no metrics key, as when unset
    if not isinstance(text, str) or len(text.strip()) < 16:
        raise ValueError("must be at least 16 characters, e.g. `openssl rand -hex 24`")
    return text.strip()


def _log_format(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip().lower()
    if value not in ("text", "json"):
        raise ValueError(f"must be text or json, not {value!r}")
    return value


def _otlp_endpoint(value: Any) -> Any:
    if blank(value):
        return None  # empty: tracing off, as when unset
    text = str(value).strip()
    if not text.startswith(("http://", "https://")):
        raise ValueError("must be the collector's OTLP/HTTP base URL, e.g. http://localhost:4318")
    return text.rstrip("/")


def _json_object(value: Any) -> Any:
    if blank(value):
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as err:
            raise ValueError(f"must be a JSON object ({err})") from None
    if not isinstance(value, dict):
        raise ValueError("must be a JSON object")
    return value


class AIRateLimit(BaseModel):
    """One AI_RATE_LIMITS entry: what the provider allows in any 60 seconds."""

    model_config = ConfigDict(extra="forbid")
    requests_per_minute: int | None = Field(None, ge=1, le=1_000_000)
    tokens_per_minute: int | None = Field(None, ge=1, le=1_000_000_000)

    @model_validator(mode="after")
    def _a_limit(self) -> AIRateLimit:
        if self.requests_per_minute is None and self.tokens_per_minute is None:
            raise ValueError("give requests_per_minute and/or tokens_per_minute")
        return self


def _model_patterns(value: dict[str, AIRateLimit]) -> dict[str, AIRateLimit]:
    for pattern in value:
        if not pattern.strip() or "*" in pattern.rstrip("*") or pattern.count("*") > 1:
            raise ValueError(
                f"{pattern!r}: name a model (openai/gpt-4o-mini) or a prefix ending in * "
                "(openai/*, or * for every model)"
            )
    return value


def _host_limits(value: dict[str, int]) -> dict[str, int]:
    for host, limit in value.items():
        if not host.strip() or "/" in host or limit < 1 or limit > 10_000:
            raise ValueError(f"{host!r}: {limit}: give a host or host:port and 1 to 10000 requests")
    return {host.strip().lower(): limit for host, limit in value.items()}


HttpBaseUrl = Annotated[str, AfterValidator(_http_url)]
HostPort = Annotated[str, AfterValidator(_host_port)]
ProvidersText = Annotated[str | None, AfterValidator(_providers)]
StorageUrl = Annotated[str, AfterValidator(_storage_url)]
DatabaseUrl = Annotated[SecretStr | None, BeforeValidator(_database_url)]
OptionalText = Annotated[str | None, BeforeValidator(_empty_is_unset)]
S3Endpoint = Annotated[str | None, BeforeValidator(_empty_is_unset), AfterValidator(_s3_endpoint)]
BindAddress = Annotated[str | None, BeforeValidator(_bind_address)]
MetricsKey = Annotated[SecretStr | None, BeforeValidator(_metrics_key)]
LogFormat = Annotated[Literal["text", "json"], BeforeValidator(_log_format)]
OtlpEndpoint = Annotated[str | None, BeforeValidator(_otlp_endpoint)]
# JSON objects in one variable each (pydantic-settings must not decode them itself).
AIRateLimits = Annotated[
    dict[str, AIRateLimit],
    NoDecode,
    BeforeValidator(_json_object),
    AfterValidator(_model_patterns),
]
HostConcurrency = Annotated[
    dict[str, int], NoDecode, BeforeValidator(_json_object), AfterValidator(_host_limits)
]
