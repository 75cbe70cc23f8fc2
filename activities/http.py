"""The `http` step activity: one HTTP request with a stable Idempotency-Key.

The key is derived by the workflow from (execution, step, visit), so every retry of one step
visit carries the same key and the receiver can drop duplicates. 2xx (or ``expect_status``)
succeeds; 408/429/5xx and transport errors are retried by Temporal (Retry-After honoured);
any other status fails the step at once.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from temporalio import activity

from activities.failures import is_retryable_status, parse_retry_after, permanent, retryable
from activities.heartbeat import with_heartbeats
from activities.secrets import SecretStore, fill_secrets
from workflows.errors import FailureType
from workflows.shared import SEND_HTTP_REQUEST, HTTPRequest, HTTPResult


class ResponseTooLarge(Exception):
    pass


class HTTPStepActivities:
    """Runs `http` steps; built once per worker with a shared httpx client."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        secrets: SecretStore,
        max_response_bytes: int,
        user_agent: str = "workflow-engine",
    ) -> None:
        self._http = http
        self._secrets = secrets
        self._max_response_bytes = max_response_bytes
        self._user_agent = user_agent

    @activity.defn(name=SEND_HTTP_REQUEST)
    async def send_http_request(self, request: HTTPRequest) -> HTTPResult:
        """Activity: send the rendered request; classify the answer for Temporal."""
        fields = fill_secrets(
            {
                "url": request.url,
                "headers": dict(request.headers),
                "query": dict(request.query),
                "json": request.json_body,
                "body": request.body,
            },
            request.deferred,
            self._secrets,
        )
        headers = {"User-Agent": self._user_agent, **fields["headers"]}
        if not any(name.lower() == "idempotency-key" for name in headers):
            headers["Idempotency-Key"] = request.idempotency_key
        try:
            built = self._http.build_request(
                request.method,
                fields["url"],
                headers=headers,
                params=_query_params(fields["query"]),
                json=fields["json"] if request.has_json else None,
                content=fields["body"] if request.body is not None else None,
            )
        except (httpx.InvalidURL, httpx.UnsupportedProtocol, ValueError, TypeError) as err:
            raise permanent(
                self._secrets.redact(
                    f"invalid request for {request.method} {fields['url']}: {err}"
                ),
                FailureType.INVALID_REQUEST,
            ) from None
        described = self._secrets.redact(f"{request.method} {built.url.copy_with(query=None)}")
        try:
            result = await with_heartbeats(self._send(built))
        except ResponseTooLarge:
            raise permanent(
                f"{described}: response is larger than {self._max_response_bytes} bytes "
                "(HTTP_MAX_RESPONSE_BYTES)",
                FailureType.HTTP_STATUS,
            ) from None
        except httpx.UnsupportedProtocol:
            raise permanent(
                f"{described}: only http and https URLs are supported",
                FailureType.INVALID_REQUEST,
            ) from None
        except httpx.TimeoutException:
            raise retryable(f"{described}: timed out", FailureType.HTTP_TRANSPORT) from None
        except httpx.TransportError as err:
            raise retryable(
                f"{described}: {type(err).__name__}: {self._secrets.redact(str(err))}",
                FailureType.HTTP_TRANSPORT,
            ) from None

        status = result.status
        accepted = request.expect_status
        ok = status in accepted if accepted else 200 <= status < 300
        if ok:
            return self._secrets.redact_model(result)
        snippet = self._secrets.redact((result.text or json.dumps(result.json_))[:300])
        message = f"{described} answered {status}: {snippet}"
        if is_retryable_status(status):
            retry_after = parse_retry_after(result.headers.get("retry-after"))
            raise retryable(message, FailureType.HTTP_RETRYABLE, retry_after)
        raise permanent(message, FailureType.HTTP_STATUS)

    async def _send(self, request: httpx.Request) -> HTTPResult:
        response = await self._http.send(request, stream=True)
        try:
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > self._max_response_bytes:
                    raise ResponseTooLarge()
                chunks.append(chunk)
        finally:
            await response.aclose()
        raw = b"".join(chunks)
        headers = {k.lower(): v for k, v in response.headers.multi_items()}
        text = raw.decode(response.encoding or "utf-8", errors="replace")
        content_type = response.headers.get("content-type", "")
        if "json" in content_type and raw:
            try:
                return HTTPResult(
                    status=response.status_code, headers=headers, json=json.loads(text)
                )
            except ValueError:
                pass
        return HTTPResult(status=response.status_code, headers=headers, text=text)


def _query_params(query: dict[str, Any]) -> list[tuple[str, str]]:
    params: list[tuple[str, str]] = []
    for key, value in query.items():
        values = value if isinstance(value, list) else [value]
        for item in values:
            if item is None:
                continue
            params.append((key, item if isinstance(item, str) else json.dumps(item)))
    return params
