"""The SSRF guard of `http` steps (activities/ssrf.py).

Packets go only to loopback. Non-loopback targets (private, link-local, metadata, public) are
checked through seams: a fake resolver answers from a table and a recording network backend
stands in for the socket layer, so a refusal is proven to happen before any connection attempt
(``attempts == []``) and an allowed target is only recorded, never dialled. The live tests use
the real worker and Temporal with loopback addresses outside the test allow-list (127.0.0.1):
127.0.0.2, ``[::1]``, ``2130706434``, ``127.1`` and a redirect to 127.0.0.2, with tripwire
listeners on those addresses proving nothing connected.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import re
import socket
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx
import pytest
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.http import HTTPStepActivities
from activities.runtime.settings import Settings
from activities.secrets import SecretStore
from activities.ssrf import (
    SSRF_BLOCKED,
    AddressPolicy,
    GuardedNetworkBackend,
    SSRFBlocked,
    guarded_client,
    parse_allow_list,
)
from tests.conftest import outcome, read_log, start_definition
from tests.fakes import FakeOpenRouter, HttpSink, Reply
from workflows.errors import ConfigurationError
from workflows.messages import SEND_HTTP_REQUEST, HTTPRequest

# -- seams: a table resolver and a recording backend (nothing leaves the process) --------------

PUBLIC = "93.184.216.34"  # never contacted: only ever handed to the recording backend
PUBLIC_2 = "93.184.216.35"
PUBLIC6 = "2606:2800:220:1:248:1893:25c8:1946"

DNS: dict[str, list[str]] = {
    "public.example.test": [PUBLIC],
    "public6.example.test": [PUBLIC6],
    "two.example.test": [PUBLIC, PUBLIC_2],
    "internal.example.test": ["10.0.0.5"],
    "api.internal": ["10.0.0.5"],
    "lan.example.test": ["192.168.1.20"],
    "cgnat.example.test": ["100.64.1.1"],
    "loop.example.test": ["127.0.0.1"],
    "loop6.example.test": ["::1"],
    "meta.example.test": ["169.254.169.254"],
    "meta6.example.test": ["fd00:ec2::254"],
    "ula.example.test": ["fd12:3456::1"],
    "linklocal6.example.test": ["fe80::1%1"],
    "mapped.example.test": ["::ffff:10.0.0.1"],
    "nat64.example.test": ["64:ff9b::a9fe:a9fe"],
    "zero.example.test": ["0.0.0.0"],
    "mixed.example.test": [PUBLIC, "10.0.0.1"],
    "mixed6.example.test": [PUBLIC6, "::1"],
    "private-first.example.test": ["172.16.0.9", PUBLIC],
    "127.0.0.1.nip.example.test": ["127.0.0.1"],
}


class FakeResolver:
    """Answers from a table (or a per-name sequence of answers); records every lookup."""

    def __init__(self, table: dict[str, list[str]] | None = None) -> None:
        self.table = dict(DNS if table is None else table)
        self.sequences: dict[str, deque[list[str]]] = {}
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.calls.append((host, port))
        if self.sequences.get(host):
            return self.sequences[host].popleft()
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, f"{host}: unknown in the test table")
        return self.table[host]


class FakeStream(httpcore.AsyncNetworkStream):
    """A connection that answers one scripted HTTP/1.1 response and records what was sent."""

    def __init__(self, reply: bytes) -> None:
        self.sent = bytearray()
        self._reply = reply

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        chunk, self._reply = self._reply[:max_bytes], self._reply[max_bytes:]
        return chunk

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.sent += buffer

    async def aclose(self) -> None:
        pass

    async def start_tls(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        return self

    def get_extra_info(self, info: str) -> Any:
        return None


class RecordingBackend(httpcore.AsyncNetworkBackend):
    """Stands in for the socket layer: records each dial; answers scripted replies or fails."""

    def __init__(self) -> None:
        self.attempts: list[tuple[str, int]] = []
        self.replies: dict[str, deque[bytes]] = {}
        self.streams: list[tuple[str, FakeStream]] = []

    def script(self, address: str, *replies: bytes) -> None:
        self.replies.setdefault(address, deque()).extend(replies)

    async def connect_tcp(
        self, host: str, port: int, timeout: Any = None, local_address: Any = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:  # fmt: skip
        self.attempts.append((host, port))
        queue = self.replies.get(host)
        if not queue:
            raise httpcore.ConnectError(f"recorded {host}:{port}; not dialled")
        stream = FakeStream(queue.popleft())
        self.streams.append((host, stream))
        return stream

    async def connect_unix_socket(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("no unix sockets")

    async def sleep(self, seconds: float) -> None:
        pass


def http_reply(status: int, headers: dict[str, str] | None = None, body: bytes = b"") -> bytes:
    lines = [f"HTTP/1.1 {status} X"]
    for name, value in {**(headers or {}), "Content-Length": str(len(body))}.items():
        lines.append(f"{name}: {value}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


TIMEOUT = httpx.Timeout(5.0)
LIMITS = httpx.Limits(max_connections=10)


async def attempt(
    url: str, allow: str = "", resolver: FakeResolver | None = None
) -> tuple[BaseException | None, RecordingBackend, FakeResolver]:
    """GET ``url`` through the guarded client with the seams; the exception it ended with."""
    resolver = resolver or FakeResolver()
    backend = RecordingBackend()
    policy = AddressPolicy.from_setting(allow, resolver=resolver)
    async with guarded_client(policy, TIMEOUT, LIMITS, network_backend=backend) as client:
        try:
            await client.get(url)
        except (SSRFBlocked, httpx.HTTPError, httpx.InvalidURL) as err:
            return err, backend, resolver
    return None, backend, resolver


# -- the corpus: every one refused before any connection ----------------------------------------

BLOCKED: list[tuple[str, str]] = [  # (url, HTTP_ALLOWED_HOSTS)
    # schemes
    ("file:///etc/passwd", ""),
    ("gopher://127.0.0.1:70/_GET", ""),
    ("ftp://public.example.test/", ""),
    ("dict://127.0.0.1:11211/stat", ""),
    ("ws://public.example.test/", ""),
    ("ldap://public.example.test/", ""),
    # IPv4 literals
    ("http://127.0.0.1/", ""),
    ("http://127.0.0.2:8080/", ""),
    ("http://127.255.255.254/", ""),
    ("http://10.0.0.1/", ""),
    ("http://10.255.255.255/", ""),
    ("http://172.16.0.1/", ""),
    ("http://172.31.255.255/", ""),
    ("http://192.168.1.1/", ""),
    ("http://169.254.0.1/", ""),
    ("http://169.254.169.254/latest/meta-data/", ""),
    ("http://169.254.170.2/v2/credentials", ""),
    ("http://100.100.100.200/latest/meta-data/", ""),
    ("http://100.64.0.1/", ""),
    ("http://0.0.0.0/", ""),
    ("http://0.1.2.3/", ""),
    ("http://224.0.0.1/", ""),
    ("http://239.255.255.250/", ""),
    ("http://255.255.255.255/", ""),
    ("http://240.0.0.1/", ""),
    ("http://192.0.0.170/", ""),
    ("http://192.0.2.1/", ""),
    ("http://198.18.0.1/", ""),
    # numeric spellings (refused whatever they stand for)
    ("http://2130706433/", ""),
    ("http://2130706434/", ""),
    ("http://0177.0.0.1/", ""),
    ("http://0x7f.0.0.1/", ""),
    ("http://0x7f000001/", ""),
    ("http://017700000001/", ""),
    ("http://127.1/", ""),
    ("http://0x7f.1/", ""),
    ("http://10.1/", ""),
    ("http://3232235777/", ""),  # 192.168.1.1
    ("http://0xa9.0xfe.0xa9.0xfe/", ""),  # 169.254.169.254
    ("http://2852039166/", ""),  # 169.254.169.254
    ("http://1572395042/", ""),  # 93.184.216.34: public, but never written this way
    ("http://0/", ""),
    # IPv6 literals
    ("http://[::1]/", ""),
    ("http://[0:0:0:0:0:0:0:1]:8080/", ""),
    ("http://[::]/", ""),
    ("http://[fe80::1]/", ""),
    ("http://[fe80::1%25eth0]/", ""),
    ("http://[fc00::1]/", ""),
    ("http://[fd12:3456::1]/", ""),
    ("http://[fd00:ec2::254]/latest/meta-data/", ""),
    ("http://[ff02::1]/", ""),
    ("http://[fec0::1]/", ""),
    ("http://[2001:db8::1]/", ""),
    ("http://[100::1]/", ""),
    # IPv4 inside IPv6
    ("http://[::ffff:127.0.0.1]/", ""),
    ("http://[::ffff:10.0.0.1]/", ""),
    ("http://[::ffff:7f00:2]/", ""),
    ("http://[::ffff:169.254.169.254]/", ""),
    ("http://[::127.0.0.1]/", ""),  # IPv4-compatible
    ("http://[::a00:1]/", ""),
    ("http://[64:ff9b::127.0.0.1]/", ""),  # NAT64
    ("http://[64:ff9b::a9fe:a9fe]/", ""),
    ("http://[64:ff9b::10.0.0.1]/", ""),
    ("http://[64:ff9b:1::1]/", ""),  # local-use NAT64
    ("http://[2002:7f00:1::1]/", ""),  # 6to4 of 127.0.0.1
    ("http://[2002:a9fe:a9fe::]/", ""),  # 6to4 of 169.254.169.254
    ("http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/", ""),  # Teredo of 127.0.0.1
    # names (resolved by the fake table, or refused by name without asking DNS)
    ("http://localhost/", ""),
    ("http://LOCALHOST./", ""),
    ("http://app.localhost/", ""),
    ("http://metadata.google.internal/computeMetadata/v1/", ""),
    ("http://metadata/", ""),
    ("http://meta.example.test/latest/meta-data/", ""),
    ("http://meta6.example.test/", ""),
    ("http://internal.example.test/", ""),
    ("https://internal.example.test/", ""),
    ("http://lan.example.test/", ""),
    ("http://cgnat.example.test/", ""),
    ("http://loop.example.test/", ""),
    ("http://loop6.example.test/", ""),
    ("http://ula.example.test/", ""),
    ("http://linklocal6.example.test/", ""),
    ("http://mapped.example.test/", ""),
    ("http://nat64.example.test/", ""),
    ("http://zero.example.test/", ""),
    ("http://127.0.0.1.nip.example.test/", ""),
    # any private answer refuses the name, wherever it is in the list
    ("http://mixed.example.test/", ""),
    ("http://mixed6.example.test/", ""),
    ("http://private-first.example.test/", ""),
    # credentials and userinfo tricks: the host is what counts
    ("http://user@127.0.0.1/", ""),
    ("http://user:pass@169.254.169.254/", ""),
    ("http://public.example.test@127.0.0.1/", ""),
    ("http://127.0.0.1:80@10.0.0.1/", "127.0.0.1"),
    # an allow-list permits exactly what it names
    ("http://127.0.0.2/", "127.0.0.1"),
    ("http://127.1/", "127.0.0.1"),
    ("http://2130706433/", "127.0.0.1"),
    ("http://[::ffff:127.0.0.1]/", "127.0.0.1"),
    ("http://[::1]/", "127.0.0.1"),
    ("http://localhost/", "127.0.0.1"),
    ("http://127.0.0.1:9090/", "127.0.0.1:8080"),
    ("http://api.internal:443/", "api.internal:8443"),
    ("http://internal.example.test/", "api.internal"),
    ("http://169.254.169.254/", "169.254.0.0/16"),  # metadata needs its exact address
    ("http://169.254.169.254/", "0.0.0.0/0"),
    ("http://meta.example.test/", "meta.example.test"),
    ("http://[fd00:ec2::254]/", "fd00::/8"),
    ("http://172.16.0.1/", "10.0.0.0/8"),
]


# URLs httpx refuses to parse; the connection layer still refuses their hosts (below).
REJECTED_BY_HTTPX = {"http://0177.0.0.1/"}  # "Invalid IPv4 address"


@pytest.mark.parametrize(("url", "allow"), BLOCKED, ids=[f"{u} allow={a}" for u, a in BLOCKED])
async def test_corpus_is_refused_before_any_connection(url: str, allow: str) -> None:
    err, backend, _ = await attempt(url, allow)
    if url in REJECTED_BY_HTTPX:  # httpx will not even parse it (the step fails as invalid)
        assert isinstance(err, httpx.InvalidURL), f"{url}: {err!r}"
    else:
        assert isinstance(err, SSRFBlocked), f"{url} was not refused: {err!r}"
    assert backend.attempts == []
    assert str(err)


HTTP_BLOCKED = [(u, a) for u, a in BLOCKED if u.startswith(("http://", "https://"))]


@pytest.mark.parametrize(("url", "allow"), HTTP_BLOCKED)
async def test_the_connection_layer_alone_refuses_the_corpus(url: str, allow: str) -> None:
    """Defence in depth: the backend refuses even a host that skipped the URL check."""
    parsed = urlsplit(url)  # not httpx: it rejects some spellings before the guard sees them
    assert parsed.hostname
    inner = RecordingBackend()
    guard = GuardedNetworkBackend(AddressPolicy.from_setting(allow, FakeResolver()), inner)
    with pytest.raises(SSRFBlocked):
        await guard.connect_tcp(parsed.hostname, parsed.port or 80)
    assert inner.attempts == []


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.2:8080/x", "http://[::1]:9000/x", "http://localhost:8000/x",
     "https://internal.example.test/x", "http://meta.example.test/"],
)  # fmt: skip
async def test_the_hint_names_one_host_and_port_and_that_entry_lets_it_through(url: str) -> None:
    """The refusal suggests the narrowest entry (never a whole address range), and adding
    exactly that entry is enough: the same request then passes the guard."""
    err, _, _ = await attempt(url)
    suggested = re.findall(r"'([^']+)'", str(err).split("; add ", 1)[1])
    port = urlsplit(url).port or {"http": 80, "https": 443}[urlsplit(url).scheme]
    assert suggested and all(entry.endswith(f":{port}") for entry in suggested), str(err)
    for entry in suggested:
        policy = AddressPolicy.from_setting(
            entry, FakeResolver({**DNS, "localhost": ["127.0.0.1"]})
        )
        host = urlsplit(url).hostname
        assert host
        assert await policy.resolve(host, port)


def test_corpus_size() -> None:
    assert len(BLOCKED) >= 100


async def test_refusal_names_host_address_reason_and_the_setting() -> None:
    err, _, _ = await attempt("http://127.0.0.2:8080/x")
    assert str(err) == (
        "refused to connect to 127.0.0.2 port 8080: 127.0.0.2 is a loopback address; "
        "add '127.0.0.2:8080' to HTTP_ALLOWED_HOSTS to allow it"
    )
    err, _, _ = await attempt("https://internal.example.test/x")
    assert "internal.example.test port 443 (resolved to 10.0.0.5)" in str(err)
    assert "10.0.0.5 is a private address" in str(err)
    assert "'internal.example.test:443' or '10.0.0.5:443' to HTTP_ALLOWED_HOSTS" in str(err)
    err, _, _ = await attempt("http://meta.example.test/")
    assert "169.254.169.254 is a cloud metadata address" in str(err)
    assert "exact address '169.254.169.254:80'" in str(err)
    err, _, _ = await attempt("http://[::ffff:10.0.0.1]/")
    assert "IPv4-mapped IPv6 address of 10.0.0.1, a private address" in str(err)
    err, _, _ = await attempt("http://2130706434/")
    assert "non-canonical numeric form of 127.0.0.2" in str(err)
    err, _, _ = await attempt("gopher://127.0.0.1/")
    assert "only http and https" in str(err)


# -- allowed: checked, then handed to the (recording) socket layer at the checked address -------

ALLOWED: list[tuple[str, str, tuple[str, int] | None]] = [  # (url, HTTP_ALLOWED_HOSTS, dialled)
    ("http://93.184.216.34/", "", (PUBLIC, 80)),
    ("https://public.example.test/x", "", (PUBLIC, 443)),
    ("http://public6.example.test/", "", (PUBLIC6, 80)),
    (f"http://[{PUBLIC6}]:8443/", "", (PUBLIC6, 8443)),
    ("http://[64:ff9b::5db8:d822]/", "", ("64:ff9b::5db8:d822", 80)),  # NAT64 of a public IPv4
    ("http://[::ffff:93.184.216.34]/", "", (str(ipaddress.ip_address("::ffff:" + PUBLIC)), 80)),
    ("http://user:pw@public.example.test/", "", (PUBLIC, 80)),
    ("http://api.internal/", "api.internal", ("10.0.0.5", 80)),
    ("http://API.Internal./", "api.internal", ("10.0.0.5", 80)),
    ("http://api.internal:8443/", "api.internal:8443", ("10.0.0.5", 8443)),
    ("http://10.0.0.5/", "10.0.0.5", ("10.0.0.5", 80)),
    ("http://internal.example.test/", "10.0.0.5", ("10.0.0.5", 80)),
    ("http://10.1.2.3:9000/", "10.0.0.0/8", ("10.1.2.3", 9000)),
    ("http://10.1.2.3:9000/", "10.0.0.0/8:9000", ("10.1.2.3", 9000)),
    ("http://lan.example.test/", " 10.0.0.0/8 , 192.168.0.0/16 ,", ("192.168.1.20", 80)),
    ("http://[fd12:3456::1]/", "fd00::/8", ("fd12:3456::1", 80)),
    ("http://[::1]:8080/", "[::1]:8080", ("::1", 8080)),
    ("http://localhost/", "localhost", None),  # allowed by name: the resolver is asked
    ("http://169.254.169.254/", "169.254.169.254", ("169.254.169.254", 80)),
    ("http://127.0.0.1:5000/", "127.0.0.1", ("127.0.0.1", 5000)),
]


@pytest.mark.parametrize(("url", "allow", "dialled"), ALLOWED)
async def test_allowed_targets_pass_and_are_dialled_at_the_checked_address(
    url: str, allow: str, dialled: tuple[str, int] | None
) -> None:
    resolver = FakeResolver({**DNS, "localhost": ["127.0.0.1", "::1"]})
    err, backend, _ = await attempt(url, allow, resolver)
    assert isinstance(err, httpx.ConnectError), err  # the recording backend never dials
    if dialled is None:
        assert backend.attempts == [("127.0.0.1", 80), ("::1", 80)]
    else:
        assert backend.attempts == [dialled]


async def test_dns_rebinding_dials_the_checked_answer_and_lookups_are_not_repeated() -> None:
    resolver = FakeResolver()
    resolver.sequences["rebind.example.test"] = deque([[PUBLIC], ["127.0.0.1"], ["10.0.0.1"]])
    backend = RecordingBackend()
    backend.script(PUBLIC, http_reply(200, body=b"hello"))
    policy = AddressPolicy.from_setting("", resolver=resolver)
    async with guarded_client(policy, TIMEOUT, LIMITS, network_backend=backend) as client:
        first = await client.get("http://rebind.example.test/a")
        assert first.text == "hello"
        # The name now answers loopback: the next connection is refused, nothing dialled.
        with pytest.raises(SSRFBlocked, match=r"resolved to 127\.0\.0\.1"):
            await client.get("http://rebind.example.test/b")
    assert resolver.calls == [("rebind.example.test", 80)] * 2  # once per connection
    assert backend.attempts == [(PUBLIC, 80)]
    host_line = bytes(backend.streams[0][1].sent).split(b"\r\n")[1]
    assert host_line == b"Host: rebind.example.test"  # the name still travels in Host


async def test_every_answer_is_tried_in_order_and_only_those() -> None:
    err, backend, resolver = await attempt("http://two.example.test/")
    assert isinstance(err, httpx.ConnectError)
    assert backend.attempts == [(PUBLIC, 80), (PUBLIC_2, 80)]
    assert resolver.calls == [("two.example.test", 80)]


async def test_unresolvable_names_are_a_retryable_connect_error() -> None:
    err, backend, _ = await attempt("http://nowhere.example.test/")
    assert isinstance(err, httpx.ConnectError) and "cannot resolve" in str(err)
    assert backend.attempts == []


async def test_literal_and_numeric_hosts_never_reach_the_resolver() -> None:
    resolver = FakeResolver({})
    for url in ("http://127.0.0.2/", "http://2130706434/", "http://[::1]/", "http://localhost/"):
        err, _, _ = await attempt(url, resolver=resolver)
        assert isinstance(err, SSRFBlocked)
    assert resolver.calls == []


@pytest.mark.parametrize(
    "value",
    ["10.0.0.0/33", "10.0.0.1/8", "host:99999", "host:", "127.1", "2130706433", "[::1",
     "[::1]x", "a b", "*.example.com", "user@host", "http://host"],
)  # fmt: skip
def test_bad_allow_list_entries_fail_at_start_up(value: str) -> None:
    with pytest.raises(ConfigurationError, match="HTTP_ALLOWED_HOSTS"):
        parse_allow_list(value)


def test_allow_list_forms() -> None:
    entries = parse_allow_list("api.internal, 10.0.0.0/8:8443,[::1]:8080, fd00::/8, 127.0.0.1,")
    assert [(e.host, str(e.network) if e.network else None, e.port) for e in entries] == [
        ("api.internal", None, None),
        (None, "10.0.0.0/8", 8443),
        (None, "::1/128", 8080),
        (None, "fd00::/8", None),
        (None, "127.0.0.1/32", None),
    ]
    assert parse_allow_list("") == []


# -- the activity: redirects re-checked hop by hop (seams only) ---------------------------------


def step_request(url: str, method: str = "GET", **extra: Any) -> HTTPRequest:
    return HTTPRequest(
        execution_id="e", step_id="s", method=method, url=url, idempotency_key="k-1", **extra
    )


async def run_activity(
    backend: RecordingBackend, request: HTTPRequest, allow: str = "", max_redirects: int = 5
) -> Any:
    policy = AddressPolicy.from_setting(allow, resolver=FakeResolver())
    async with guarded_client(policy, TIMEOUT, LIMITS, network_backend=backend) as client:
        activities = HTTPStepActivities(
            client, SecretStore({}), 1 << 20, policy=policy, max_redirects=max_redirects
        )
        return await ActivityEnvironment().run(activities.send_http_request, request)


def sent(backend: RecordingBackend, index: int) -> tuple[str, dict[str, str], bytes]:
    raw = bytes(backend.streams[index][1].sent)
    head, _, body = raw.partition(b"\r\n\r\n")
    start, *lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
    return start, headers, body


@pytest.mark.parametrize(
    "location",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://meta.example.test/",
        "http://[::ffff:169.254.169.254]/",
        "http://2852039166/",
        "http://internal.example.test:8080/",
        "file:///etc/passwd",
    ],
)
async def test_a_redirect_to_a_blocked_target_is_refused_at_the_hop(location: str) -> None:
    backend = RecordingBackend()
    backend.script(PUBLIC, http_reply(302, {"Location": location}))
    with pytest.raises(ApplicationError) as caught:
        await run_activity(backend, step_request("http://public.example.test/start"))
    assert caught.value.type == SSRF_BLOCKED and caught.value.non_retryable
    assert "redirect to" in caught.value.message
    assert backend.attempts == [(PUBLIC, 80)]  # only the first, public hop was dialled


async def test_redirect_methods_bodies_and_credentials() -> None:
    backend = RecordingBackend()
    backend.script(
        PUBLIC,
        http_reply(307, {"Location": "/same-origin"}),
        http_reply(303, {"Location": "http://two.example.test/elsewhere"}),
    )
    backend.script(PUBLIC_2, http_reply(200, {"Content-Type": "application/json"}, b'{"ok":1}'))
    request = step_request(
        "http://public.example.test/start",
        method="POST",
        headers={"Authorization": "Bearer t0ken", "X-Trace": "1"},
        json_body={"n": 1},
        has_json=True,
    )
    result = await run_activity(backend, request)
    assert result.status == 200 and result.json_ == {"ok": 1}
    assert [a for a, _ in backend.streams] == [PUBLIC, PUBLIC, PUBLIC_2]
    start, headers, body = sent(backend, 1)  # after 307, same origin
    assert start == "POST /same-origin HTTP/1.1"
    assert json.loads(body) == {"n": 1} and headers["content-type"] == "application/json"
    assert headers["authorization"] == "Bearer t0ken"
    assert headers["idempotency-key"] == "k-1"
    start, headers, body = sent(backend, 2)  # after 303, another origin
    assert start == "GET /elsewhere HTTP/1.1" and body == b""
    assert "authorization" not in headers and "content-type" not in headers
    assert headers["host"] == "two.example.test" and headers["x-trace"] == "1"


async def test_too_many_redirects_fail_the_step() -> None:
    backend = RecordingBackend()
    backend.script(PUBLIC, *[http_reply(302, {"Location": "/again"})] * 3)
    with pytest.raises(ApplicationError) as caught:
        await run_activity(backend, step_request("http://public.example.test/"), max_redirects=2)
    assert caught.value.type == "HTTPStatusError" and caught.value.non_retryable
    assert "HTTP_MAX_REDIRECTS" in caught.value.message
    assert len(backend.attempts) == 3


async def test_a_blocked_step_url_fails_without_retry_and_without_dialling() -> None:
    backend = RecordingBackend()
    with pytest.raises(ApplicationError) as caught:
        await run_activity(backend, step_request("http://user:secret@10.0.0.1/x?token=abc"))
    assert caught.value.type == SSRF_BLOCKED and caught.value.non_retryable
    assert "10.0.0.1 is a private address" in caught.value.message
    assert "secret" not in caught.value.message and "token=abc" not in caught.value.message
    assert backend.attempts == []


# -- live: real worker, real Temporal, loopback only ----------------------------------------------


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


class Tripwire:
    """A TCP listener on a loopback address; records every connection it accepts."""

    def __init__(self, host: str) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind((host, 0))
        self.sock.listen()
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@contextlib.contextmanager
def tripwire(host: str) -> Iterator[Tripwire]:
    wire = Tripwire(host)
    try:
        yield wire
    finally:
        wire.close()


def live_step(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": "call",
        "type": "http",
        "method": "POST",
        "url": url,
        "json": {"n": 1},
        "retry": {"max_attempts": 3, "initial_interval_seconds": 0.1},
        **extra,
    }


LIVE_BLOCKED: list[tuple[str, str, Callable[[int], str]]] = [
    # (id, where a tripwire listens, URL for the port of that listener or of the sink)
    ("127.0.0.2", "127.0.0.2", lambda port: f"http://127.0.0.2:{port}/x"),
    ("decimal-2130706434", "127.0.0.2", lambda port: f"http://2130706434:{port}/x"),
    ("short-127.1", "sink", lambda port: f"http://127.1:{port}/x"),
    ("ipv6-loopback", "::1", lambda port: f"http://[::1]:{port}/x"),
    ("mapped-127.0.0.1", "sink", lambda port: f"http://[::ffff:127.0.0.1]:{port}/x"),
    ("localhost", "sink", lambda port: f"http://localhost:{port}/x"),
]


@pytest.mark.parametrize(("where", "make_url"), [c[1:] for c in LIVE_BLOCKED],
                         ids=[c[0] for c in LIVE_BLOCKED])  # fmt: skip
async def test_live_loopback_outside_the_allow_list_is_refused(
    client: Client,
    settings: Settings,
    worker: Any,
    sink: HttpSink,
    where: str,
    make_url: Callable[[int], str],
) -> None:
    assert settings.http_allowed_hosts == "127.0.0.1"
    if where == "::1" and not ipv6_loopback():
        pytest.skip("no IPv6 loopback here")
    with contextlib.ExitStack() as stack:
        if where == "sink":
            port, wire = int(sink.url.rsplit(":", 1)[1]), None
        else:
            wire = stack.enter_context(tripwire(where))
            port = wire.port
        document = {"id": "ssrf", "steps": [live_step(make_url(port))]}
        handle = await start_definition(client, settings, document)
        state = await outcome(handle)
        assert state["status"] == "failed"
        assert state["error"]["type"] == SSRF_BLOCKED
        assert "HTTP_ALLOWED_HOSTS" in state["error"]["message"]
        assert read_log(settings, handle.id)["steps"][0]["error_type"] == SSRF_BLOCKED
        assert sink.deliveries() == []
        if wire is not None:
            assert wire.accepted == 0
    events = (await handle.fetch_history()).events
    http_calls = {
        e.event_id
        for e in events
        if e.HasField("activity_task_scheduled_event_attributes")
        and e.activity_task_scheduled_event_attributes.activity_type.name == SEND_HTTP_REQUEST
    }
    attempts = [
        e.activity_task_started_event_attributes.attempt
        for e in events
        if e.HasField("activity_task_started_event_attributes")
        and e.activity_task_started_event_attributes.scheduled_event_id in http_calls
    ]
    assert attempts == [1]  # non-retryable: one attempt, despite max_attempts 3


async def test_live_allowed_loopback_still_works(
    client: Client, settings: Settings, worker: Any, sink: HttpSink
) -> None:
    document = {"id": "ssrf-ok", "steps": [live_step(f"{sink.url}/ok", output="r")]}
    state = await outcome(await start_definition(client, settings, document))
    assert state["status"] == "completed", state["error"]
    assert state["outputs"]["r"]["json"]["received"] == {"n": 1}
    assert len(sink.deliveries("/ok")) == 1


async def test_live_redirect_to_a_blocked_loopback_address_is_refused_at_the_hop(
    client: Client, settings: Settings, worker: Any, sink: HttpSink
) -> None:
    with tripwire("127.0.0.2") as wire:
        target = f"http://127.0.0.2:{wire.port}/x"
        sink.script("/r", Reply(302, "", headers={"Location": target}))
        document = {"id": "ssrf-redirect", "steps": [live_step(f"{sink.url}/r")]}
        state = await outcome(await start_definition(client, settings, document))
        assert state["status"] == "failed"
        assert state["error"]["type"] == SSRF_BLOCKED
        assert f"redirect to {target} refused" in state["error"]["message"]
        assert "127.0.0.2 is a loopback address" in state["error"]["message"]
        assert wire.accepted == 0
    assert len(sink.deliveries("/r")) == 1


async def test_live_redirects_within_the_allowed_host_are_followed(
    client: Client, settings: Settings, worker: Any, sink: HttpSink
) -> None:
    sink.script("/keep", Reply(307, "", headers={"Location": "/final-post"}))
    sink.script("/see-other", Reply(303, "", headers={"Location": f"{sink.url}/final-get"}))
    document = {
        "id": "ssrf-redirect-ok",
        "steps": [
            {**live_step(f"{sink.url}/keep", output="kept"), "id": "keep"},
            {**live_step(f"{sink.url}/see-other", output="seen"), "id": "see"},
        ],
    }
    state = await outcome(await start_definition(client, settings, document))
    assert state["status"] == "completed", state["error"]
    kept, seen = state["outputs"]["kept"], state["outputs"]["seen"]
    assert kept["status"] == 200 and kept["json"]["path"] == "/final-post"
    assert kept["json"]["method"] == "POST" and kept["json"]["received"] == {"n": 1}
    assert seen["json"]["path"] == "/final-get" and seen["json"]["method"] == "GET"
    (final,) = sink.deliveries("/final-post")
    assert (
        final.headers["idempotency-key"] == sink.deliveries("/keep")[0].headers["idempotency-key"]
    )


async def test_live_a_url_from_ai_output_passes_the_same_guard(
    client: Client,
    settings: Settings,
    worker: Any,
    sink: HttpSink,
    fake_openrouter: FakeOpenRouter,
) -> None:
    with tripwire("127.0.0.2") as wire:
        fake_openrouter.responder = lambda body: json.dumps(
            {"url": f"http://127.0.0.2:{wire.port}/exfiltrate"}
        )
        document = {
            "id": "ssrf-ai",
            "steps": [
                {"id": "plan", "type": "ai", "model": "m", "prompt": "where to post?",
                 "response_format": {"type": "json_object"}, "output": "plan"},
                live_step("{plan.json.url}"),
            ],
        }  # fmt: skip
        state = await outcome(await start_definition(client, settings, document))
        assert state["status"] == "failed"
        assert state["error"]["type"] == SSRF_BLOCKED and state["error"]["step_id"] == "call"
        assert wire.accepted == 0
