"""SSRF guard for `http` steps: which addresses a step may reach, enforced where sockets open.

Every URL an `http` step sends to — written in the definition, templated from inputs, produced
by an `ai` step, or reached through a redirect — goes through one :class:`AddressPolicy`:

- only ``http`` and ``https``;
- loopback, private, link-local, unspecified, multicast, reserved, shared (100.64/10) and cloud
  metadata addresses are refused, in every spelling: IPv6, IPv4-mapped/compatible IPv6, NAT64,
  6to4 and Teredo addresses embedding such an IPv4 address; non-canonical numeric IPv4 hosts
  (``2130706434``, ``0177.0.0.1``, ``0x7f.1``, ``127.1``) are refused outright, whatever they
  stand for, since no honest URL is written that way;
- ``HTTP_ALLOWED_HOSTS`` (hosts, IPs or CIDRs, each optionally with ``:port``) permits
  exceptions; a metadata address is permitted only by an entry naming that exact address.

The check sits in the connection itself (:class:`GuardedNetworkBackend`, the httpcore network
backend of :class:`GuardedTransport`): a host name is resolved once, every answer must pass,
and the socket is opened to one of those checked addresses, never to a name that could resolve
again differently (DNS rebinding). TLS still verifies the certificate against the URL's host
name, because only the dialled address changes. The resolver and the dialling backend are
injectable, so tests check refusals without sending a packet.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any

import httpcore
import httpx

from activities.errors import SSRFBlocked
from activities.http_pool import ShardedConnectionPool
from activities.tls import client_tls_context
from workflows.errors import ConfigurationError, FailureType

SSRF_BLOCKED = FailureType.SSRF_BLOCKED
"""``ApplicationError.type`` of a refused request (non-retryable)."""

ALLOW_SETTING = "HTTP_ALLOWED_HOSTS"
ALLOWED_SCHEMES = frozenset({"http", "https"})
DEFAULT_PORTS = {"http": 80, "https": 443}

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]


# -- what is not a public address ---------------------------------------------------------------

METADATA = "a cloud metadata address"

_V4_RULES: tuple[tuple[ipaddress.IPv4Network, str], ...] = tuple(
    (ipaddress.IPv4Network(net), label)
    for net, label in (
        ("169.254.169.254/32", METADATA),  # AWS, GCP, Azure, OpenStack, Oracle, DigitalOcean
        ("169.254.170.2/32", METADATA),  # AWS ECS task credentials
        ("169.254.169.123/32", METADATA),  # AWS time sync
        ("100.100.100.200/32", METADATA),  # Alibaba Cloud
        ("192.0.0.192/32", METADATA),  # Oracle Cloud (legacy)
        ("0.0.0.0/8", "an unspecified ('this network') address"),
        ("10.0.0.0/8", "a private address"),
        ("100.64.0.0/10", "a shared (carrier-grade NAT) address"),
        ("127.0.0.0/8", "a loopback address"),
        ("169.254.0.0/16", "a link-local address"),
        ("172.16.0.0/12", "a private address"),
        ("192.0.0.0/24", "an IETF protocol assignment address"),
        ("192.0.2.0/24", "a documentation address"),
        ("192.88.99.0/24", "a 6to4 relay anycast address"),
        ("192.168.0.0/16", "a private address"),
        ("198.18.0.0/15", "a benchmarking address"),
        ("198.51.100.0/24", "a documentation address"),
        ("203.0.113.0/24", "a documentation address"),
        ("224.0.0.0/4", "a multicast address"),
        ("240.0.0.0/4", "a reserved address"),  # includes 255.255.255.255
    )
)

_V6_RULES: tuple[tuple[ipaddress.IPv6Network, str], ...] = tuple(
    (ipaddress.IPv6Network(net), label)
    for net, label in (
        ("fd00:ec2::254/128", METADATA),  # AWS IMDS over IPv6
        ("::/128", "the unspecified address"),
        ("::1/128", "a loopback address"),
        ("::/96", "an IPv4-compatible IPv6 address (deprecated)"),
        ("64:ff9b:1::/48", "a local-use NAT64 address"),
        ("100::/64", "a discard-only address"),
        ("2001:db8::/32", "a documentation address"),
        ("fc00::/7", "a unique local (private) address"),
        ("fe80::/10", "a link-local address"),
        ("fec0::/10", "a site-local address"),
        ("ff00::/8", "a multicast address"),
    )
)

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")

# Names refused without asking DNS (RFC 6761 `localhost`, well-known metadata names).
_BLOCKED_NAMES = {
    "localhost": "a loopback name",
    "localhost.localdomain": "a loopback name",
    "ip6-localhost": "a loopback name",
    "ip6-loopback": "a loopback name",
    "metadata.google.internal": "a cloud metadata name",
    "metadata.goog": "a cloud metadata name",
    "metadata": "a cloud metadata name",
    "instance-data": "a cloud metadata name",
    "instance-data.ec2.internal": "a cloud metadata name",
}


@dataclass(frozen=True)
class Classification:
    reason: str  # "a loopback address", "an IPv4-mapped address of 127.0.0.1, a loopback address"
    metadata: bool = False


def classify(ip: IPAddress) -> Classification | None:
    """Why ``ip`` is not a public address, or None when it is one."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            kind, inner = embedded
            found = classify(inner)
            if found is None:
                return None
            return Classification(f"{kind} of {inner}, {found.reason}", found.metadata)
        ip = ip.__class__(int(ip))  # drop any %scope before matching
        rules: Iterable[tuple[IPNetwork, str]] = _V6_RULES
    else:
        rules = _V4_RULES
    for network, label in rules:
        if ip in network:
            return Classification(label, label == METADATA)
    if (
        not ip.is_global
        or ip.is_private
        or ip.is_reserved
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_unspecified
    ):
        return Classification("not a public address")
    return None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    """The IPv4 address an IPv6 address stands for (mapped, NAT64, 6to4, Teredo), if any."""
    if ip.ipv4_mapped is not None:
        return "an IPv4-mapped IPv6 address", ip.ipv4_mapped
    if ip in _NAT64:
        return "a NAT64 address", ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return "a 6to4 address", ip.sixtofour
    if ip.teredo is not None:
        return "a Teredo address", ip.teredo[1]
    return None


