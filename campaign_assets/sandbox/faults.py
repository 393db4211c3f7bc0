"""Fault injection: random faults from the config, forced faults from a queue, dropped connections."""

from __future__ import annotations

import asyncio
import random
import socket
import struct
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from campaign_assets.sandbox.config import FaultKind, SandboxConfig, VendorName
from campaign_assets.sandbox.vendors.base import Endpoint

# ASGI scope extension under which the sandbox server puts the connection's asyncio transport.
TRANSPORT_EXTENSION = "campaign_assets.sandbox.transport"


class ForcedFault(BaseModel):
    """The body of ``POST /_sandbox/faults``: fail the next `times` matching requests with `kind`.

    `endpoint` is the method and route template relative to the vendor's base URL, as in
    the call log (e.g. ``"POST /tasks"``); `None` matches every endpoint of the vendor.
    `status` picks the 5xx status of a ``"500"`` fault (default 500).
    """

    model_config = ConfigDict(extra="forbid")

    vendor: VendorName
    endpoint: str | None = None
    kind: FaultKind
    times: int = Field(default=1, ge=1)
    status: Literal[500, 502, 503] | None = None


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    status: int | None = None  # the 5xx status, for kind "500"


@dataclass
class _Queued:
    fault: ForcedFault
    remaining: int

    def matches(self, vendor: str, endpoint: Endpoint) -> bool:
        return (
            self.fault.vendor == vendor
            and self.fault.endpoint in (None, endpoint.name)
            and (self.fault.kind != "lost_response" or endpoint.is_write)
        )


class FaultInjector:
    """Decides each request's fault: the first matching queued fault, else a seeded random draw.

    `lost_response` only ever hits writes (POST/PUT/PATCH/DELETE): on a read it means nothing.
    """

    def __init__(self, config: SandboxConfig, queue: list[_Queued] | None = None) -> None:
        self._config = config
        self._rng = random.Random(config.seed)
        self._queue = queue if queue is not None else []

    def with_config(self, config: SandboxConfig) -> FaultInjector:
        """A fresh injector for `config` that keeps the queued faults."""
        return FaultInjector(config, self._queue)

    def enqueue(self, fault: ForcedFault) -> None:
        self._queue.append(_Queued(fault, fault.times))

    def queued(self) -> list[dict[str, Any]]:
        return [{**q.fault.model_dump(), "times": q.remaining} for q in self._queue]

    def draw(self, vendor: VendorName, endpoint: Endpoint) -> Fault | None:
        return self._forced(vendor, endpoint) or self._random(vendor, endpoint)

    def _forced(self, vendor: str, endpoint: Endpoint) -> Fault | None:
        queued = next((q for q in self._queue if q.matches(vendor, endpoint)), None)
        if queued is None:
            return None
        queued.remaining -= 1
        if not queued.remaining:
            self._queue.remove(queued)
        status = (queued.fault.status or 500) if queued.fault.kind == "500" else None
        return Fault(queued.fault.kind, status)

    def _random(self, vendor: VendorName, endpoint: Endpoint) -> Fault | None:
        spec = self._config.faults_for(vendor)
        if not spec.rate or self._rng.random() >= spec.rate:
            return None
        kinds = [k for k in spec.kinds if k != "lost_response" or endpoint.is_write]
        if not kinds:
            return None
        kind = self._rng.choice(kinds)
        return Fault(kind, self._rng.choice((500, 503)) if kind == "500" else None)


class DroppedConnection(Response):
    """A "response" that ends the connection instead of answering.

    Without `committed` (fault ``reset``) the socket is closed with a TCP reset and not a
    byte is sent. With it (fault ``lost_response``) the committed response's status line,
    headers and half its body are sent, then the connection closes: the client sees the
    response cut short. An empty committed body is dropped like a reset.
    """

    def __init__(self, committed: Response | None = None) -> None:
        super().__init__()
        self.committed = committed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        transport: asyncio.Transport | None = scope.get("extensions", {}).get(TRANSPORT_EXTENSION)
        if transport is None:
            raise RuntimeError("reset/lost_response faults need the sandbox server (SandboxServer)")
        body = self.committed.body if self.committed is not None else b""
        if self.committed is None or not body:
            _reset(transport)
        else:
            await send(
                {
                    "type": "http.response.start",
                    "status": self.committed.status_code,
                    "headers": self.committed.raw_headers,
                }
            )
            await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
            transport.close()
        while (await receive())["type"] != "http.disconnect":
            continue


def _reset(transport: asyncio.Transport) -> None:
    """Close with RST (SO_LINGER 0) so the peer sees "connection reset", not a clean EOF."""
    transport.get_extra_info("socket").setsockopt(
        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
    )
    transport.abort()
