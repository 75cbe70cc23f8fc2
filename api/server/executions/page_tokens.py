"""Temporal's visibility page tokens, signed by the API so a forged one is refused at once."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from activities.runtime.settings import Settings
from api.server.errors import ApiError


def page_token_secret(settings: Settings) -> bytes:
    """What every API process of one deployment shares: its keys and where it points."""
    parts = [settings.temporal_namespace, settings.temporal_task_queue]
    if settings.api_keys is not None:
        parts.append(settings.api_keys.get_secret_value())
    if settings.api_keys_file is not None:
        try:
            parts.append(settings.api_keys_file.read_text(encoding="utf-8"))
        except OSError:
            parts.append(str(settings.api_keys_file))
    return "\x1f".join(parts).encode()


class PageTokens:
    """Temporal's page tokens, signed, so a forged one is refused at once.

    Unsigned, a token Temporal cannot read costs ~10 s of retried calls before it fails.
    The key is derived from the configured API keys, so every API process agrees on it.
    """

    def __init__(self, secret: bytes) -> None:
        self._key = hashlib.sha256(b"wfe-page-token\x1f" + secret).digest()

    def encode(self, token: bytes) -> str:
        mac = hmac.new(self._key, token, hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(mac + token).decode()

    def decode(self, text: str | None) -> bytes | None:
        if not text:
            return None
        try:
            raw = base64.urlsafe_b64decode(text.encode())
        except (binascii.Error, ValueError):
            raw = b""
        mac, token = raw[:16], raw[16:]
        expected = hmac.new(self._key, token, hashlib.sha256).digest()[:16]
        if not token or not hmac.compare_digest(mac, expected):
            raise invalid_page_token()
        return token


def invalid_page_token() -> ApiError:
    return ApiError(
        422, "invalid_page_token", "page_token is not one this API issued", "$.page_token"
    )