# -- host spellings -----------------------------------------------------------------------------

_NUMERIC_HOST = re.compile(r"[0-9a-fA-FxX.]+")
_HOST_NAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*")


def normalise_host(host: str) -> str:
    """Lower case, no brackets, no trailing root dot (what the resolver would look up)."""
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host[:-1] if host.endswith(".") else host


def ip_literal(host: str) -> IPAddress | None:
    """``host`` as an address when it is written as a canonical IPv4/IPv6 literal."""
    host = host.replace("%25", "%")  # a URL's encoded IPv6 zone id
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def noncanonical_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The address a resolver reads from ``2130706434``, ``0177.0.0.1``, ``0x7f.1``, ``127.1``."""
    if ip_literal(host) is not None or not _NUMERIC_HOST.fullmatch(host):
        return None
    if not any(ch.isdigit() for ch in host):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except (OSError, ValueError):
        return None


# -- the allow-list -----------------------------------------------------------------------------


@dataclass(frozen=True)
class AllowEntry:
    """One ``HTTP_ALLOWED_HOSTS`` entry: a host name or a network, optionally one port."""

    text: str
    host: str | None = None
    network: IPNetwork | None = None
    port: int | None = None

    def _port_ok(self, port: int) -> bool:
        return self.port is None or self.port == port

    def permits_name(self, host: str, port: int) -> bool:
        return self.host is not None and self.host == host and self._port_ok(port)

    def permits_address(self, ip: IPAddress, port: int, exact: bool = False) -> bool:
        net = self.network
        if net is None or net.version != ip.version or not self._port_ok(port):
            return False
        if exact and net.num_addresses != 1:
            return False
        bare = ip.__class__(int(ip))  # ignore an IPv6 %scope
        return bare in net


def allow_entry(host: str | IPAddress, port: int) -> str:
    """The narrowest ``HTTP_ALLOWED_HOSTS`` entry that lets a request through: this host (or
    address) on this port only, never a whole address range (``[v6]:port`` for IPv6)."""
    text = str(host.__class__(int(host)) if not isinstance(host, str) else host)
    if ":" in text:
        text = f"[{text}]"
    return f"{text}:{port}"


def parse_allow_list(value: str) -> list[AllowEntry]:
    """Parse ``HTTP_ALLOWED_HOSTS``; ConfigurationError naming the variable on a bad entry."""
    return [parse_allow_entry(item.strip()) for item in value.split(",") if item.strip()]


def parse_allow_entry(text: str) -> AllowEntry:
    def bad(why: str) -> ConfigurationError:
        return ConfigurationError(f"{ALLOW_SETTING}: {text!r} {why}")

    target, port_text = text, None
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise bad("has '[' without ']'")
        target, rest = text[1:close], text[close + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise bad("must be [IPv6] or [IPv6]:port")
            port_text = rest[1:]
    elif text.count(":") == 1:
        target, port_text = text.split(":")
    port: int | None = None
    if port_text is not None:
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise bad("has an invalid port (1-65535)")
        port = int(port_text)
    if not target:
        raise bad("names no host")
    if "/" in target or ip_literal(target) is not None:
        try:
            network = ipaddress.ip_network(target, strict=True)
        except ValueError as err:
            raise bad(f"is not a valid IP address or CIDR: {err}") from None
        return AllowEntry(text, network=network, port=port)
    host = normalise_host(target)
    if noncanonical_ipv4(host) is not None:
        raise bad("is a non-canonical numeric address; write IPv4 addresses as a.b.c.d")
    try:
        parsed = httpx.URL(f"http://{host}/")
    except httpx.InvalidURL as err:
        raise bad(f"is not a host name: {err}") from None
    if parsed.userinfo or parsed.port is not None or not _HOST_NAME.fullmatch(parsed.host):
        raise bad("is not a host name, IP address or CIDR")
    return AllowEntry(text, host=parsed.host, port=port)


# -- the policy ---------------------------------------------------------------------------------


async def system_resolver(host: str, port: int) -> list[str]:
    """getaddrinfo in the event loop's executor: every address ``host`` resolves to."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return [str(info[4][0]) for info in infos]


