"""The scripted vendor the HTTP-layer tests talk real HTTP to, and the helpers around it.

A tiny Starlette app served by uvicorn on a free 127.0.0.1 port (one server per test
module, reset per test: see ``conftest.py``). Each test scripts the vendor's answers per
route: "429 twice, then 200", "drop the connection after the write commits", "hold the
request until the test ends", and so on.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from campaign_assets.services.http import (
    HttpSession,
    RetryPolicy,
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


