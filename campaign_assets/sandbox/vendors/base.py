"""The building blocks every emulated vendor is made of."""

from __future__ import annotations

import base64
import binascii
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from http import HTTPStatus
from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from campaign_assets.sandbox.config import VendorName
from campaign_assets.sandbox.state import (
    AuthOutcome,
    IdFactory,
    ObjectStore,
    SandboxState,
)

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class ApiError(Exception):
    """A vendor error; the vendor's `ErrorStyle` turns it into that vendor's response.

    `message` and `code` default to the vendor's usual ones for `status`.
    `retry_after_s` is set on rate-limit errors.
    """

    def __init__(
        self,
        status: int,
        message: str | None = None,
        *,
        code: str | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message or str(status))
        self.status = status
        self.message = message
        self.code = code
        self.retry_after_s = retry_after_s


class ErrorStyle(ABC):
    """How one vendor shapes its errors: body, status and headers.

    Subclasses set `default_messages` and implement `body`. Those that send a
    `Retry-After` header on 429 set `sends_retry_after`. Its value is the sandbox's
    scaled wait in fractional seconds (e.g. `0.012`): the vendors send whole seconds,
    but the sandbox's clock runs scaled, and a standard client parser (ours included)
    accepts the fraction. So the client needs no sandbox-only header to wait as long
    as the sandbox asks.
    """

    default_messages: Mapping[int, str] = {}
    sends_retry_after: ClassVar[bool] = False

    def render(self, error: ApiError) -> Response:
        return JSONResponse(
            self.body(error), status_code=self.http_status(error), headers=self.headers(error)
        )

    @abstractmethod
    def body(self, error: ApiError) -> dict[str, Any]:
        """The vendor's JSON error body."""

    def http_status(self, error: ApiError) -> int:
        return error.status

    def headers(self, error: ApiError) -> dict[str, str]:
        if error.retry_after_s is None or not self.sends_retry_after:
            return {}
        return {"retry-after": f"{max(error.retry_after_s, 0.001):.3f}"}

    def message(self, error: ApiError) -> str:
        return error.message or self.default_messages.get(error.status) or HTTPStatus(error.status).phrase

    def auth_failure(self, outcome: AuthOutcome) -> ApiError:
        return ApiError(401)

    def unknown_endpoint(self, method: str, path: str) -> ApiError:
        return ApiError(404, f"No such endpoint: {method} {path}")


def authenticate(request: Request) -> AuthOutcome:
    """Any bearer token is accepted unless it contains ``revoked``; the token itself is never kept."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if request.headers.get("ttd-auth"):  # The Trade Desk's own header carries the token itself
        scheme, token = "bearer", request.headers["ttd-auth"]
    if scheme.lower() != "bearer" or not token.strip():
        return "missing"
    return "revoked" if "revoked" in token else "ok"


@dataclass
class Call:
    """One admitted request, as a vendor handler sees it."""

    request: Request
    body: bytes
    state: SandboxState
    store: ObjectStore
    ids: IdFactory
    scale: float

    @property
    def params(self) -> Mapping[str, str]:
        return self.request.path_params

    @property
    def query(self) -> Mapping[str, str]:
        return self.request.query_params

    @cached_property
    def payload(self) -> dict[str, Any] | None:
        """The body as a JSON object, or `None` when it is not one."""
        try:
            parsed = json.loads(self.body)
        except ValueError:
            return None
        return parsed if isinstance(parsed, dict) else None

    def json(self) -> dict[str, Any]:
        """The body as a JSON object; a 400 when it is not one."""
        if self.payload is None:
            raise ApiError(400, "Invalid JSON payload received.")
        return self.payload


Handler = Callable[[Call], Response]
Latency = float | Callable[[Call], float]


@dataclass(frozen=True)
class Endpoint:
    """One vendor operation: route template (relative to the vendor's base URL), handler, latency.

    `latency_s` is at scale 1.0: a number, or a function of the call for operations
    whose duration depends on the request.
    """

    method: str
    path: str
    handler: Handler
    latency_s: Latency

    @property
    def name(self) -> str:
        """Method and template, e.g. ``"PUT /v4/spreadsheets/{spreadsheetId}/values/{range}"``."""
        return f"{self.method} {self.path.replace(':path}', '}')}"

    @property
    def is_write(self) -> bool:
        return self.method in WRITE_METHODS

    def latency_for(self, call: Call) -> float:
        return self.latency_s(call) if callable(self.latency_s) else self.latency_s


@dataclass(frozen=True)
class Vendor:
    """An emulated vendor, served under `mount` (its base URL's path on the sandbox)."""

    name: VendorName
    mount: str
    errors: ErrorStyle
    endpoints: tuple[Endpoint, ...]
    # How the vendor authenticates a request (default: a bearer token).
    auth: Callable[[Request], AuthOutcome] = authenticate


def json_response(payload: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(payload, status_code=status)


def encode_offset(index: int) -> str:
    """An opaque pagination token for position `index`."""
    return base64.urlsafe_b64encode(f"offset:{index}".encode()).decode().rstrip("=")


def decode_offset(token: str | None, error: ApiError) -> int:
    """The position behind a token from `encode_offset` (0 for none); `error` when it is not one."""
    if not token:
        return 0
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise error from None
    prefix, _, index = text.partition(":")
    if prefix != "offset" or not index.isdigit():
        raise error
    return int(index)


def int_param(query: Mapping[str, str], name: str, default: int, low: int, high: int, error: ApiError) -> int:
    """An integer query parameter within [low, high]; `error` when it is not."""
    raw = query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise error
    return int(raw)
