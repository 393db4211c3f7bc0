"""Fetching competitor pages for ``market_research``: bounded and SSRF-safe.

A small dedicated client rather than ``HttpSession``: the vendor session
speaks to one configured base URL with retries and a slot board, while this
fetcher talks to arbitrary hosts a spec names, once each, and must vet every
hop itself. It still uses httpx (one ``AsyncClient`` per fetch run).

Every fetch is held to:
- http(s) only; every host (the first one and every redirect hop) resolved
  with ``getaddrinfo`` in a thread, and refused when ANY address it resolves
  to is loopback, private, link-local, multicast, reserved, unspecified or
  otherwise not globally routable (``ipaddress``), unless the host is listed
  in ``allow_hosts`` (``RESEARCH_ALLOW_HOSTS``, for tests);
- pinning: the request goes to the vetted IP literal (Host header and TLS SNI
  carry the name, so certificates are still checked against the name), so a
  second DNS answer cannot swap in an internal address (DNS rebinding);
- redirects followed by hand, at most ``max_redirects``, each hop checked;
- robots.txt of every origin honoured (``urllib.robotparser`` over the
  fetched file; 401/403 → disallowed, other errors → allowed, RFC 9309);
- ``text/html`` or XHTML only; at most ``max_bytes`` (streamed, stopped at the
  cap); each network phase bounded by ``timeout_s`` and the whole fetch by
  ``total_timeout_s``; a clear User-Agent.

Every refusal is a ``FetchError`` whose message says which rule refused and
why; ``market_research`` records it as the item's fallback reason.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass, field
from typing import ClassVar
from urllib.parse import urljoin, urlsplit
from urllib.robotparser import RobotFileParser

import dagster as dg
import httpx
from pydantic import Field

USER_AGENT = "campaign-assets-research/0.1 (+https://github.com/campaign-assets/campaign_assets)"
ROBOTS_AGENT = "campaign-assets-research"
HTML_TYPES = ("text/html", "application/xhtml+xml")
MAX_ROBOTS_BYTES = 512 * 1024

# Tests monkeypatch this: (host, port) -> getaddrinfo-style results.
getaddrinfo = socket.getaddrinfo


class FetchError(Exception):
    """A page that could not (or must not) be fetched. ``kind``: blocked,
    scheme, robots, too_large, content_type, too_many_redirects, status,
    timeout, network."""

    def __init__(self, kind: str, url: str, detail: str):
        self.kind, self.url, self.detail = kind, url, detail
        super().__init__(f"{kind}: {url}: {detail}")


class BlockedAddress(FetchError):
    def __init__(self, url: str, detail: str):
        super().__init__("blocked", url, detail)


def address_refusal(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why an address must not be fetched from, or None when it is public."""
    mapped = getattr(ip, "ipv4_mapped", None)
    if mapped is not None:
        ip = mapped
    for name in ("unspecified", "loopback", "link_local", "multicast", "reserved", "private"):
        if getattr(ip, f"is_{name}"):
            return f"{ip} is a {name.replace('_', '-')} address"
    if not ip.is_global:
        return f"{ip} is not a globally routable address"
    return None


@dataclass(frozen=True)
class Page:
    url: str  # the final URL, after redirects
    status: int
    content_type: str
    html: str
    redirects: tuple[str, ...] = ()


