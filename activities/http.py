"""The `http` step activity: one HTTP request with a stable Idempotency-Key.

The key is derived by the workflow from (execution, step, visit), so every retry of one step
visit carries the same key and the receiver can drop duplicates. 2xx (or ``expect_status``)
succeeds; 408/429/5xx and transport errors are retried by Temporal (Retry-After honoured);
any other status fails the step at once.

Every URL goes through the SSRF guard (activities/ssrf.py): the client's transport checks and
pins each connection, and redirects are followed here, hop by hop, so each target is checked
again (303 and 302 become GET, 307/308 keep method and body, credentials are dropped when the
origin changes). A refused URL fails the step at once with type ``SSRFBlocked``.

Secrets (docs/secrets.md): a secret bound to workflows or hosts (activities/secret_scopes.py)
is checked before anything is sent; a header whose value came from a ``{secrets.X}`` slot is dropped
when a redirect leaves the origin, like Authorization; a body that carries one is never sent
to another origin (the step fails instead of posting a body-less request). Every text that
leaves the activity (errors, the result) is redacted; so is an unexpected exception's.

A step may not set the headers in ``FORBIDDEN_REQUEST_HEADERS`` (Host, Content-Length, ...):
checked at save and again here, since a different Host would reach another virtual host
than the one the guard checked.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import Any

import httpx
from temporalio import activity
from temporalio.exceptions import FailureError

from activities.errors import ResponseTooLarge, SecretBodyRedirect, SSRFBlocked, TooManyRedirects
from activities.failures import (
    Mapped,
    classify,
    is_retryable_status,
    parse_retry_after,
    permanent,
    retryable,
)
from activities.heartbeat import with_heartbeats
from activities.logs import WorkflowLogger, carried_log
from activities.rate_limits import RateLimits
from activities.secrets import SecretStore, fill_secrets
from activities.ssrf import DEFAULT_PORTS, SSRF_BLOCKED, AddressPolicy
from workflows.errors import FailureType
from workflows.messages import SEND_HTTP_REQUEST, HTTPRequest, HTTPResult
from workflows.validation import header_problem

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Dropped when a redirect leaves the origin (scheme, host, port) the user addressed.
CREDENTIAL_HEADERS = ("authorization", "proxy-authorization", "cookie")
# Dropped with the body when a redirect turns the request into a GET.
BODY_HEADERS = ("content-type", "content-length", "content-encoding", "transfer-encoding")


@dataclass(frozen=True)
class SecretCarriers:
    """What in a request holds a filled-in ``{secrets.X}``: which headers, and the body."""

    headers: frozenset[str] = frozenset()
    body: bool = False

    @classmethod
    def of(cls, request: HTTPRequest) -> SecretCarriers:
        # Slot locations are relative to {"url", "headers", "query", "json", "body"}.
        headers = {
            str(slot.location[1]).lower()
            for slot in request.deferred
            if len(slot.location) >= 2 and slot.location[0] == "headers"
        }
        body = any(slot.location[:1] in (["json"], ["body"]) for slot in request.deferred)
        return cls(frozenset(headers), body)


# How a failed send crosses into Temporal (activities/failures.py), specific before general.
SEND_FAILURES = (
    Mapped(SecretBodyRedirect, FailureType.HTTP_STATUS, "{described}: {err}"),
    Mapped(SSRFBlocked, SSRF_BLOCKED, "{described}: {err}"),
    Mapped(TooManyRedirects, FailureType.HTTP_STATUS, "{described}: {err}"),
    Mapped(httpx.InvalidURL, FailureType.INVALID_REQUEST, "{described}: invalid redirect: {err}"),
    Mapped(
        ResponseTooLarge,
        FailureType.HTTP_STATUS,
        "{described}: response is larger than {limit} bytes (HTTP_MAX_RESPONSE_BYTES)",
    ),
    Mapped(
        httpx.UnsupportedProtocol,
        FailureType.INVALID_REQUEST,
        "{described}: only http and https URLs are supported",
    ),
    Mapped(httpx.TimeoutException, FailureType.HTTP_TRANSPORT, "{described}: timed out", True),
    Mapped(httpx.TransportError, FailureType.HTTP_TRANSPORT, "{described}: {kind}: {err}", True),
)
# Anything unforeseen (httpx.DecodingError, a bug) would reach history and the worker's log
# with its raw message: it leaves redacted, and retryable as Temporal would have made it.
SEND_FALLBACK = Mapped(Exception, FailureType.HTTP_TRANSPORT, "{described}: {kind}: {err}", True)


class HTTPStepActivities:
    """Runs `http` steps; built once per worker with a shared httpx client.

    ``http`` should come from :func:`activities.ssrf.guarded_client` with the same ``policy``:
    its transport resolves, checks and pins every connection. The activity checks each URL
    (first request and every redirect hop) against ``policy`` before sending it.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        secrets: SecretStore,
        max_response_bytes: int,
        user_agent: str = "workflow-engine",
        policy: AddressPolicy | None = None,
        max_redirects: int = 5,
        logs: WorkflowLogger | None = None,
        limits: RateLimits | None = None,
    ) -> None:
        self._http = http
        self._limits = limits  # HTTP_HOST_CONCURRENCY
        self._logs = logs
        self._secrets = secrets
        self._max_response_bytes = max_response_bytes
        self._user_agent = user_agent
        self._policy = policy or AddressPolicy()
        self._max_redirects = max_redirects

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
            request.workflow_id,
            request.step_id,
        )
        built = self._build(request, fields)
        # Before anything is sent: a secret bound to hosts goes to those hosts only.
        self._secrets.check_host(
            request.deferred,
            built.url.host,
            built.url.port or DEFAULT_PORTS.get(built.url.scheme, 0),
            request.step_id,
        )
        async with carried_log(self._logs, request.log) as log:
            permit = self._limits.host_permit(str(built.url)) if self._limits else None
            async with permit or contextlib.nullcontext():
                result = await self._send(request, built)
            result.log_written = await log.written()
        return result

    def _build(self, request: HTTPRequest, fields: dict[str, Any]) -> httpx.Request:
        """The request to send from the filled-in fields; InvalidRequest if it cannot be."""
        for name, value in fields["headers"].items():
            # Saved definitions were checked; this holds for older ones too. The message
            # names the header, never its (possibly secret) value.
            problem = header_problem(str(name), str(value))
            if problem is not None:
                raise permanent(
                    self._secrets.redact(f"step '{request.step_id}': {problem}"),
                    FailureType.INVALID_REQUEST,
                )
        headers = {"User-Agent": self._user_agent, **fields["headers"]}
        if not any(name.lower() == "idempotency-key" for name in headers):
            headers["Idempotency-Key"] = request.idempotency_key
        try:
            # `query` adds to (and overrides keys of) a query already in the URL; httpx's
            # `params=` would replace that query, dropping `?key=...` written in the URL.
            url: httpx.URL | str = fields["url"]
            params = _query_params(fields["query"])
            if params:  # the URL is parsed once more for each: only when there is something
                url = httpx.URL(fields["url"]).copy_merge_params(tuple(params))
            built = self._http.build_request(
                request.method,
                url,
                headers=headers,
                json=fields["json"] if request.has_json else None,
                content=fields["body"] if request.body is not None else None,
            )
            if not built.url.scheme or (
                built.url.scheme in ("http", "https") and not built.url.host
            ):
                raise ValueError("the URL must be absolute: http(s)://host/...")
        except (httpx.InvalidURL, httpx.UnsupportedProtocol, ValueError, TypeError) as err:
            raise permanent(
                self._secrets.redact(
                    f"invalid request for {request.method} {fields['url']}: {err}"
                ),
                FailureType.INVALID_REQUEST,
            ) from None
        return built

    def _described(self, request: HTTPRequest, built: httpx.Request) -> str:
        """The request as messages name it: method and URL (no credentials, no query)."""
        return self._secrets.redact(f"{request.method} {_shown(built.url)}")

    async def _send(self, request: HTTPRequest, built: httpx.Request) -> HTTPResult:
        """Send the request; the answer, or a failure classified for Temporal."""
        try:
            result = await with_heartbeats(
                self._send_following_redirects(built, SecretCarriers.of(request))
            )
        except FailureError:
            raise  # already classified (or Temporal's own cancellation)
        except Exception as err:
            raise classify(
                err,
                SEND_FAILURES,
                SEND_FALLBACK,
                self._secrets.redact,
                described=self._described(request, built),
                limit=self._max_response_bytes,
            ) from None

        status = result.status
        accepted = request.expect_status
        ok = status in accepted if accepted else 200 <= status < 300
        if ok:
            return self._secrets.redact_model(result)
        snippet = self._secrets.redact((result.text or json.dumps(result.json_))[:300])
        message = f"{self._described(request, built)} answered {status}: {snippet}"
        if is_retryable_status(status):
            retry_after = parse_retry_after(result.headers.get("retry-after"))
            raise retryable(message, FailureType.HTTP_RETRYABLE, retry_after)
        raise permanent(message, FailureType.HTTP_STATUS)

    async def _send_following_redirects(
        self, request: httpx.Request, carriers: SecretCarriers = SecretCarriers()
    ) -> HTTPResult:
        """Send, following up to ``max_redirects`` redirects; every hop is checked first."""
        hops = 0
        while True:
            try:
                self._policy.check_url(request.url)
                response = await self._http.send(request, stream=True, follow_redirects=False)
            except SSRFBlocked as err:
                if not hops:
                    raise
                raise SSRFBlocked(
                    f"redirect to {_shown(request.url)} refused: {err}", err.host, err.address
                ) from None
            location = response.headers.get("location")
            if response.status_code not in REDIRECT_STATUSES or location is None:
                return await self._read(response)
            await response.aclose()
            if hops >= self._max_redirects:
                raise TooManyRedirects(
                    f"stopped after {hops} redirects (HTTP_MAX_REDIRECTS={self._max_redirects})"
                )
            hops += 1
            # Headers dropped when leaving the origin stay dropped for every later hop.
            request = self._redirect(request, response.status_code, location, carriers)

    def _redirect(
        self,
        request: httpx.Request,
        status: int,
        location: str,
        carriers: SecretCarriers = SecretCarriers(),
    ) -> httpx.Request:
        url = request.url.join(location).copy_with(fragment=None)
        method = request.method
        if (status in (302, 303) and method != "HEAD") or (status == 301 and method == "POST"):
            method = "GET"
        headers = httpx.Headers(request.headers)
        headers.pop("host", None)
        content: bytes | None = request.content
        if method != request.method:
            content = None
            for name in BODY_HEADERS:
                headers.pop(name, None)
        if _origin(url) != _origin(request.url):
            # Like a browser's Authorization: credentials and every header filled from a
            # secret stay with the origin the step addressed.
            for name in (*CREDENTIAL_HEADERS, *carriers.headers):
                headers.pop(name, None)
            if carriers.body and content:
                raise SecretBodyRedirect(
                    f"answered {status}, a redirect to another origin "
                    f"({_shown(url)}), which would re-send a body that carries a secret; "
                    "not followed: point the step at the final URL"
                )
        return self._http.build_request(method, url, headers=headers, content=content or None)

    async def _read(self, response: httpx.Response) -> HTTPResult:
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
        content_type = response.headers.get("content-type", "")
        text = raw.decode(_encoding(response, content_type), errors="replace")
        if "json" in content_type and raw:
            try:
                return HTTPResult(
                    status=response.status_code, headers=headers, json_=json.loads(text)
                )
            except (ValueError, RecursionError):
                pass  # not JSON after all (or absurdly deep): keep it as text
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


def _encoding(response: httpx.Response, content_type: str) -> str:
    """The body's text encoding: the Content-Type's charset, else UTF-8 (the client's default).
    Without a charset, httpx's own lookup (a MIME parser) is skipped: it would say UTF-8."""
    if "charset" not in content_type.lower():
        return "utf-8"
    return response.encoding or "utf-8"


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port or {"http": 80, "https": 443}.get(url.scheme)


def _shown(url: httpx.URL) -> str:
    """A URL for messages: no credentials, no query."""
    return str(url.copy_with(username=None, password=None, query=None, fragment=None))
