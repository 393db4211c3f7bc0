"""Tests for the shared HTTP layer (campaign_assets.services.http).

Most tests talk real HTTP to a tiny scripted Starlette app served by uvicorn on a
free 127.0.0.1 port (one server per module, reset per test). Each test scripts the
vendor's answers per route: "429 twice, then 200", "drop the connection after the
write commits", and so on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import pickle
import random
import socket
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any, Awaitable, Callable

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount

from campaign_assets_tests.http_doubles import ShortReadTimeout
from campaign_assets.services.http import (
    AdaptiveLimiter,
    AmbiguousWriteError,
    CircuitBreaker,
    CircuitOpenError,
    HttpSession,
    PermanentVendorError,
    RateLimitedError,
    Redactor,
    RetryableVendorError,
    RetryPolicy,
    ServiceStats,
    VendorError,
    VendorProfile,
    backoff_delay,
    body_flag_classifier,
    default_error_message,
    default_retry_after,
    parse_retry_after,
)

TOKEN = "tkn_S3CR3T/abc+def=42"  # URL-special characters: the query-string form is percent-encoded
# A generous timeout: no ordinary call may time out on a busy machine. Tests that need a
# timeout hold the request (``hold()``) and give that request alone a short one.
FAST = RetryPolicy(max_attempts=4, backoff_base_s=0.001, backoff_max_s=0.01, timeout_s=10.0)


# --------------------------------------------------------------------------------------
# The scripted vendor
# --------------------------------------------------------------------------------------

Action = Callable[["ScriptedVendor", Request, bytes, Any], Awaitable[None]]


@dataclass
class Call:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


@dataclass
class ScriptedVendor:
    """An ASGI vendor whose answers each test scripts per (method, path)."""

    scripts: dict[tuple[str, str], deque[Action]] = field(default_factory=dict)
    defaults: dict[tuple[str, str], Action] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    objects: list[dict[str, Any]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    released: threading.Event = field(default_factory=threading.Event)

    def reset(self) -> None:
        self.released.set()  # let go of any request the previous test held
        self.scripts, self.defaults, self.calls, self.objects = {}, {}, [], []
        self.in_flight = self.max_in_flight = 0
        self.released = threading.Event()

    def script(self, method: str, path: str, *actions: Action, then: Action | None = None) -> None:
        """Answer the next requests to (method, path) with ``actions`` in order, then with ``then``."""
        self.scripts[(method, path)] = deque(actions)
        if then is not None:
            self.defaults[(method, path)] = then

    def count(self, method: str | None = None, path: str | None = None) -> int:
        return sum(1 for c in self.calls if (method in (None, c.method)) and (path in (None, c.path)))

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        request = Request(scope, receive)
        body = await request.body()
        key = (request.method, request.url.path)
        self.calls.append(
            Call(request.method, request.url.path, request.url.query, dict(request.headers), body)
        )
        queue = self.scripts.get(key)
        action = queue.popleft() if queue else self.defaults.get(key, reply(200, {}))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await action(self, request, body, send)
        finally:
            self.in_flight -= 1


def reply(status: int = 200, payload: Any = None, *, headers: dict[str, str] | None = None,
          delay: float = 0.0, raw: bytes | None = None) -> Action:
    async def action(vendor: ScriptedVendor, request: Request, body: bytes, send: Any) -> None:
        if delay:
            await asyncio.sleep(delay)
        if raw is not None:
            response: Response = Response(raw, status_code=status, headers=headers)
        elif status == 204:
            response = Response(status_code=204, headers=headers)
        else:
            response = JSONResponse(payload if payload is not None else {}, status_code=status, headers=headers)
        await response(request.scope, request.receive, send)

    return action


def hold(status: int = 200, payload: Any = None) -> Action:
    """Hold the request until the test ends (the client gives up first), then answer."""

    async def action(vendor: ScriptedVendor, request: Request, body: bytes, send: Any) -> None:
        released = vendor.released
        while not released.is_set():  # the server's own loop: wait without blocking it
            await asyncio.sleep(0.01)
        await reply(status, payload)(vendor, request, body, send)

    return action


def drop(commit: Callable[[ScriptedVendor, bytes], Any] | None = None) -> Action:
    """Optionally commit the write, then lose the response: declare 100 bytes, send 5, end."""

    async def action(vendor: ScriptedVendor, request: Request, body: bytes, send: Any) -> None:
        if commit is not None:
            commit(vendor, body)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"100")]})
        await send({"type": "http.response.body", "body": b'{"id"', "more_body": False})

    return action


def commit_object(vendor: ScriptedVendor, body: bytes) -> dict[str, Any]:
    obj = {"id": f"obj-{len(vendor.objects) + 1}", **json.loads(body)}
    vendor.objects.append(obj)
    return obj


def create_and_reply() -> Action:
    async def action(vendor: ScriptedVendor, request: Request, body: bytes, send: Any) -> None:
        obj = commit_object(vendor, body)
        await JSONResponse({"data": obj}, status_code=201)(request.scope, request.receive, send)

    return action


def list_objects() -> Action:
    async def action(vendor: ScriptedVendor, request: Request, body: bytes, send: Any) -> None:
        await JSONResponse({"data": list(vendor.objects)})(request.scope, request.receive, send)

    return action


@dataclass
class Server:
    vendor: ScriptedVendor
    base_url: str


@pytest.fixture(scope="module")
def _server() -> Any:
    vendor = ScriptedVendor()
    app = Starlette(routes=[Mount("/", app=vendor)])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off", timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    # The fake vendor's own logs are not under test: dropped connections make uvicorn log
    # "Exception in ASGI application", and its access log prints request URLs (query tokens
    # included) -- the server side, not our client. Silence both while the server runs.
    server_loggers = [logging.getLogger(name) for name in ("uvicorn.error", "uvicorn.access")]
    previous = [lg.disabled for lg in server_loggers]
    for lg in server_loggers:
        lg.disabled = True
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield Server(vendor, f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        for lg, was_disabled in zip(server_loggers, previous):
            lg.disabled = was_disabled


@pytest.fixture()
def server(_server: Server) -> Server:
    _server.vendor.reset()
    return _server


class RecordingSleep:
    """An injectable sleep that records each delay (and optionally a probe) and really sleeps."""

    def __init__(self, probe: Callable[[], Any] | None = None) -> None:
        self.delays: list[float] = []
        self.probes: list[Any] = []
        self._probe = probe

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        if self._probe is not None:
            self.probes.append(self._probe())
        await asyncio.sleep(delay)


def session(server_or_url: Server | str, **overrides: Any) -> HttpSession:
    base_url = server_or_url.base_url if isinstance(server_or_url, Server) else server_or_url
    kwargs: dict[str, Any] = dict(
        service="vendor",
        base_url=base_url,
        headers={"Authorization": f"Bearer {TOKEN}"},
        secrets=[TOKEN],
        cap=4,
        policy=FAST,
        rng=0,
    )
    kwargs.update(overrides)
    return HttpSession(**kwargs)


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


def leaks(text: str) -> bool:
    return TOKEN in text or httpx.QueryParams({"k": TOKEN}).__str__()[2:] in text


# --------------------------------------------------------------------------------------
# Rate limiting
# --------------------------------------------------------------------------------------


def test_429_with_retry_after_twice_then_200(server: Server) -> None:
    limited = reply(429, {"error": {"message": "slow down"}}, headers={"Retry-After": "0.01"})
    server.vendor.script("GET", "/items", limited, limited, reply(200, {"items": [1, 2]}))
    sleep = RecordingSleep()

    async def main() -> Any:
        async with session(server, sleep=sleep) as http:
            return await http.json("GET", "/items"), http

    payload, http = run(main())
    assert payload == {"items": [1, 2]}
    assert server.vendor.count("GET", "/items") == 3
    assert len(sleep.delays) == 2 and all(0.01 <= d <= 0.0111 for d in sleep.delays)
    meta = http.stats.as_metadata()
    assert (meta["calls"], meta["retries"], meta["rate_limited"], meta["failures"]) == (3, 2, 2, 0)
    assert http.limiter.limit < http.limiter.cap  # adapted down
    assert server.vendor.calls[0].headers["authorization"] == f"Bearer {TOKEN}"


def test_fractional_retry_after_is_honoured_and_no_sandbox_header_is_read(server: Server) -> None:
    """The sandbox sends its scaled waits as a standard, fractional Retry-After: production
    code knows no sandbox-only header (an ``x-sandbox-retry-after`` is ignored)."""
    server.vendor.script(
        "GET", "/items",
        reply(429, {}, headers={"Retry-After": "0.02", "x-sandbox-retry-after": "5"}),
        reply(429, {}, headers={"x-sandbox-retry-after": "5"}),
        reply(200, {"ok": True}),
    )
    sleep = RecordingSleep()

    async def main() -> Any:
        async with session(server, sleep=sleep) as http:
            return await http.json("GET", "/items")

    assert run(main()) == {"ok": True}
    assert len(sleep.delays) == 2 and 0.02 <= sleep.delays[0] < 0.03
    assert sleep.delays[1] <= FAST.backoff_base_s * 2  # no Retry-After: backoff, the sandbox header means nothing


def test_google_style_429_without_retry_after_uses_backoff_then_gives_up(server: Server) -> None:
    google_429 = reply(429, {"error": {"code": 429, "message": "Quota exceeded for quota metric 'Write requests'",
                                       "status": "RESOURCE_EXHAUSTED"}})
    server.vendor.script("POST", "/v1/spreadsheets", then=google_429)
    sleep = RecordingSleep()

    async def main() -> HttpSession:
        async with session(server, sleep=sleep, service="sheets") as http:
            with pytest.raises(RateLimitedError) as caught:
                await http.request("POST", "/v1/spreadsheets", json={"title": "plan"})
            error = caught.value
            assert error.status_code == 429 and error.retry_after is None and error.retryable
            assert error.attempts == FAST.max_attempts
            assert error.message == "RESOURCE_EXHAUSTED: Quota exceeded for quota metric 'Write requests'"
            assert not isinstance(error, AmbiguousWriteError)  # a 429 write was never processed
            return http

    http = run(main())
    assert server.vendor.count("POST", "/v1/spreadsheets") == FAST.max_attempts
    # Exponential full-jitter backoff: attempt n waits at most base * 2**(n-1).
    assert len(sleep.delays) == FAST.max_attempts - 1
    for attempt, delay in enumerate(sleep.delays, start=1):
        assert 0 <= delay <= FAST.backoff_base_s * 2 ** (attempt - 1)
    assert http.stats.as_metadata()["failures_rate_limited"] == 1
    assert http.stats.rate_limited == FAST.max_attempts


# --------------------------------------------------------------------------------------
# 5xx, 4xx and idempotency
# --------------------------------------------------------------------------------------


def test_500_then_200_on_get_is_retried(server: Server) -> None:
    server.vendor.script("GET", "/doc", reply(500, {"error": {"message": "backend"}}), reply(200, {"id": "d1"}))

    async def main() -> Any:
        async with session(server) as http:
            return await http.json("GET", "/doc"), http.stats

    payload, stats = run(main())
    assert payload == {"id": "d1"}
    assert server.vendor.count() == 2
    assert (stats.calls, stats.retries, stats.server_errors, stats.failures) == (2, 1, 1, 0)


def test_500_on_post_is_an_ambiguous_write_with_exactly_one_request(server: Server) -> None:
    server.vendor.script("POST", "/projects", then=reply(500, {"errors": [{"message": "Server Error"}]}))

    async def main() -> Any:
        async with session(server, service="asana") as http:
            with pytest.raises(AmbiguousWriteError) as caught:
                await http.request("POST", "/projects", json={"name": "Launch"})
            return caught.value, http.stats

    error, stats = run(main())
    assert server.vendor.count() == 1
    assert isinstance(error, RetryableVendorError) and error.retryable
    assert error.status_code == 500 and error.method == "POST" and error.path == "/projects"
    assert "Server Error" in error.message and "may have committed" in error.message
    assert stats.as_metadata()["failures_ambiguous"] == 1


@pytest.mark.parametrize(("method", "idempotent"), [("PUT", None), ("DELETE", None), ("POST", True)])
def test_idempotent_writes_are_retried_on_5xx(server: Server, method: str, idempotent: bool | None) -> None:
    server.vendor.script(method, "/thing", reply(503, {}), reply(502, {}), reply(200, {"done": True}))

    async def main() -> Any:
        async with session(server) as http:
            return await http.json(method, "/thing", json={"a": 1}, idempotent=idempotent)

    assert run(main()) == {"done": True}
    assert server.vendor.count(method, "/thing") == 3


def test_408_on_post_is_ambiguous(server: Server) -> None:
    server.vendor.script("POST", "/x", then=reply(408, {"message": "timeout"}))

    async def main() -> None:
        async with session(server) as http:
            with pytest.raises(AmbiguousWriteError):
                await http.request("POST", "/x", json={})

    run(main())
    assert server.vendor.count() == 1


def test_5xx_on_get_exhausts_into_retryable_error(server: Server) -> None:
    server.vendor.script("GET", "/flaky", then=reply(503, {"code": "unavailable", "message": "try later"}))

    async def main() -> VendorError:
        async with session(server) as http:
            with pytest.raises(RetryableVendorError) as caught:
                await http.request("GET", "/flaky")
            return caught.value

    error = run(main())
    assert type(error) is RetryableVendorError
    assert error.attempts == FAST.max_attempts and error.status_code == 503
    assert error.message == "unavailable: try later"
    assert server.vendor.count() == FAST.max_attempts


def test_401_is_permanent_with_the_vendor_message_and_one_request(server: Server) -> None:
    server.vendor.script("GET", "/v1/models", then=reply(
        401, {"error": {"message": "Invalid authentication credentials", "type": "invalid_request_error",
                        "code": "invalid_api_key"}}))

    async def main() -> Any:
        async with session(server, service="llm") as http:
            with pytest.raises(PermanentVendorError) as caught:
                await http.request("GET", "/v1/models")
            return caught.value, http.stats

    error, stats = run(main())
    assert server.vendor.count() == 1
    assert error.status_code == 401 and not error.retryable and error.kind == "http_401"
    assert error.message == "invalid_api_key: Invalid authentication credentials"
    assert str(error) == "llm GET /v1/models: HTTP 401: invalid_api_key: Invalid authentication credentials"
    assert (stats.retries, stats.as_metadata()["failures_permanent"]) == (0, 1)


def test_404_asana_shape_is_permanent(server: Server) -> None:
    server.vendor.script("GET", "/projects/42", then=reply(
        404, {"errors": [{"message": "project: Unknown object: 42", "help": "see docs"}]}))

    async def main() -> VendorError:
        async with session(server, service="asana") as http:
            with pytest.raises(PermanentVendorError) as caught:
                await http.json("GET", "/projects/42")
            return caught.value

    assert run(main()).message == "project: Unknown object: 42"
    assert server.vendor.count() == 1


# --------------------------------------------------------------------------------------
# Transport errors: timeouts, dropped connections, refused connections
# --------------------------------------------------------------------------------------


def test_timeout_on_get_is_retried_and_on_post_is_ambiguous(server: Server) -> None:
    policy = RetryPolicy(max_attempts=3, backoff_base_s=0.001, backoff_max_s=0.01, timeout_s=10.0)
    server.vendor.script("GET", "/slow", hold(200, {"late": True}), reply(200, {"fast": True}))
    server.vendor.script("POST", "/slow", then=hold(201, {"late": True}))
    # Only the held requests get a short read timeout: the vendor never answers them in time.
    transport = ShortReadTimeout({"GET /slow": 1, "POST /slow": 1})

    async def main() -> Any:
        async with session(server, policy=policy, transport=transport) as http:
            got = await http.json("GET", "/slow")
            with pytest.raises(AmbiguousWriteError) as caught:
                await http.request("POST", "/slow", json={"name": "x"})
            return got, caught.value, http.stats

    got, error, stats = run(main())
    assert got == {"fast": True}
    assert error.kind == "ReadTimeout" and error.status_code is None and error.attempts == 1
    assert server.vendor.count("POST", "/slow") == 1
    assert stats.transport_errors == 2


def test_dropped_connection_get_is_retried_post_is_ambiguous(server: Server) -> None:
    server.vendor.script("GET", "/obj", drop(), reply(200, {"id": "o1"}))
    server.vendor.script("POST", "/obj", then=drop())

    async def main() -> Any:
        async with session(server) as http:
            got = await http.json("GET", "/obj")
            with pytest.raises(AmbiguousWriteError) as caught:
                await http.request("POST", "/obj", json={"name": "x"})
            return got, caught.value

    got, error = run(main())
    assert got == {"id": "o1"}
    # What httpx raises when the peer closes before the declared Content-Length arrived:
    assert error.kind == "RemoteProtocolError"
    assert "peer closed connection" in error.message
    assert server.vendor.count("POST", "/obj") == 1


def test_connect_error_is_retried_even_for_post_because_nothing_was_sent() -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now

    async def main() -> Any:
        async with session(f"http://127.0.0.1:{port}") as http:
            with pytest.raises(RetryableVendorError) as caught:
                await http.request("POST", "/objects", json={"a": 1})
            return caught.value, http.stats

    error, stats = run(main())
    assert type(error) is RetryableVendorError  # not ambiguous: the request never left
    assert error.kind == "ConnectError" and error.attempts == FAST.max_attempts
    assert stats.calls == FAST.max_attempts and stats.retries == FAST.max_attempts - 1


def test_unsupported_protocol_is_permanent() -> None:
    async def main() -> Any:
        async with session("ftp://127.0.0.1:1") as http:
            with pytest.raises(PermanentVendorError) as caught:
                await http.request("GET", "/x")
            return caught.value, http.stats

    error, stats = run(main())
    assert error.kind == "UnsupportedProtocol" and stats.calls == 1


# --------------------------------------------------------------------------------------
# create_once: exactly-once creates
# --------------------------------------------------------------------------------------


def _create_and_find(http: HttpSession, marker: str) -> tuple[Callable[[], Awaitable[Any]], Callable[[], Awaitable[Any]]]:
    async def create() -> Any:
        return (await http.json("POST", "/objects", json={"name": "Banner 300x250", "marker": marker}))["data"]

    async def find() -> Any:
        listing = await http.json("GET", "/objects")
        return next((o for o in listing["data"] if o["marker"] == marker), None)

    return create, find


def test_create_once_reconciles_a_write_whose_response_was_lost(server: Server) -> None:
    server.vendor.script("POST", "/objects", drop(commit=commit_object), then=create_and_reply())
    server.vendor.script("GET", "/objects", then=list_objects())

    async def main() -> Any:
        async with session(server) as http:
            create, find = _create_and_find(http, "ca:q4-launch:creatives:300x250")
            return await http.create_once(create, find), http.stats

    obj, stats = run(main())
    assert obj["marker"] == "ca:q4-launch:creatives:300x250" and obj["id"] == "obj-1"
    assert len(server.vendor.objects) == 1  # exactly once
    assert server.vendor.count("POST", "/objects") == 1
    assert stats.reconciled == 1 and stats.as_metadata()["reconciled"] == 1


def test_create_once_creates_again_when_the_failed_write_did_not_commit(server: Server) -> None:
    server.vendor.script("POST", "/objects", reply(500, {"message": "boom"}), then=create_and_reply())
    server.vendor.script("GET", "/objects", then=list_objects())

    async def main() -> Any:
        async with session(server) as http:
            create, find = _create_and_find(http, "m-2")
            return await http.create_once(create, find), http.stats

    obj, stats = run(main())
    assert obj["marker"] == "m-2"
    assert len(server.vendor.objects) == 1
    assert server.vendor.count("POST", "/objects") == 2 and server.vendor.count("GET", "/objects") == 1
    assert stats.reconciled == 0


def test_create_once_does_not_swallow_permanent_errors(server: Server) -> None:
    server.vendor.script("POST", "/objects", then=reply(400, {"message": "name is required"}))

    async def main() -> None:
        async with session(server) as http:
            create, find = _create_and_find(http, "m-3")
            with pytest.raises(PermanentVendorError, match="name is required"):
                await http.create_once(create, find)

    run(main())
    assert server.vendor.count("GET", "/objects") == 0


def test_create_once_gives_up_after_max_attempts() -> None:
    creates = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal creates
        if request.method == "POST":
            creates += 1
            raise httpx.ReadError("connection reset by peer", request=request)
        return httpx.Response(200, json={"data": []})

    async def main() -> None:
        async with session("https://vendor.example", transport=httpx.MockTransport(handler)) as http:
            create, find = _create_and_find(http, "m-4")
            with pytest.raises(AmbiguousWriteError):
                await http.create_once(create, find)

    run(main())
    assert creates == FAST.max_attempts


# --------------------------------------------------------------------------------------
# Vendor-level signals in HTTP 200 bodies (Slack)
# --------------------------------------------------------------------------------------

SLACK = VendorProfile(service="slack", classify=body_flag_classifier())


def test_slack_ok_false_ratelimited_is_retried(server: Server) -> None:
    server.vendor.script(
        "POST", "/api/chat.postMessage",
        reply(200, {"ok": False, "error": "ratelimited"}, headers={"Retry-After": "0.01"}),
        reply(200, {"ok": True, "ts": "1700000000.000100"}),
    )

    async def main() -> Any:
        async with session(server, service="slack", profile=SLACK) as http:
            return await http.json("POST", "/api/chat.postMessage", json={"channel": "C1", "text": "hi"}), http.stats

    payload, stats = run(main())
    assert payload["ok"] is True
    assert server.vendor.count() == 2 and stats.rate_limited == 1


def test_slack_ok_false_invalid_auth_is_permanent(server: Server) -> None:
    server.vendor.script("POST", "/api/chat.postMessage", then=reply(200, {"ok": False, "error": "invalid_auth"}))

    async def main() -> VendorError:
        async with session(server, service="slack", profile=SLACK) as http:
            with pytest.raises(PermanentVendorError) as caught:
                await http.request("POST", "/api/chat.postMessage", json={"channel": "C1"})
            return caught.value

    error = run(main())
    assert error.message == "invalid_auth" and error.status_code == 200
    assert server.vendor.count() == 1


def test_custom_classify_and_error_message_functions(server: Server) -> None:
    # A vendor that signals "busy" with 409 and puts its message in a header.
    profile = VendorProfile(
        service="odd",
        classify=lambda r: "retryable" if r.status_code == 409 else ("permanent" if r.status_code >= 400 else "ok"),
        error_message=lambda r: r.headers.get("x-error", "?"),
    )
    server.vendor.script("GET", "/odd", reply(409, {}), then=reply(418, {}, headers={"x-error": "teapot"}))

    async def main() -> VendorError:
        async with session(server, profile=profile) as http:
            with pytest.raises(PermanentVendorError) as caught:
                await http.request("GET", "/odd")
            return caught.value

    assert run(main()).message == "teapot"
    assert server.vendor.count() == 2


# --------------------------------------------------------------------------------------
# Concurrency: the adaptive limiter
# --------------------------------------------------------------------------------------


def test_limiter_never_exceeds_cap_under_50_concurrent_tasks(server: Server) -> None:
    server.vendor.script("GET", "/work", then=reply(200, {"ok": True}, delay=0.02))

    async def main() -> HttpSession:
        async with session(server, cap=5) as http:
            results = await asyncio.gather(*(http.json("GET", "/work") for _ in range(50)))
            assert results == [{"ok": True}] * 50
            assert http.limiter.in_flight == 0
            return http

    http = run(main())
    assert server.vendor.max_in_flight <= 5
    assert http.limiter.max_in_flight_seen == 5 and http.stats.max_in_flight == 5
    assert http.stats.calls == 50 and http.stats.wall_seconds > 0
    assert http.stats.seconds >= http.stats.wall_seconds  # 5 at a time: summed time exceeds the span


def test_limiter_halves_once_on_a_429_burst_then_recovers(server: Server) -> None:
    limited = reply(429, {}, headers={"Retry-After": "0.02"})
    server.vendor.script("GET", "/burst", *([limited] * 8), then=reply(200, {"ok": True}, delay=0.005))

    async def main() -> tuple[HttpSession, RecordingSleep]:
        holder: dict[str, HttpSession] = {}
        sleep = RecordingSleep(probe=lambda: holder["http"].limiter.limit)
        async with session(server, cap=8, sleep=sleep) as http:
            holder["http"] = http
            await asyncio.gather(*(http.request("GET", "/burst") for _ in range(40)))
            return http, sleep

    http, sleep = run(main())
    # The 8 requests in flight all got 429: one signal, one halving (same epoch).
    assert sleep.probes and min(sleep.probes) == 4
    assert http.limiter.decreases == 1
    assert server.vendor.max_in_flight <= 8
    # 40 successes are more than the 4+5+6+7 needed to climb back to the cap.
    assert http.limiter.limit == 8 and http.limiter.increases == 4
    assert http.stats.rate_limited == 8 and http.stats.calls == 48


def test_no_limiter_slot_is_held_while_sleeping(server: Server) -> None:
    """A backs off after a 429 and stays in backoff until B, with the only slot (cap 1), has finished."""
    server.vendor.script("GET", "/slow-429", reply(429, {}, headers={"Retry-After": "30"}), then=reply(200, {}))
    server.vendor.script("GET", "/fast", then=reply(200, {}))
    finished: list[str] = []

    async def main() -> None:
        backing_off, b_done = asyncio.Event(), asyncio.Event()

        async def held_sleep(delay: float) -> None:  # A's backoff ends only once B is done
            backing_off.set()
            await b_done.wait()

        async with session(server, cap=1, sleep=held_sleep) as http:
            async def a() -> None:
                await http.request("GET", "/slow-429")
                finished.append("A")

            async def b() -> None:
                await backing_off.wait()
                assert http.limiter.in_flight == 0  # A holds no slot while it sleeps
                await http.request("GET", "/fast")
                finished.append("B")
                b_done.set()

            await asyncio.gather(a(), b())

    run(main())
    assert finished == ["B", "A"]
    assert server.vendor.count("GET", "/slow-429") == 2


def test_adaptive_limiter_aimd_unit() -> None:
    limiter = AdaptiveLimiter(8)
    limiter.on_rate_limited(limiter.epoch)
    assert limiter.limit == 4
    limiter.on_rate_limited(0)  # stale: from a request that started before the halving
    assert limiter.limit == 4
    limiter.on_rate_limited()  # no epoch: always counts
    assert limiter.limit == 2
    for _ in range(3):
        limiter.on_rate_limited()
    assert limiter.limit == 1  # never below 1
    for expected in (2, 3, 4):
        for _ in range(expected - 1):
            limiter.on_success()
        assert limiter.limit == expected
    limiter = AdaptiveLimiter(3, increase_after=1)
    limiter.on_rate_limited()
    limiter.on_success(), limiter.on_success(), limiter.on_success()
    assert limiter.limit == 3  # capped
    with pytest.raises(ValueError):
        AdaptiveLimiter(0)


def test_adaptive_limiter_cancellation_does_not_leak_slots() -> None:
    async def main() -> None:
        limiter = AdaptiveLimiter(1)
        await limiter.acquire()
        waiter = asyncio.create_task(limiter.acquire())
        await asyncio.sleep(0)
        waiter.cancel()  # cancelled while waiting
        with pytest.raises(asyncio.CancelledError):
            await waiter
        granted = asyncio.create_task(limiter.acquire())
        await asyncio.sleep(0)
        limiter.release()  # grants the slot to `granted`...
        granted.cancel()  # ...which is cancelled before it resumes: it must hand the slot back
        with pytest.raises(asyncio.CancelledError):
            await granted
        assert limiter.in_flight == 0
        async with limiter:
            assert limiter.in_flight == 1
        assert limiter.in_flight == 0

    run(main())


def test_limiter_can_be_shared_between_sessions(server: Server) -> None:
    server.vendor.script("GET", "/work", then=reply(200, {}, delay=0.01))

    async def main() -> AdaptiveLimiter:
        shared = AdaptiveLimiter(3)
        async with session(server, limiter=shared) as a, session(server, limiter=shared) as b:
            await asyncio.gather(*(s.request("GET", "/work") for s in [a, b] * 10))
        return shared

    assert run(main()).max_in_flight_seen == 3
    assert server.vendor.max_in_flight <= 3


# --------------------------------------------------------------------------------------
# Redaction
# --------------------------------------------------------------------------------------


def test_token_echoed_in_error_body_is_redacted_everywhere(server: Server, caplog: pytest.LogCaptureFixture) -> None:
    echo = {"error": {"message": f"Incorrect API key provided: {TOKEN}. Header was 'Bearer {TOKEN}'"}}
    server.vendor.script("GET", "/v1/models", reply(500, echo), reply(500, echo), then=reply(401, echo))
    caplog.set_level(logging.DEBUG)

    async def main() -> VendorError:
        async with session(server, service="llm") as http:
            with pytest.raises(PermanentVendorError) as caught:
                await http.request("GET", "/v1/models")
            return caught.value

    error = run(main())
    assert error.message.startswith("Incorrect API key provided: ***")
    rendered = [str(error), repr(error), error.message, "".join(traceback.format_exception(error))]
    assert not any(leaks(text) for text in rendered)
    assert TOKEN.encode() not in pickle.dumps(error)
    assert not leaks(caplog.text)
    retries = [r for r in caplog.records if r.name == "campaign_assets.http" and "retrying" in r.getMessage()]
    assert len(retries) == 2 and all(r.levelno == logging.WARNING for r in retries)
    first = retries[0]
    assert (first.http_service, first.http_method, first.http_path, first.http_reason, first.http_attempt) == (
        "llm", "GET", "/v1/models", "http_500", 1)
    assert "retrying in" in first.getMessage() and "***" in first.getMessage()


def test_token_in_query_string_never_reaches_logs(server: Server, caplog: pytest.LogCaptureFixture) -> None:
    server.vendor.script("GET", "/v1/files", reply(503, {}), then=reply(200, {"files": []}))
    caplog.set_level(logging.DEBUG)
    httpx_logger = logging.getLogger("httpx")
    before = (list(httpx_logger.filters), list(httpx_logger.handlers), httpx_logger.level, httpx_logger.disabled)

    async def main() -> Any:
        async with session(server, headers={}, secrets=[TOKEN]) as http:
            during = (list(httpx_logger.filters), list(httpx_logger.handlers), httpx_logger.level, httpx_logger.disabled)
            assert during == before  # opening a session leaves the global httpx logger alone
            return await http.json("GET", "/v1/files", params={"key": TOKEN, "page": "2"})

    assert run(main()) == {"files": []}
    wire = httpx.QueryParams(server.vendor.calls[0].query)
    assert (wire["key"], wire["page"]) == (TOKEN, "2")  # the token really was on the wire, twice
    assert wire == httpx.QueryParams(server.vendor.calls[1].query)
    assert not leaks(caplog.text)
    lines = [r.getMessage() for r in caplog.records if r.name == "httpx" and "HTTP Request" in r.getMessage()]
    assert len(lines) == 2 and all("key=%2A%2A%2A&page=2" in line for line in lines)  # masked: '***' URL-encoded


def test_token_in_httpx_exception_text_is_redacted(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)

    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadError(f"connection reset while reading {request.url}", request=request)

    async def main() -> list[VendorError]:
        errors: list[VendorError] = []
        async with session("https://vendor.example", transport=httpx.MockTransport(handler)) as http:
            for method in ("GET", "POST"):
                with pytest.raises(RetryableVendorError) as caught:
                    await http.request(method, "/v1/items", params={"key": TOKEN}, json={"x": 1})
                errors.append(caught.value)
        return errors

    get_error, post_error = run(main())
    assert type(get_error) is RetryableVendorError and isinstance(post_error, AmbiguousWriteError)
    for error in (get_error, post_error):
        assert error.kind == "ReadError" and "key=***" in error.message
        assert error.__cause__ is None and error.__context__ is None  # no unredacted httpx error chained
        assert not leaks("".join(traceback.format_exception(error)))
    assert not leaks(caplog.text)


def test_redactor_unit() -> None:
    redactor = Redactor([TOKEN, "", None, "other-secret-value"])
    text = f"a {TOKEN} b {httpx.QueryParams({'k': TOKEN})} c other-secret-value d Bearer abc.def e sk-proj-abcdefghijklmnopqrstuvwx"
    out = redactor.redact(text)
    assert not leaks(out) and "other-secret-value" not in out and "abc.def" not in out and "sk-proj" not in out
    assert out.startswith("a *** b k=*** c *** d Bearer *** e ***")
    assert redactor.redact("nothing secret here") == "nothing secret here"
    obj = {"headers": {"Authorization": "Bearer zzz", "X-Trace": "1"}, "items": [f"x{TOKEN}", 3, None, ("t", TOKEN)],
           TOKEN: True, "max_tokens": 10}
    clean = redactor.redact_obj(obj)
    assert clean == {"headers": {"Authorization": "***", "X-Trace": "1"}, "items": ["x***", 3, None, ("t", "***")],
                     "***": True, "max_tokens": 10}
    assert obj["items"][0] == f"x{TOKEN}"  # a copy: the original is untouched


def test_redactor_logging_filter_redacts_args_and_exceptions() -> None:
    import io

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(Redactor([TOKEN]).logging_filter())
    log = logging.getLogger("campaign_assets.tests.redaction")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("calling with %s and %r", TOKEN, {"auth": f"Bearer {TOKEN}"})
        try:
            raise RuntimeError(f"failed with {TOKEN}")
        except RuntimeError:
            log.exception("boom %s", TOKEN)
    finally:
        log.removeHandler(handler)
    output = stream.getvalue()
    assert not leaks(output)
    assert "calling with *** and" in output and "RuntimeError: failed with ***" in output


# --------------------------------------------------------------------------------------
# Parsing helpers, policy, stats, errors
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (401, {"error": {"message": "Incorrect API key", "type": "invalid_request_error", "code": "invalid_api_key"}},
         "invalid_api_key: Incorrect API key"),
        (403, {"error": {"code": 403, "message": "The caller does not have permission", "status": "PERMISSION_DENIED"}},
         "PERMISSION_DENIED: The caller does not have permission"),
        (400, {"errors": [{"message": "name: Missing input", "help": "..."}, {"message": "due_on: bad date"}]},
         "name: Missing input; due_on: bad date"),
        (400, {"code": "invalid_field", "message": "Design type is invalid"}, "invalid_field: Design type is invalid"),
        (200, {"ok": False, "error": "invalid_auth"}, "invalid_auth"),
        (200, {"ok": False, "error": "invalid_arguments", "response_metadata": {"messages": ["[ERROR] missing channel"]}},
         "invalid_arguments: [ERROR] missing channel"),
        (400, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."},
         "invalid_grant: Token has been expired or revoked."),
        (422, {"title": "Unprocessable", "detail": "bad size"}, "Unprocessable: bad size"),
        (502, b"<html>Bad Gateway</html>", "<html>Bad Gateway</html>"),
        (503, b"", "Service Unavailable"),
    ],
)
def test_default_error_message_understands_vendor_shapes(status: int, body: Any, expected: str) -> None:
    if isinstance(body, bytes):
        response = httpx.Response(status, content=body)
    else:
        response = httpx.Response(status, json=body)
    assert default_error_message(response) == expected


def test_default_error_message_truncates() -> None:
    assert len(default_error_message(httpx.Response(500, json={"message": "x" * 5000}))) == 500


def test_parse_retry_after() -> None:
    now = datetime(2027, 1, 4, 12, 0, 0, tzinfo=timezone.utc)
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after(" 0.25 ") == 0.25
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now=now) == 30.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=30), usegmt=True), now=now) == 0.0
    assert parse_retry_after("-5") == 0.0
    for bad in (None, "", "soon", "nan", "inf"):
        assert parse_retry_after(bad) is None
    assert default_retry_after(httpx.Response(429, headers={"Retry-After": "0.4", "x-sandbox-retry-after": "3"})) == 0.4
    assert default_retry_after(httpx.Response(429, headers={"x-sandbox-retry-after": "0.4"})) is None
    assert default_retry_after(httpx.Response(429, headers={"Retry-After": "3"})) == 3.0
    assert default_retry_after(httpx.Response(429)) is None


def test_backoff_is_seeded_full_jitter_and_capped() -> None:
    policy = RetryPolicy(backoff_base_s=0.5, backoff_max_s=4.0)
    first = [backoff_delay(policy, n, random.Random(7)) for n in range(1, 10)]
    second = [backoff_delay(policy, n, random.Random(7)) for n in range(1, 10)]
    assert first == second
    rng = random.Random(1)
    for attempt in range(1, 200):
        assert 0 <= backoff_delay(policy, attempt, rng) <= min(4.0, 0.5 * 2 ** (attempt - 1))
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)


def test_sessions_with_the_same_seed_back_off_identically(server: Server) -> None:
    server.vendor.script("GET", "/x", then=reply(500, {}))

    async def delays(seed: int) -> list[float]:
        sleep = RecordingSleep()
        async with session(server, sleep=sleep, rng=random.Random(seed)) as http:
            with pytest.raises(RetryableVendorError):
                await http.request("GET", "/x")
        return sleep.delays

    assert run(delays(3)) == run(delays(3)) != run(delays(4))


def test_stats_metadata_is_plain_numbers_and_picklable() -> None:
    stats = ServiceStats(service="docs")
    stats.calls, stats.retries = 3, 1
    stats.record_attempt(10.0, 11.5)
    stats.record_attempt(10.5, 12.0)
    stats.record_failure("ambiguous")
    meta = stats.as_metadata()
    assert meta["seconds"] == 3.0 and meta["wall_seconds"] == 2.0 and meta["failures_ambiguous"] == 1
    assert all(type(v) in (int, float) for v in meta.values())
    assert json.loads(json.dumps(meta)) == meta
    assert pickle.loads(pickle.dumps(stats)) == stats


def test_errors_survive_pickling() -> None:
    error = RateLimitedError("canva", "too many", status_code=429, method="POST", path="/v1/designs",
                             attempts=6, retry_after=1.5)
    clone = pickle.loads(pickle.dumps(error))
    assert type(clone) is RateLimitedError and str(clone) == str(error)
    assert (clone.retry_after, clone.status_code, clone.path, clone.attempts, clone.retryable) == (
        1.5, 429, "/v1/designs", 6, True)
    ambiguous = pickle.loads(pickle.dumps(AmbiguousWriteError("asana", "lost", kind="ReadTimeout")))
    assert isinstance(ambiguous, RetryableVendorError) and ambiguous.kind == "ReadTimeout"


def test_json_helper_handles_empty_bodies_and_rejects_non_json(server: Server) -> None:
    server.vendor.script("DELETE", "/thing", then=reply(204))
    server.vendor.script("GET", "/empty", then=reply(200, raw=b""))
    server.vendor.script("GET", "/null", then=reply(200, raw=b"null"))
    server.vendor.script("GET", "/html", then=reply(200, raw=b"<html></html>", headers={"content-type": "text/html"}))

    async def main() -> None:
        async with session(server) as http:
            assert await http.json("DELETE", "/thing") is None
            assert await http.json("GET", "/empty") is None
            assert await http.json("GET", "/null") is None
            with pytest.raises(PermanentVendorError, match="expected a JSON body"):
                await http.json("GET", "/html")

    run(main())


def test_session_must_be_entered() -> None:
    http = session("http://127.0.0.1:1")

    async def main() -> None:
        with pytest.raises(RuntimeError, match="outside 'async with'"):
            await http.request("GET", "/")

    run(main())


# --------------------------------------------------------------------------------------
# Circuit breaker: a vendor that plainly went down costs the rest of the step nothing
# --------------------------------------------------------------------------------------


class FakeClock:
    """An injectable monotonic clock that only moves when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def no_sleep(delay: float) -> None:
    await asyncio.sleep(0)


