"""Timeouts without racing the clock.

A vendor holds a request (the scripted vendor's ``hold()``, the sandbox's ``timeout``
fault) and the client must give up on exactly that request. One short timeout for every
call would let a busy machine time out an ordinary call too, and the exact call lists the
tests assert would break. Instead :class:`ShortReadTimeout` gives a short read timeout
only to the requests the vendor is known to hold; every other call keeps a generous one.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

import campaign_assets.services.base as service_base
from campaign_assets.services.http import HttpSession

SHORT_READ_S = 0.1  # far below the holds: the scripted vendor's (until the test ends), the sandbox's 1 s
GENEROUS_TIMEOUT_S = 30.0  # no ordinary call hits this, however busy the machine


def _endpoint(endpoint: str) -> tuple[str, re.Pattern[str]]:
    """``"POST /tasks"`` or ``"GET /v1/documents/{documentId}"``: method, and a pattern for the path's end."""
    method, _, template = endpoint.partition(" ")
    parts = re.split(r"\{[^}]+\}", template)
    return method, re.compile("[^/]+".join(re.escape(p) for p in parts) + "$")


class ShortReadTimeout(httpx.AsyncBaseTransport):
    """Wraps a real transport: the next request(s) to each listed endpoint get a short read timeout.

    ``held`` maps an endpoint (``"METHOD /path"``, route templates allowed, matched at
    the end of the URL path) to how many of its requests the vendor holds. Pass one
    dict to several transports to share the counts between sessions.
    """

    def __init__(self, held: dict[str, int], inner: httpx.AsyncBaseTransport | None = None) -> None:
        self._held = held
        self._inner = inner or httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        for endpoint, left in self._held.items():
            method, path = _endpoint(endpoint)
            if left and request.method == method and path.search(request.url.path):
                self._held[endpoint] = left - 1
                request.extensions["timeout"] = {**request.extensions.get("timeout", {}), "read": SHORT_READ_S}
                break
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def time_out_next(monkeypatch: pytest.MonkeyPatch, *endpoints: str) -> None:
    """Sessions opened through a service resource time out the next request to each endpoint
    (pair it with a sandbox ``timeout`` fault on the same endpoints, which holds them)."""
    held = {endpoint: 1 for endpoint in endpoints}

    def session(**kwargs: Any) -> HttpSession:
        return HttpSession(**kwargs, transport=ShortReadTimeout(held))

    monkeypatch.setattr(service_base, "HttpSession", session)
