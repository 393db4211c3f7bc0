"""Secrets in query strings travel on the wire only, never in a URL that httpx logs.

The rule: a query parameter whose value holds a secret (a configured one, or a
credential shape the :class:`~campaign_assets.services.http.redaction.Redactor` knows)
is given to httpx with its value masked, and :class:`WireSecrets`, the transport under
the client, puts the real value back into the request it sends. httpx's own request
log line (``HTTP Request: GET ...?key=%2A%2A%2A``) therefore never holds the secret,
and no logger outside ours is touched. Credentials in headers need nothing: httpx never
logs headers. A secret written into the path string itself is not rewritten: pass it
as ``params``.

Environment proxies keep working for ordinary requests (the client still builds its
proxy transports). A masked request that the client routes past this transport (an
environment proxy, a ``NO_PROXY`` host) reaches the vendor masked and is refused: it is
never sent or logged with its secret by another route.
"""

from __future__ import annotations

from typing import Any

import httpx

from campaign_assets.services.http.redaction import Redactor

EXTENSION = "campaign_assets.wire_params"


def mask_params(params: Any, redactor: Redactor) -> tuple[Any, list[tuple[str, str, str]]]:
    """``params`` with secret values masked, and the ``(name, masked, real)`` triples to restore."""
    if params is None:
        return None, []
    masked: list[tuple[str, str]] = []
    hidden: list[tuple[str, str, str]] = []
    for name, value in httpx.QueryParams(params).multi_items():
        clean = redactor.redact(value)
        masked.append((name, clean))
        if clean != value:
            hidden.append((name, clean, value))
    return (masked if hidden else params), hidden


class WireSecrets(httpx.AsyncBaseTransport):
    """Wraps the real transport: restores masked query values in the request actually sent."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        hidden: list[tuple[str, str, str]] = request.extensions.get(EXTENSION) or []
        if not hidden:
            return await self._inner.handle_async_request(request)
        pending = list(hidden)
        items: list[tuple[str, str]] = []
        for name, value in request.url.params.multi_items():
            match = next((h for h in pending if h[0] == name and h[1] == value), None)
            if match is not None:
                pending.remove(match)
                value = match[2]
            items.append((name, value))
        wire = httpx.Request(
            request.method,
            request.url.copy_with(params=items),
            headers=request.headers,
            stream=request.stream,
            extensions={k: v for k, v in request.extensions.items() if k != EXTENSION},
        )
        return await self._inner.handle_async_request(wire)

    async def aclose(self) -> None:
        await self._inner.aclose()
