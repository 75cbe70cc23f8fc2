"""One TLS client context per process, shared by every outbound HTTP client of the worker.

Building a verifying context loads the whole CA bundle (about 40 ms of CPU each time). The
worker holds several clients (`http` steps, AI providers, MCP servers), and a guarded
transport built two; one context serves them all, as contexts are safe to share between
connections, threads and event loops. The CA bundle (or SSL_CERT_FILE / SSL_CERT_DIR, read as
httpx reads them) is the one in place the first time a client asks.
"""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def client_tls_context(verify: bool = True) -> ssl.SSLContext:
    """httpx's own context for ``verify``, built once per process."""
    return httpx.create_ssl_context(verify=verify)
