"""What browsers need told: no page of this API may be framed, and no other site may make a
browser change anything here (README "HTTP API", "Browsers").

- ``FrameGuard``: every answer says ``X-Frame-Options: DENY``, and an HTML answer without a
  policy of its own gets ``Content-Security-Policy: frame-ancestors 'none'``. /docs takes the
  API key in a form: framed by another site, a click there could be steered (clickjacking).
- ``CrossSiteGuard``: a request that may change something (not GET, HEAD or OPTIONS) coming
  from another site is refused with 403 ``cross_site_refused``: one whose ``Sec-Fetch-Site``
  is ``cross-site`` or ``same-site`` (another port of the same host is such a site), or whose
  ``Origin`` is neither this API's own (the request's scheme and Host) nor API_PUBLIC_URL's.
  Such a request carries no API key (a browser sends none to another origin without a CORS
  preflight, which this API never grants), so it matters where keys are not checked:
  AUTH_DISABLED=true. A form or text body (what a browser may send anywhere without asking)
  with no key and neither header, as only a browser too old to send them would, is refused
  too (403 ``form_needs_key``): send an ``Authorization`` header or a JSON body. Webhooks
  (/api/hooks/...) are signed by their sender and not checked here.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI

from activities.runtime.settings import Settings
from api.server.asgi import HttpMiddleware, send_error

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
FOREIGN_SITES = frozenset({"cross-site", "same-site"})
# Content types a browser sends to any origin without a preflight.
SIMPLE_BODIES = frozenset(
    {"application/x-www-form-urlencoded", "multipart/form-data", "text/plain"}
)
UNCHECKED_PREFIXES = ("/api/hooks/",)
FRAME_POLICY = b"frame-ancestors 'none'"
_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` in lower case, the default port left out; None if not a URL."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    shown = "" if port in (None, _DEFAULT_PORTS[parts.scheme]) else f":{port}"
    return f"{parts.scheme}://{host.lower()}{shown}"


class FrameGuard(HttpMiddleware):
    """ASGI middleware: no answer of this app may be shown inside another page's frame."""

    async def http(self, scope: Any, receive: Any, send: Any) -> None:
        async def guarded(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                names = {name.lower() for name, _ in headers}
                if b"x-frame-options" not in names:
                    headers.append((b"x-frame-options", b"DENY"))
                html = any(
                    name.lower() == b"content-type" and value.lower().startswith(b"text/html")
                    for name, value in headers
                )
                if html and b"content-security-policy" not in names:
                    headers.append((b"content-security-policy", FRAME_POLICY))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, guarded)


class CrossSiteGuard(HttpMiddleware):
    """ASGI middleware: state-changing requests from other sites are refused (module doc)."""

    def __init__(self, app: Any, public_url: str | None = None) -> None:
        super().__init__(app)
        self.public_origin = origin_of(public_url) if public_url else None

    async def http(self, scope: Any, receive: Any, send: Any) -> None:
        refusal = self._refusal(scope)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        code, message = refusal
        await send_error(send, 403, code, message, [(b"vary", b"Origin")])

    def _refusal(self, scope: Any) -> tuple[str, str] | None:
        path, root = str(scope["path"]), str(scope.get("root_path") or "")
        if root and path.startswith(root):
            path = path[len(root) :]  # behind a proxy's prefix, the app's own path
        if scope["method"] in SAFE_METHODS or path.startswith(UNCHECKED_PREFIXES):
            return None
        headers = {name.lower(): value for name, value in scope.get("headers") or []}
        site = headers.get(b"sec-fetch-site", b"").decode("latin-1").strip().lower()
        origin = headers.get(b"origin", b"").decode("latin-1").strip()
        if site in FOREIGN_SITES or (origin and not self._own(origin, scope, headers)):
            return (
                "cross_site_refused",
                f"a {scope['method']} from another site ({origin or site}) is refused: this "
                "API changes nothing for a page of another origin",
            )
        content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        keyless = b"authorization" not in headers
        if keyless and not origin and not site and content_type.decode("latin-1") in SIMPLE_BODIES:
            return (
                "form_needs_key",
                "a form or text body without an API key must come from this API's own pages "
                "(their browser says so with Origin): send 'Authorization: Bearer <key>' or a "
                "JSON body",
            )
        return None

    def _own(self, origin: str, scope: Any, headers: dict[bytes, bytes]) -> bool:
        claimed = origin_of(origin)
        if claimed is None:
            return False  # "null" (a sandboxed frame, a file) or not a URL at all
        host = headers.get(b"host", b"").decode("latin-1").strip()
        own = origin_of(f"{scope.get('scheme', 'http')}://{host}") if host else None
        return claimed in (own, self.public_origin)


def install_web_security(app: FastAPI, settings: Settings) -> None:
    """Both guards; a request from another site is refused before its body is read."""
    app.add_middleware(CrossSiteGuard, public_url=settings.api_public_url)
    app.add_middleware(FrameGuard)