# How many passed origins an AddressPolicy remembers before it starts again.
MAX_KNOWN_ORIGINS = 4096


class AddressPolicy:
    """Which URLs and addresses `http` steps may reach (see the module docstring)."""

    def __init__(self, allow: Iterable[AllowEntry] = (), resolver: Resolver | None = None) -> None:
        self.allow = tuple(allow)
        self._resolver = resolver or system_resolver
        # Origins (scheme, host, port) whose URL check passed. The check reads nothing but the
        # origin and this policy, which never changes, so its answer is remembered: a request
        # to a known origin costs a set lookup. Every new connection still resolves and checks
        # each address (GuardedNetworkBackend), so this saves work and relaxes nothing.
        self._passed: set[tuple[str, str, int | None]] = set()

    @classmethod
    def from_setting(cls, value: str, resolver: Resolver | None = None) -> AddressPolicy:
        return cls(parse_allow_list(value or ""), resolver)

    # -- checks without DNS ---------------------------------------------------------------------

    def check_url(self, url: httpx.URL | str) -> None:
        """Refuse what can be refused from the URL alone: the scheme and literal hosts."""
        url = httpx.URL(url) if isinstance(url, str) else url
        origin = (url.scheme, url.host, url.port)
        if origin in self._passed:
            return
        self._check_origin(url)
        if len(self._passed) >= MAX_KNOWN_ORIGINS:
            self._passed.clear()  # a crowd of one-off hosts: start again rather than grow
        self._passed.add(origin)

    def _check_origin(self, url: httpx.URL) -> None:
        scheme = url.scheme.lower()
        if scheme not in ALLOWED_SCHEMES:
            raise SSRFBlocked(
                f"{scheme or 'a relative'}:// URLs are refused: only http and https are allowed",
                url.host,
            )
        if not url.host:
            raise SSRFBlocked("the URL names no host", "")
        port = url.port or DEFAULT_PORTS[scheme]
        host = normalise_host(url.host)
        self._check_name(host, port)
        literal = ip_literal(host)
        if literal is not None:
            self._check_address(host, port, literal, by_name=False, resolved=False)

    def _check_name(self, host: str, port: int) -> None:
        numeric = noncanonical_ipv4(host)
        if numeric is not None:
            raise SSRFBlocked(
                f"refused to connect to {host!r}: it is a non-canonical numeric form of "
                f"{numeric}; write IPv4 addresses as a.b.c.d ({ALLOW_SETTING} cannot allow this "
                "spelling)",
                host,
                str(numeric),
            )
        label = _BLOCKED_NAMES.get(host)
        if label is None and host.endswith(".localhost"):
            label = "a loopback name"
        if label is not None and not self._allowed_by_name(host, port):
            raise SSRFBlocked(
                f"refused to connect to {host} port {port}: {host} is {label}; "
                f"add {allow_entry(host, port)!r} to {ALLOW_SETTING} to allow it",
                host,
            )

    def _allowed_by_name(self, host: str, port: int) -> bool:
        return any(entry.permits_name(host, port) for entry in self.allow)

    def _check_address(
        self, host: str, port: int, ip: IPAddress, by_name: bool, resolved: bool
    ) -> None:
        found = classify(ip)
        if found is None:
            return
        if found.metadata:
            if any(entry.permits_address(ip, port, exact=True) for entry in self.allow):
                return
            hint = f"add the exact address {allow_entry(ip, port)!r} to {ALLOW_SETTING} to allow it"
        else:
            if by_name or any(entry.permits_address(ip, port) for entry in self.allow):
                return
            exact = repr(allow_entry(ip, port))
            names = f"{allow_entry(host, port)!r} or {exact}" if resolved else exact
            hint = f"add {names} to {ALLOW_SETTING} to allow it"
        via = f" (resolved to {ip})" if resolved else ""
        raise SSRFBlocked(
            f"refused to connect to {host} port {port}{via}: {ip} is {found.reason}; {hint}",
            host,
            str(ip),
        )

    # -- resolve once, check every answer -------------------------------------------------------

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        """The addresses to dial for ``host``: resolved once, every one checked.

        SSRFBlocked if any answer is refused (a name that resolves to both a public and a
        private address is refused as a whole); OSError if the name does not resolve.
        """
        name = normalise_host(host)
        self._check_name(name, port)
        literal = ip_literal(name)
        if literal is not None:
            self._check_address(name, port, literal, by_name=False, resolved=False)
            return [literal]
        answers: list[IPAddress] = []
        for raw in await self._resolver(name, port):
            ip = ip_literal(str(raw))
            if ip is None:
                raise SSRFBlocked(f"{name} resolved to {raw!r}, which is not an address", name)
            if ip not in answers:
                answers.append(ip)
        if not answers:
            raise socket.gaierror(socket.EAI_NONAME, f"{name} resolved to no address")
        by_name = self._allowed_by_name(name, port)
        for ip in answers:
            self._check_address(name, port, ip, by_name=by_name, resolved=True)
        return answers