DOWN = reply(503, {"error": {"message": f"backend unavailable (key {TOKEN})"}})


async def outcomes(http: HttpSession, n: int, path: str = "/x", method: str = "GET") -> list[BaseException | None]:
    """``n`` requests one after another: the exception each raised, or None."""
    results: list[BaseException | None] = []
    for _ in range(n):
        try:
            await http.request(method, path)
            results.append(None)
        except VendorError as exc:
            results.append(exc)
    return results


def circuit_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "circuit" in r.getMessage()]


def test_three_down_requests_open_the_circuit_and_the_rest_fail_fast_without_a_call(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="campaign_assets.http")
    server.vendor.script("GET", "/x", then=DOWN)
    server.vendor.script("GET", "/y", then=reply(200, {}))

    async def main() -> tuple[list[BaseException | None], list[BaseException | None], HttpSession]:
        async with session(server, sleep=no_sleep) as http:
            return await outcomes(http, 8), await outcomes(http, 2, "/y"), http

    first, other_path, http = run(main())
    exhausted, fast = first[:3], first[3:] + other_path
    assert all(type(e) is RetryableVendorError and e.attempts == FAST.max_attempts for e in exhausted)
    assert all(isinstance(e, CircuitOpenError) for e in fast), fast
    assert server.vendor.count() == 3 * FAST.max_attempts  # the vendor saw nothing more, on any path
    assert server.vendor.count("GET", "/y") == 0
    error = fast[0]
    assert isinstance(error, RetryableVendorError) and error.retryable  # items fall back locally
    assert (error.kind, error.status_code, error.attempts) == ("circuit_open", 503, 0)
    assert "not sent: circuit open" in str(error) and "HTTP 503" in str(error) and "backend unavailable" in str(error)
    meta = http.stats.as_metadata()
    assert (meta["circuit_opened"], meta["short_circuited"], meta["failures"]) == (1, 7, 3)
    assert http.breaker.state == "open"
    [line] = circuit_lines(caplog)  # one line when it opens, none per refused request
    assert "circuit open: 3 consecutive requests failed" in line and "30s" in line
    assert not any(leaks(r.getMessage()) for r in caplog.records)
    assert not any(leaks(str(e)) for e in fast)
    assert pickle.loads(pickle.dumps(error)).kind == "circuit_open"


