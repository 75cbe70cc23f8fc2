"""A small synchronous client of the engine's HTTP API, for the `wfe` command line.

Every failure becomes a :class:`ClientError` whose :meth:`ClientError.lines` are ready to
print, one per problem, so the CLI never shows a traceback for an expected failure.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from workflows.errors import EngineError

DEFAULT_API_URL = "http://127.0.0.1:8000"
API_URL_ENV = "WFE_API_URL"
API_KEY_ENV = "WFE_API_KEY"
TIMEOUT = httpx.Timeout(30.0, connect=5.0)


class ClientError(EngineError):
    """A failure the CLI reports as one line per problem (no traceback)."""

    def lines(self) -> list[str]:
        return [str(self)]


class ApiUnreachable(ClientError):
    """The API did not answer (nothing listening, DNS, timeout, ...)."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(
            f"cannot reach the API at {url} ({reason}); is it running? Start it with "
            f"`make dev`, or point {API_URL_ENV} at it"
        )


class ApiFailure(ClientError):
    """An error answer: the HTTP status and the API's ``errors`` items."""

    def __init__(self, status: int, errors: list[dict[str, Any]]) -> None:
        super().__init__(status, errors)
        self.status = status
        self.errors = errors

    def __str__(self) -> str:
        return "; ".join(self.lines())

    def lines(self) -> list[str]:
        hint = ""
        if self.status == 401:
            hint = f" (set {API_KEY_ENV} to a valid API key)"
        return [f"{self.status} {problem_line(item)}{hint}" for item in self.errors]

    def problems(self) -> list[str]:
        """The items as ``path: message`` (for definition problems)."""
        return [
            f"{item.get('path') or '$'}: {item.get('message', 'invalid')}" for item in self.errors
        ]


def problem_line(item: dict[str, Any]) -> str:
    """``code: message``, or ``code: path: message`` when the item has a path."""
    code = item.get("code", "error")
    message = item.get("message", "")
    path = item.get("path")
    return f"{code}: {path}: {message}" if path else f"{code}: {message}"


def _errors_of(response: httpx.Response) -> list[dict[str, Any]]:
    """The ``errors`` items of an error answer, or one made from a non-conforming body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("errors"), list) and body["errors"]:
        return [e if isinstance(e, dict) else {"message": str(e)} for e in body["errors"]]
    text = " ".join(response.text.split())[:200] or response.reason_phrase or "no details"
    return [{"code": "http_error", "message": text}]


class ApiClient:
    """Calls the API with ``Authorization: Bearer <key>``; answers parsed JSON."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: httpx.Timeout | float = TIMEOUT,
        transport: httpx.BaseTransport | None = None,
        warn: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        """``warn`` gets each warning of a 2xx answer (the items of its ``errors`` list, e.g.
        ``not_waiting``): the run or signal went through, but something needs a look."""
        self._warn = warn
        self.base_url = (base_url or os.environ.get(API_URL_ENV) or DEFAULT_API_URL).rstrip("/")
        key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
        headers = {"Accept": "application/json", "User-Agent": "wfe-cli"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        if not self.base_url.startswith(("http://", "https://")):
            raise ClientError(
                f"the API URL '{self.base_url}' must start with http:// or https:// "
                f"(--api-url or {API_URL_ENV})"
            )
        try:
            self._http = httpx.Client(
                base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
            )
        except httpx.InvalidURL as err:
            raise ClientError(f"the API URL '{self.base_url}' is not valid: {err}") from None

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: bytes | None = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        warnings: bool = True,
    ) -> tuple[int, Any]:
        """Send one request; answer (status, parsed body) or raise a :class:`ClientError`.

        ``warnings=False`` for the one 2xx answer whose ``errors`` are not warnings: the
        validate endpoint's list of a definition's problems."""
        send_headers = dict(headers or {})
        if content is not None:
            send_headers.setdefault("Content-Type", "application/json")
        query = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = self._http.request(
                method, path, json=json, content=content, params=query, headers=send_headers
            )
        except httpx.TimeoutException:
            raise ApiUnreachable(self.base_url, "no answer in time") from None
        except httpx.ConnectError as err:
            raise ApiUnreachable(self.base_url, _reason(err)) from None
        except httpx.HTTPError as err:
            raise ApiUnreachable(self.base_url, _reason(err)) from None
        if response.status_code >= 400:
            raise ApiFailure(response.status_code, _errors_of(response))
        if not response.content:
            return response.status_code, None
        try:
            body = response.json()
        except ValueError:
            raise ClientError(
                f"the API at {self.base_url} answered {method} {path} with something that is "
                "not JSON; is WFE_API_URL the engine's API?"
            ) from None
        if warnings and self._warn is not None and isinstance(body, dict):
            for item in body.get("errors") or []:
                self._warn(item if isinstance(item, dict) else {"message": str(item)})
        return response.status_code, body

    @contextlib.contextmanager
    def stream(
        self, path: str, headers: dict[str, str] | None = None, read_timeout: float = 30.0
    ) -> Iterator[httpx.Response]:
        """A streamed GET (server-sent events). Failures as for :meth:`request`, except that
        a read timeout stays ``httpx.ReadTimeout`` (the caller decides whether to go on)."""
        timeout = httpx.Timeout(read_timeout, connect=5.0)
        try:
            with self._http.stream("GET", path, headers=headers, timeout=timeout) as response:
                if response.status_code >= 400:
                    response.read()
                    raise ApiFailure(response.status_code, _errors_of(response))
                yield response
        except httpx.ReadTimeout:
            raise
        except httpx.HTTPError as err:
            raise ApiUnreachable(self.base_url, _reason(err)) from None

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)[1]

    def post(self, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        return self.request("POST", path, json=body, headers=headers)[1]

    def put_raw(self, path: str, content: bytes) -> tuple[int, Any]:
        return self.request("PUT", path, content=content)

    def post_raw(self, path: str, content: bytes, warnings: bool = True) -> Any:
        return self.request("POST", path, content=content, warnings=warnings)[1]


def _reason(err: httpx.HTTPError) -> str:
    text = str(err).strip()
    if "refused" in text.lower() or not text:
        return "connection refused"
    return text