# -- enforcement in the connection --------------------------------------------------------------


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """Resolves and checks each host once, then dials only the checked addresses."""

    def __init__(
        self, policy: AddressPolicy, inner: httpcore.AsyncNetworkBackend | None = None
    ) -> None:
        self.policy = policy
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                addresses = await self.policy.resolve(host, port)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from None
        except OSError as err:
            raise httpcore.ConnectError(f"cannot resolve {host}: {err}") from None
        failure: Exception | None = None
        for ip in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(ip),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as err:
                failure = err
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise SSRFBlocked("unix sockets are refused", path)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with the SSRF guard in its connection pool (no proxies, no uds)."""

    def __init__(
        self,
        policy: AddressPolicy,
        *,
        limits: httpx.Limits = httpx.Limits(max_connections=100, max_keepalive_connections=20),
        verify: bool = True,
        network_backend: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        tls = client_tls_context(verify)
        super().__init__(verify=tls, limits=limits)
        self.policy = policy
        # The pool httpx builds, in shards (activities/http_pool.py), with the guarded
        # backend doing every connect.
        self._pool = ShardedConnectionPool(  # type: ignore[assignment]
            ssl_context=tls,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            network_backend=GuardedNetworkBackend(policy, network_backend),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.policy.check_url(request.url)
        return await super().handle_async_request(request)


def stateless_cookies() -> CookieJar:
    """A cookie jar that keeps nothing.

    The worker shares one client between every run of every tenant: a cookie one step's
    target sets must never ride along on another run's request. A step that needs a cookie
    sends it as a header.
    """
    # A CookieJar, not httpx.Cookies: the client copies the latter into a jar of its own.
    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))


def guarded_client(
    policy: AddressPolicy,
    timeout: httpx.Timeout,
    limits: httpx.Limits,
    network_backend: httpcore.AsyncNetworkBackend | None = None,
) -> httpx.AsyncClient:
    """The client `http` steps use: guarded transport, no env proxies, redirects left to us."""
    return httpx.AsyncClient(
        timeout=timeout,
        transport=GuardedTransport(policy, limits=limits, network_backend=network_backend),
        follow_redirects=False,
        trust_env=False,
        cookies=stateless_cookies(),
    )