def test_a_success_between_failures_resets_the_count(server: Server) -> None:
    server.vendor.script("GET", "/x", *[DOWN] * (2 * FAST.max_attempts), reply(200, {}),
                         then=DOWN)

    async def main() -> list[BaseException | None]:
        async with session(server, sleep=no_sleep) as http:
            return await outcomes(http, 6)

    result = run(main())
    assert result[2] is None
    assert [type(e).__name__ for e in result] == [
        "RetryableVendorError", "RetryableVendorError", "NoneType",
        "RetryableVendorError", "RetryableVendorError", "RetryableVendorError",
    ]  # two, a success, then three: the sixth opened it, none was refused


def test_transport_errors_count_as_down() -> None:
    """Nothing listens: connection refused on every attempt, three requests, then fail fast."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    async def main() -> list[BaseException | None]:
        async with session(f"http://127.0.0.1:{port}", sleep=no_sleep) as http:
            result = await outcomes(http, 5)
            assert http.stats.calls == 3 * FAST.max_attempts
            return result

    result = run(main())
    assert [type(e) for e in result] == [RetryableVendorError] * 3 + [CircuitOpenError] * 2
    assert result[0].kind == "ConnectError" and result[3].status_code is None  # type: ignore[union-attr]


def test_401_opens_the_circuit_and_later_requests_get_the_same_refusal_without_a_call(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="campaign_assets.http")
    server.vendor.script("GET", "/v1/models", then=reply(
        401, {"error": {"message": f"Incorrect API key provided: {TOKEN}", "code": "invalid_api_key"}}))

    async def main() -> tuple[list[BaseException | None], HttpSession]:
        async with session(server, service="llm", sleep=no_sleep) as http:
            first = await outcomes(http, 1, "/v1/models")
            later = await outcomes(http, 3, "/v1/chat/completions", "POST")
            return first + later, http

    (first, *later), http = run(main())
    assert server.vendor.count() == 1
    assert isinstance(first, PermanentVendorError) and first.attempts == 1
    for error in later:
        assert type(error) is PermanentVendorError and not isinstance(error, CircuitOpenError)
        assert (error.status_code, error.kind, error.attempts) == (401, "http_401", 0)
        assert error.message.startswith(first.message) and "not sent: circuit open" in error.message
        assert (error.method, error.path) == ("POST", "/v1/chat/completions")
        assert not leaks(str(error))
    assert (http.stats.circuit_opened, http.stats.short_circuited) == (1, 3)
    [line] = circuit_lines(caplog)
    assert "the token was refused" in line and not leaks(line)


def test_slack_invalid_auth_in_a_200_body_opens_the_circuit(server: Server) -> None:
    server.vendor.script("POST", "/chat.postMessage", then=reply(200, {"ok": False, "error": "invalid_auth"}))

    async def main() -> list[BaseException | None]:
        async with session(server, service="slack", profile=VendorProfile("slack", classify=body_flag_classifier())) as http:
            return await outcomes(http, 3, "/chat.postMessage", "POST")

    result = run(main())
    assert server.vendor.count() == 1
    assert all(isinstance(e, PermanentVendorError) and "invalid_auth" in e.message for e in result)


def test_403_on_one_resource_does_not_open_the_circuit_but_a_run_of_them_does(server: Server) -> None:
    denied = reply(403, {"error": {"code": 403, "message": "The caller does not have permission"}})
    server.vendor.script("GET", "/files", denied, denied, reply(200, {}), then=denied)

    async def main() -> list[BaseException | None]:
        async with session(server, sleep=no_sleep) as http:
            return await outcomes(http, 7, "/files")

    result = run(main())
    assert server.vendor.count() == 6  # 403, 403, ok, then three 403s open it; the seventh is not sent
    assert result[2] is None and [e.attempts for e in result if e is not None] == [1, 1, 1, 1, 1, 0]
    assert all(isinstance(e, PermanentVendorError) and e.status_code == 403 for e in result if e is not None)


def test_404s_do_not_open_the_circuit(server: Server) -> None:
    server.vendor.script("GET", "/projects/42", then=reply(404, {"errors": [{"message": "Unknown object"}]}))

    async def main() -> tuple[list[BaseException | None], HttpSession]:
        async with session(server) as http:
            return await outcomes(http, 10, "/projects/42"), http

    result, http = run(main())
    assert server.vendor.count() == 10
    assert all(type(e) is PermanentVendorError and e.attempts == 1 for e in result)
    assert http.breaker.state == "closed" and http.stats.short_circuited == 0


def test_429s_with_retry_after_do_not_open_the_circuit(server: Server) -> None:
    limited = reply(429, {"error": {"message": "slow down"}}, headers={"Retry-After": "1"})
    server.vendor.script("GET", "/x", then=limited)
    delays: list[float] = []

    async def instant(delay: float) -> None:
        delays.append(delay)

    async def main() -> tuple[list[BaseException | None], HttpSession]:
        async with session(server, sleep=instant) as http:
            return await outcomes(http, 5), http

    result, http = run(main())
    assert all(type(e) is RateLimitedError for e in result)
    assert server.vendor.count() == 5 * FAST.max_attempts  # every request spent its budget: the vendor is up
    assert len(delays) == 5 * (FAST.max_attempts - 1) and all(d >= 1.0 for d in delays)  # Retry-After was honoured
    assert http.breaker.state == "closed" and http.stats.circuit_opened == 0


def test_ambiguous_writes_do_not_open_the_circuit(server: Server) -> None:
    server.vendor.script("POST", "/things", then=DOWN)

    async def main() -> list[BaseException | None]:
        async with session(server, sleep=no_sleep) as http:
            return await outcomes(http, 4, "/things", "POST")

    result = run(main())
    assert all(type(e) is AmbiguousWriteError for e in result)  # each reconciled by its caller, not refused
    assert server.vendor.count() == 4


def test_half_open_after_the_cooldown_one_probe_that_succeeds_closes_it(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="campaign_assets.http")
    clock = FakeClock()
    server.vendor.script("GET", "/x", *[DOWN] * (3 * FAST.max_attempts), then=reply(200, {"ok": 1}))

    async def main() -> HttpSession:
        breaker = CircuitBreaker(cooldown_s=30.0, clock=clock)
        async with session(server, sleep=no_sleep, breaker=breaker) as http:
            await outcomes(http, 3)
            assert breaker.state == "open" and breaker.retry_in() == 30.0
            clock.advance(29.9)
            assert [type(e) for e in await outcomes(http, 1)] == [CircuitOpenError]
            sent = server.vendor.count()
            clock.advance(0.1)
            assert await http.json("GET", "/x") == {"ok": 1}  # the probe
            assert server.vendor.count() == sent + 1 and breaker.state == "closed"
            assert await outcomes(http, 3) == [None, None, None]
            return http

    http = run(main())
    assert (http.stats.circuit_opened, http.stats.short_circuited) == (1, 1)
    lines = circuit_lines(caplog)
    assert len(lines) == 3
    assert "circuit open" in lines[0] and "half-open" in lines[1] and "circuit closed" in lines[2]


def test_a_failed_probe_reopens_it_for_another_cooldown(server: Server) -> None:
    clock = FakeClock()
    server.vendor.script("GET", "/x", then=DOWN)

    async def main() -> HttpSession:
        breaker = CircuitBreaker(failure_threshold=1, cooldown_s=10.0, clock=clock)
        async with session(server, sleep=no_sleep, breaker=breaker) as http:
            await outcomes(http, 1)
            clock.advance(10)
            [probe] = await outcomes(http, 1)
            assert type(probe) is RetryableVendorError and probe.attempts == FAST.max_attempts
            assert breaker.state == "open" and breaker.opened == 2
            clock.advance(9)
            assert [type(e) for e in await outcomes(http, 2)] == [CircuitOpenError] * 2
            return http

    http = run(main())
    assert server.vendor.count() == 2 * FAST.max_attempts
    assert (http.stats.circuit_opened, http.stats.short_circuited) == (2, 2)


class Gate:
    """A shared_slot that holds the next request(s) until the test opens it: no timing involved."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.opened = asyncio.Event()

    @contextlib.asynccontextmanager
    async def __call__(self) -> Any:
        self.entered.set()
        await self.opened.wait()
        yield


