"""Test doubles for timeouts without racing the clock.

A vendor (the scripted one, or the sandbox's ``timeout`` fault) holds a request; the
client must give up on exactly that request. Instead of one short timeout for every
call (which a busy machine can also hit on an ordinary call), :class:`ShortReadTimeout`
gives the short read timeout only to the requests the vendor is known to hold; every
other call keeps the session's generous timeout.
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx

SHORT_READ_S = 0.1


class ShortReadTimeout(httpx.AsyncBaseTransport):
    """Wraps a transport: the first ``count`` requests to each ``(method, path suffix)`` get a short read timeout."""

    def __init__(
        self, held: Mapping[tuple[str, str], int], inner: httpx.AsyncBaseTransport | None = None, *, read_s: float = SHORT_READ_S
    ) -> None:
        self._held = dict(held)
        self._inner = inner or httpx.AsyncHTTPTransport()
        self._read_s = read_s

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        for (method, suffix), left in self._held.items():
            if left and request.method == method and request.url.path.endswith(suffix):
                self._held[(method, suffix)] = left - 1
                timeouts = dict(request.extensions.get("timeout") or {})
                request.extensions["timeout"] = {**timeouts, "read": self._read_s}
                break
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()