@dataclass
class WebFetcher:
    allow_hosts: frozenset[str] = frozenset()
    timeout_s: float = 10.0
    total_timeout_s: float = 30.0
    max_bytes: int = 2 * 1024 * 1024
    max_redirects: int = 5
    user_agent: str = USER_AGENT
    _robots: dict[str, RobotFileParser] = field(default_factory=dict)

    # ---- vetting ----------------------------------------------------------
    async def vet(self, url: str) -> tuple[str, str, int, str]:
        """(scheme, host, port, the vetted IP) for ``url``, or a FetchError."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise FetchError("scheme", url, f"scheme {scheme or '(none)'!r} is not http(s)")
        host = (parts.hostname or "").rstrip(".").lower()
        if not host:
            raise FetchError("scheme", url, "no host")
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError:
            raise FetchError("scheme", url, "invalid port") from None
        try:
            infos = await asyncio.to_thread(getaddrinfo, host, port, 0, socket.SOCK_STREAM)
        except OSError as exc:
            raise FetchError("network", url, f"cannot resolve {host}: {exc}") from None
        addresses = list(dict.fromkeys(info[4][0] for info in infos))
        if not addresses:
            raise FetchError("network", url, f"{host} resolves to no address")
        if host not in self.allow_hosts:
            for text in addresses:
                reason = address_refusal(ipaddress.ip_address(text.split("%")[0]))
                if reason:
                    raise BlockedAddress(url, f"{host} resolves to {reason}; refused (SSRF guard)")
        return scheme, host, port, addresses[0]

    # ---- one pinned request -----------------------------------------------
    async def _send(self, client: httpx.AsyncClient, url: str, *, cap: int) -> tuple[httpx.Response, bytes]:
        scheme, host, port, ip = await self.vet(url)
        parts = urlsplit(url)
        literal = f"[{ip}]" if ":" in ip else ip
        target = f"{scheme}://{literal}:{port}{parts.path or '/'}" + (f"?{parts.query}" if parts.query else "")
        default_port = port == (443 if scheme == "https" else 80)
        named = f"[{host}]" if ":" in host else host
        headers = {"Host": named if default_port else f"{named}:{port}", "User-Agent": self.user_agent}
        request = client.build_request("GET", target, headers=headers, extensions={"sni_hostname": host})
        response = await client.send(request, stream=True)
        try:
            if response.is_redirect or response.status_code >= 400:
                return response, b""
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > cap:
                raise FetchError("too_large", url, f"Content-Length {declared} exceeds {cap} bytes")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > cap:
                    raise FetchError("too_large", url, f"body exceeds {cap} bytes; stopped reading")
            return response, bytes(body)
        finally:
            await response.aclose()

    async def _allowed(self, client: httpx.AsyncClient, url: str) -> bool:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        parser = self._robots.get(origin)
        if parser is None:
            parser = RobotFileParser()
            try:
                target = origin + "/robots.txt"
                response, body = await self._send(client, target, cap=MAX_ROBOTS_BYTES)
                for _hop in range(self.max_redirects):  # RFC 9309: follow at least five redirects, each hop vetted
                    location = response.headers.get("location") if response.is_redirect else None
                    if not location:
                        break
                    target = urljoin(target, location)
                    response, body = await self._send(client, target, cap=MAX_ROBOTS_BYTES)
                if response.status_code in (401, 403):
                    parser.disallow_all = True
                elif response.status_code == 200:
                    parser.parse(body.decode("utf-8", "replace").splitlines())
                else:  # 404, 5xx, too many redirects: no rules we can read
                    parser.allow_all = True
            except FetchError as exc:
                if exc.kind in ("blocked", "scheme"):  # a robots.txt redirect to a refused place refuses the page
                    raise
                parser.allow_all = True
            except httpx.HTTPError:
                parser.allow_all = True
            self._robots[origin] = parser
        return parser.can_fetch(ROBOTS_AGENT, url)

    # ---- the fetch ----------------------------------------------------------
    async def fetch(self, url: str) -> Page:
        try:
            return await asyncio.wait_for(self._fetch(url), self.total_timeout_s)
        except (asyncio.TimeoutError, httpx.TimeoutException):
            raise FetchError("timeout", url, f"no complete answer within {self.timeout_s:g}s per step, "
                             f"{self.total_timeout_s:g}s in all") from None
        except httpx.HTTPError as exc:
            raise FetchError("network", url, f"{exc.__class__.__name__}: {exc}") from None

    async def _fetch(self, url: str) -> Page:
        hops: list[str] = []
        timeout = httpx.Timeout(self.timeout_s)
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False) as client:
            current = url
            while True:
                if not await self._allowed(client, current):
                    raise FetchError("robots", current, "disallowed by robots.txt")
                response, body = await self._send(client, current, cap=self.max_bytes)
                if response.is_redirect:
                    location = response.headers.get("location")
                    if not location:
                        raise FetchError("status", current, f"{response.status_code} redirect without Location")
                    if len(hops) >= self.max_redirects:
                        raise FetchError("too_many_redirects", url, f"more than {self.max_redirects} redirects")
                    hops.append(current)
                    current = urljoin(current, location)
                    continue
                if response.status_code != 200:
                    raise FetchError("status", current, f"HTTP {response.status_code}")
                ctype = response.headers.get("content-type", "").split(";")[0].strip().lower()
                if ctype not in HTML_TYPES:
                    raise FetchError("content_type", current, f"content type {ctype or '(none)'!r} is not HTML")
                return Page(current, response.status_code, ctype, body.decode(response.encoding or "utf-8", "replace"), tuple(hops))


class WebResource(dg.ConfigurableResource):
    """The research fetcher's limits (DESIGN.md §2, market_research)."""

    SERVICE: ClassVar[str] = "web"

    allow_hosts: str = Field(
        default="",
        description="Comma-separated hosts exempt from the SSRF address check (RESEARCH_ALLOW_HOSTS; tests only).",
    )
    timeout_s: float = Field(default=10.0, description="Bound on each connect/read/write step.")
    total_timeout_s: float = Field(default=30.0, description="Bound on a whole fetch, redirects included.")
    max_bytes: int = Field(default=2 * 1024 * 1024, description="Largest page read (streamed, stopped at the cap).")
    max_redirects: int = Field(default=5)
    user_agent: str = Field(default=USER_AGENT)

    def fetcher(self) -> WebFetcher:
        hosts = frozenset(h.strip().lower() for h in self.allow_hosts.split(",") if h.strip())
        return WebFetcher(
            allow_hosts=hosts,
            timeout_s=self.timeout_s,
            total_timeout_s=self.total_timeout_s,
            max_bytes=self.max_bytes,
            max_redirects=self.max_redirects,
            user_agent=self.user_agent,
        )