def test_one_breaker_shared_by_two_sessions_stops_a_request_waiting_for_its_slot(server: Server) -> None:
    """Chat and images both call OpenAI: the opener may hand both sessions one breaker."""
    server.vendor.script("POST", "/chat/completions", then=DOWN)
    server.vendor.script("POST", "/images/generations", then=reply(200, {}))

    async def main() -> None:
        breaker = CircuitBreaker()
        gate = Gate()
        async with session(server, service="llm", sleep=no_sleep, breaker=breaker) as chat, session(
            server, service="images", breaker=breaker, shared_slot=gate
        ) as images:
            waiting = asyncio.ensure_future(images.request("POST", "/images/generations", idempotent=True))
            await gate.entered.wait()  # admitted while closed, now waiting for a slot
            for _ in range(3):
                with pytest.raises(RetryableVendorError):
                    await chat.request("POST", "/chat/completions", idempotent=True)
            assert breaker.state == "open"
            gate.opened.set()
            with pytest.raises(CircuitOpenError) as caught:
                await waiting
            assert caught.value.attempts == 0 and caught.value.service == "images"
            assert (chat.stats.circuit_opened, images.stats.short_circuited) == (1, 1)

    run(main())
    assert server.vendor.count("POST", "/images/generations") == 0


def test_a_request_backing_off_is_not_retried_once_the_circuit_opens(server: Server) -> None:
    server.vendor.script("GET", "/x", then=DOWN)

    async def main() -> None:
        resume = asyncio.Event()
        backing_off = asyncio.Event()
        breaker = CircuitBreaker(failure_threshold=1)

        async def held_sleep(delay: float) -> None:
            backing_off.set()
            await resume.wait()

        async with session(server, sleep=held_sleep, breaker=breaker) as slow, session(
            server, sleep=no_sleep, breaker=breaker, policy=RetryPolicy(max_attempts=1)
        ) as fast:
            pending = asyncio.ensure_future(slow.request("GET", "/x"))
            await backing_off.wait()  # one attempt failed, now in backoff
            with pytest.raises(RetryableVendorError):
                await fast.request("GET", "/x")  # opens it
            resume.set()
            with pytest.raises(CircuitOpenError) as caught:
                await pending
            assert caught.value.attempts == 1 and "not retried" in str(caught.value)

    run(main())
    assert server.vendor.count() == 2  # the backing-off request never sent its retry


def test_circuit_breaker_unit() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=2, cooldown_s=5.0, clock=clock)
    down = RetryableVendorError("v", "boom", status_code=500)

    early, _ = breaker.admit()
    assert early is not None
    for _ in range(2):
        ticket, _ = breaker.admit()
        assert ticket is not None
        assert breaker.record(ticket, "neutral") is None  # ambiguous: no effect
        breaker.record(ticket, "down", down)
    assert breaker.state == "open" and breaker.reason is down and not breaker.permanent
    assert breaker.record(early, "success") is None and breaker.state == "open"  # stale outcome ignored
    assert breaker.admit() == (None, False) and not breaker.allows_retry(early)

    clock.advance(5)
    probe, became_half_open = breaker.admit()
    assert probe is not None and probe.probe and became_half_open
    assert breaker.admit() == (None, False)  # one probe at a time
    breaker.release(probe)  # cancelled: the next request probes
    probe, became_half_open = breaker.admit()
    assert probe is not None and probe.probe and not became_half_open
    assert breaker.record(probe, "neutral") is None and breaker.state == "half_open"
    probe, _ = breaker.admit()
    assert probe is not None and breaker.record(probe, "answered") == "closed"
    assert breaker.state == "closed" and breaker.opened == 1

    auth = PermanentVendorError("v", "revoked", status_code=401)
    ticket, _ = breaker.admit()
    assert ticket is not None and breaker.record(ticket, "unauthorized", auth) == "opened"
    assert breaker.permanent and breaker.opened == 2
    clock.advance(5)
    probe, _ = breaker.admit()
    assert probe is not None and breaker.record(probe, "refused", auth) == "reopened"

    with pytest.raises(ValueError):
        CircuitBreaker(failure_threshold=0)
