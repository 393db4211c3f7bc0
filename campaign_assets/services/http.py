"""The one shared HTTP layer every outside-service client is built on.

Every vendor client (OpenAI-compatible LLM, image generation, Google Docs/Sheets/
Drive, Asana, Canva, Slack, ...) opens one :class:`HttpSession` per service per
step and fans its items out as asyncio tasks over it. The session gives every
client the same behaviour:

* one ``httpx.AsyncClient`` (base URL, auth headers, per-request timeout);
* a per-service concurrency cap that adapts down on rate limiting and back up
  on success (:class:`AdaptiveLimiter`, AIMD);
* retries with exponential backoff and full jitter, honouring ``Retry-After``
  (and the sandbox's fractional ``x-sandbox-retry-after``) where sent;
* classification of every outcome into ok / rate limited / retryable /
  permanent, with vendor differences expressed as a small :class:`VendorProfile`;
* write safety: a non-idempotent request whose outcome is unknown raises
  :class:`AmbiguousWriteError` instead of being blindly retried, and
  :meth:`HttpSession.create_once` reconciles it against the vendor;
* redaction of every configured secret from exception messages, log lines and
  metadata (:class:`Redactor`);
* a circuit breaker (:class:`CircuitBreaker`): once the vendor has plainly gone
  down (or refused the token), further requests fail fast without a network call
  instead of each spending its full retry budget, until a probe after a cool-down
  finds it back;
* per-service counters for asset metadata (:class:`ServiceStats`).

The module holds no mutable module-level state: everything lives on the
session, so steps in separate processes (or hosts) never share anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import json as jsonlib
import logging
import math
import random
import re
import time
from collections import deque
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Awaitable, Callable, Iterable, Literal, Mapping, Sequence, TypeVar
from urllib.parse import quote, quote_plus

import httpx

from campaign_assets.core.errors import ServiceError, ServiceUnavailable

__all__ = [
    "AdaptiveLimiter",
    "AmbiguousWriteError",
    "CircuitBreaker",
    "CircuitOpenError",
    "Classification",
    "HttpSession",
    "LimiterSlot",
    "PermanentVendorError",
    "RateLimitedError",
    "Redactor",
    "RetryPolicy",
    "RetryableVendorError",
    "ServiceStats",
    "VendorError",
    "VendorProfile",
    "backoff_delay",
    "body_flag_classifier",
    "default_classify",
    "default_refusal",
    "default_error_message",
    "default_retry_after",
    "parse_retry_after",
]

T = TypeVar("T")

Classification = Literal["ok", "rate_limited", "retryable", "permanent"]

LOGGER_NAME = "campaign_assets.http"
logger = logging.getLogger(LOGGER_NAME)

REDACTED = "***"
IDEMPOTENT_METHODS: frozenset[str] = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
SANDBOX_RETRY_AFTER_HEADER = "x-sandbox-retry-after"
MAX_MESSAGE_CHARS = 500
MAX_LOGGED_MESSAGE_CHARS = 200

# Transport errors raised before any byte of the request can have reached the
# vendor: always safe to retry, even for a non-idempotent write.
NOT_SENT_ERRORS: tuple[type[httpx.TransportError], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
)
# Transport errors that no retry can fix (misconfigured base URL).
PERMANENT_TRANSPORT_ERRORS: tuple[type[httpx.TransportError], ...] = (httpx.UnsupportedProtocol,)

# Third-party loggers that may print request URLs (httpx logs "HTTP Request: GET <url>" at INFO):
# a session attaches its redacting filter to them while it is open.
THIRD_PARTY_LOGGERS: tuple[str, ...] = ("httpx",)

# Header names whose values are credentials: their values become secrets automatically.
SENSITIVE_HEADERS: frozenset[str] = frozenset(
    {"authorization", "proxy-authorization", "x-api-key", "api-key", "x-goog-api-key", "cookie"}
)
# Keys masked wholesale by Redactor.redact_obj.
_SENSITIVE_KEY = re.compile(
    r"^(authorization|proxy-authorization|x-api-key|api[-_]?key|x-goog-api-key|access[-_]?token|"
    r"refresh[-_]?token|id[-_]?token|token|client[-_]?secret|password|secret|cookie|set-cookie)$",
    re.IGNORECASE,
)
# Credential shapes redacted even when nobody configured them as secrets
# (e.g. an OAuth access token minted at run time, or a vendor echoing a key).
_TOKEN_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)\b(bearer\s+)[^\s\"'<>,;]+"), r"\g<1>" + REDACTED),
    (re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?(?:(?:bearer|basic|token|bot|oauth|digest)\s+)?)[^\s\"'<>,;]+"), r"\g<1>" + REDACTED),
    (re.compile(r"\b(Basic\s+)(?=[A-Za-z0-9+/]*[0-9+/])[A-Za-z0-9+/]{12,}={0,2}"), r"\g<1>" + REDACTED),
    (
        re.compile(
            r"(?i)([?&;](?:key|api[_-]?key|access[_-]?token|token|client[_-]?secret|password|signature|sig)=)"
            r"[^&\s#\"'<>]+"
        ),
        r"\g<1>" + REDACTED,
    ),
    (re.compile(r"\bxox[abposre]-[A-Za-z0-9-]{6,}"), REDACTED),  # Slack tokens
    (re.compile(r"\bxapp-[A-Za-z0-9-]{6,}"), REDACTED),  # Slack app tokens
    (re.compile(r"\bsk-[A-Za-z0-9_-]{16,}"), REDACTED),  # OpenAI-style keys
    (re.compile(r"\bAIza[0-9A-Za-z_-]{30,}"), REDACTED),  # Google API keys
    (re.compile(r"\bya29\.[0-9A-Za-z._-]+"), REDACTED),  # Google OAuth access tokens
)


# --------------------------------------------------------------------------------------
# Redaction
# --------------------------------------------------------------------------------------


class Redactor:
    """Replaces every configured secret, and anything that looks like a credential, with ``***``.

    Besides the literal secrets it also catches their URL-encoded and JSON-escaped
    spellings (a token in a query string), anything after ``Bearer ``, credential
    query parameters (``?key=...``) and well-known token shapes.
    """

    def __init__(self, secrets: Iterable[str | None] = (), *, mask: str = REDACTED) -> None:
        self.mask = mask
        self._variants: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | None) -> None:
        """Register one more secret (e.g. an access token obtained at run time)."""
        if not secret or not secret.strip():
            return
        variants = {
            secret,
            secret.strip(),
            quote(secret, safe=""),
            quote(secret, safe="/:"),
            quote_plus(secret),
            jsonlib.dumps(secret)[1:-1],
        }
        self._variants.update(v for v in variants if v)
        ordered = sorted(self._variants, key=len, reverse=True)  # longest first: no partial leftovers
        self._pattern = re.compile("|".join(re.escape(v) for v in ordered))

    def redact(self, text: Any) -> str:
        """Return ``str(text)`` with every secret replaced by the mask."""
        result = text if isinstance(text, str) else str(text)
        if self._pattern is not None:
            result = self._pattern.sub(self.mask, result)
        for pattern, replacement in _TOKEN_PATTERNS:
            result = pattern.sub(replacement.replace(REDACTED, self.mask), result)
        return result

    def redact_obj(self, obj: Any) -> Any:
        """Return a redacted deep copy of a nested dict/list/tuple structure.

        Strings are redacted; values under credential-like keys
        (``authorization``, ``api_key``, ``token``, ...) are masked wholesale;
        numbers, booleans and ``None`` are returned unchanged.
        """
        if isinstance(obj, str):
            return self.redact(obj)
        if isinstance(obj, Mapping):
            out: dict[Any, Any] = {}
            for key, value in obj.items():
                new_key = self.redact(key) if isinstance(key, str) else key
                if isinstance(key, str) and _SENSITIVE_KEY.match(key) and value not in (None, ""):
                    out[new_key] = self.mask
                else:
                    out[new_key] = self.redact_obj(value)
            return out
        if isinstance(obj, list):
            return [self.redact_obj(v) for v in obj]
        if isinstance(obj, tuple):
            return tuple(self.redact_obj(v) for v in obj)
        if isinstance(obj, (set, frozenset)):
            return type(obj)(self.redact_obj(v) for v in obj)
        if isinstance(obj, (bytes, bytearray)):
            return self.redact(bytes(obj).decode("utf-8", "replace")).encode("utf-8")
        return obj

    def logging_filter(self) -> logging.Filter:
        """A ``logging.Filter`` that redacts each record's message, args, exception and stack text."""
        return _RedactingFilter(self)


class _RedactingFilter(logging.Filter):
    """Rewrites a record in place so that no handler downstream can print a secret."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self._redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed format string must not kill logging
            message = f"{record.msg!s} {record.args!r}"
        record.msg = self._redactor.redact(message)
        record.args = None
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = self._redactor.redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = self._redactor.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self._redactor.redact(record.stack_info)
        return True


def _header_secrets(headers: Mapping[str, str]) -> list[str]:
    """Credential values found in headers (with any ``Bearer``/``Basic`` scheme stripped)."""
    secrets: list[str] = []
    for name, value in headers.items():
        if name.lower() in SENSITIVE_HEADERS and value:
            secrets.append(value)
            scheme, _, credential = value.partition(" ")
            if credential and scheme.lower() in {"bearer", "basic", "token"}:
                secrets.append(credential.strip())
    return secrets


# --------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------


class VendorError(ServiceError):
    """A call to an outside service failed. All text on it is already redacted.

    Attributes: ``service``, ``status_code`` (``None`` for transport errors),
    ``message`` (the vendor's own message, redacted), ``retryable``, ``method``,
    ``path``, ``kind`` (``"http_401"``, ``"ReadTimeout"``, ...), ``attempts``.
    """

    retryable: bool = False

    def __init__(
        self,
        service: str,
        message: str,
        *,
        status_code: int | None = None,
        method: str | None = None,
        path: str | None = None,
        kind: str | None = None,
        attempts: int = 1,
        redactor: Redactor | None = None,
    ) -> None:
        clean = redactor.redact if redactor is not None else str
        self.service = service
        self.message = clean(message)
        self.status_code = status_code
        self.method = method
        self.path = clean(path) if path is not None else None
        self.kind = kind or (f"http_{status_code}" if status_code is not None else "error")
        self.attempts = attempts
        super().__init__(self._describe())

    def _describe(self) -> str:
        where = " ".join(p for p in (self.method, self.path) if p)
        head = f"{self.service} {where}".strip()
        detail = f"HTTP {self.status_code}" if self.status_code is not None else self.kind
        tries = f" after {self.attempts} attempts" if self.attempts > 1 else ""
        return f"{head}: {detail}{tries}: {self.message}"

    def __reduce__(self) -> tuple[Any, ...]:
        # Custom __init__ keyword arguments: rebuild from state so errors cross process boundaries.
        return (_restore_error, (type(self), dict(self.__dict__), str(self)))


def _restore_error(cls: type[VendorError], state: dict[str, Any], text: str) -> VendorError:
    error = cls.__new__(cls)
    Exception.__init__(error, text)
    error.__dict__.update(state)
    return error


class PermanentVendorError(VendorError):
    """4xx other than 408/429, or a vendor-level permanent error: fail fast, no retry."""

    retryable = False


class RetryableVendorError(VendorError, ServiceUnavailable):
    """5xx, 408 or a transport error, after retries were exhausted."""

    retryable = True


class RateLimitedError(RetryableVendorError):
    """The vendor kept rate limiting after retries were exhausted; ``retry_after`` is its last hint."""

    def __init__(self, *args: Any, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(*args, **kwargs)


class AmbiguousWriteError(RetryableVendorError):
    """A non-idempotent request whose outcome is unknown: the write may have committed.

    Raised for a transport error after the request may have been sent (timeout,
    reset, remote protocol error) or a 5xx/408 on a non-idempotent call. The caller
    must reconcile (see :meth:`HttpSession.create_once`) before trying again.
    """


class CircuitOpenError(RetryableVendorError):
    """The vendor's circuit is open (it plainly went down in this step): the request was not sent.

    Raised without a network call, or instead of the next retry of a call already
    under way. A :class:`RetryableVendorError`, so callers with a local fallback
    (``items.run_items``) use it exactly as for exhausted retries. ``kind`` is
    ``"circuit_open"``, ``status_code`` the last failure's, ``attempts`` the attempts
    this call itself sent (0 when refused up front); the message carries the last failure.
    """


# --------------------------------------------------------------------------------------
# Vendor profiles: error message, classification, retry-after
# --------------------------------------------------------------------------------------


def _json_or_none(response: httpx.Response) -> Any:
    try:
        if not response.content:
            return None
        return response.json()
    except (ValueError, UnicodeDecodeError, httpx.ResponseNotRead):
        return None


_NOT_JSON = object()


def _decode_json(response: httpx.Response) -> Any:
    """The decoded body, or the ``_NOT_JSON`` sentinel (JSON ``null`` is a valid ``None``)."""
    try:
        return response.json()
    except (ValueError, UnicodeDecodeError):
        return _NOT_JSON


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _truncate(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _join(prefix: str, message: str) -> str:
    if prefix and message and prefix != message:
        return f"{prefix}: {message}"
    return message or prefix


def _message_from_payload(payload: Any) -> str:
    """Understands the error shapes of OpenAI, Google, Asana, Canva, Slack and common fallbacks."""
    if not isinstance(payload, Mapping):
        return ""
    error = payload.get("error")
    if isinstance(error, Mapping):  # OpenAI {"error":{"message","code"}} / Google {"error":{"message","status"}}
        label = _text(error.get("status")) or _text(error.get("code")) or _text(error.get("type"))
        return _join(label, _text(error.get("message")))
    if isinstance(error, str) and error:  # Slack {"ok":false,"error"} / OAuth {"error","error_description"}
        extra = _text(payload.get("error_description"))
        metadata = payload.get("response_metadata")
        if not extra and isinstance(metadata, Mapping) and isinstance(metadata.get("messages"), list):
            extra = "; ".join(_text(m) for m in metadata["messages"] if _text(m))
        return _join(error, extra)
    errors = payload.get("errors")
    if isinstance(errors, list) and errors:  # Asana {"errors":[{"message"}]}
        parts = [_text(e.get("message")) if isinstance(e, Mapping) else _text(e) for e in errors]
        joined = "; ".join(p for p in parts if p)
        if joined:
            return joined
    message = _text(payload.get("message"))
    if message:  # Canva {"code","message"} / generic {"message"}
        return _join(_text(payload.get("code")), message)
    return _join(_text(payload.get("title")), _text(payload.get("detail")))  # RFC 7807 / FastAPI


def default_error_message(response: httpx.Response) -> str:
    """The vendor's human message from an error response (not yet redacted), truncated."""
    message = _message_from_payload(_json_or_none(response))
    if not message:
        try:
            message = response.text.strip()
        except Exception:
            message = ""
    if not message:
        message = response.reason_phrase or f"HTTP {response.status_code}"
    return _truncate(message)


def default_classify(response: httpx.Response) -> Classification:
    """Classification by status code: 429 rate limited; 408 and 5xx retryable; other 4xx permanent."""
    status = response.status_code
    if status == 429:
        return "rate_limited"
    if status == 408 or status >= 500:
        return "retryable"
    if status >= 400:
        return "permanent"
    return "ok"


def body_flag_classifier(
    *,
    ok_field: str = "ok",
    error_field: str = "error",
    rate_limited: Iterable[str] = ("ratelimited", "rate_limited"),
    retryable: Iterable[str] = ("internal_error", "fatal_error", "service_unavailable", "request_timeout"),
    base: Callable[[httpx.Response], Classification] = default_classify,
) -> Callable[[httpx.Response], Classification]:
    """A classifier for APIs that report failures inside HTTP 200 bodies (Slack: ``{"ok": false, "error": ...}``).

    The status code is classified by ``base`` first; an HTTP-ok response whose body
    has ``ok_field`` set to ``false`` is then rate limited / retryable / permanent
    according to its ``error_field`` code.
    """
    limited, transient = frozenset(rate_limited), frozenset(retryable)

    def classify(response: httpx.Response) -> Classification:
        verdict = base(response)
        if verdict != "ok":
            return verdict
        payload = _json_or_none(response)
        if not isinstance(payload, Mapping) or payload.get(ok_field) is not False:
            return "ok"
        code = payload.get(error_field)
        if code in limited:
            return "rate_limited"
        if code in transient:
            return "retryable"
        return "permanent"

    return classify


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return max(0.0, seconds) if math.isfinite(seconds) else None


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Parse a ``Retry-After`` value: delta-seconds (fractions accepted) or an HTTP-date. ``None`` if absent/invalid."""
    if value is None or not value.strip():
        return None
    seconds = _seconds(value)
    if seconds is not None:
        return seconds
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    current = now or datetime.now(timezone.utc)
    return max(0.0, (when - current).total_seconds())


def default_retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait before retrying: the sandbox's fractional header, else ``Retry-After``, else ``None``."""
    sandbox = _seconds(response.headers.get(SANDBOX_RETRY_AFTER_HEADER))
    if sandbox is not None:
        return sandbox
    return parse_retry_after(response.headers.get("retry-after"))


@dataclass(frozen=True)
class VendorProfile:
    """How one vendor signals errors. Defaults understand the common JSON error shapes and status codes."""

    service: str
    error_message: Callable[[httpx.Response], str] = default_error_message
    classify: Callable[[httpx.Response], Classification] | None = None  # None: default_classify
    retry_after: Callable[[httpx.Response], float | None] = default_retry_after


# --------------------------------------------------------------------------------------
# Retry policy
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """Attempts, exponential backoff with full jitter, and the per-request timeout."""

    max_attempts: int = 6
    backoff_base_s: float = 0.5  # attempt n waits uniform(0, min(max, base * 2**(n-1)))
    backoff_max_s: float = 30.0
    timeout_s: float = 120.0  # per-request httpx timeout
    retry_after_max_s: float = 300.0  # a vendor's Retry-After is honoured up to this

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if min(self.backoff_base_s, self.backoff_max_s, self.retry_after_max_s) < 0:
            raise ValueError("backoff and retry-after bounds must be >= 0")
        if self.timeout_s <= 0:
            raise ValueError("timeout_s must be > 0")


def backoff_delay(policy: RetryPolicy, attempt: int, rng: random.Random) -> float:
    """Full-jitter exponential backoff for the retry after failed attempt ``attempt`` (1-based)."""
    exponent = min(max(attempt - 1, 0), 60)  # no float overflow for silly attempt counts
    ceiling = min(policy.backoff_max_s, policy.backoff_base_s * (2**exponent))
    return rng.uniform(0.0, ceiling)


# --------------------------------------------------------------------------------------
# Adaptive concurrency limiter
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LimiterSlot:
    """What ``async with limiter as slot`` yields: the limit epoch the request started in."""

    epoch: int


class AdaptiveLimiter:
    """Async concurrency cap for one service (AIMD).

    At most ``limit`` requests are in flight, ``1 <= limit <= cap``. A rate-limit
    signal halves ``limit`` (once per epoch: the burst of 429s from requests that
    all started under the old limit counts as one signal); ``increase_after``
    consecutive successes (default: the current limit) grow it by one, back up to
    ``cap``. Waiters are served first-come first-served. Bound to one event loop.
    """

    def __init__(self, cap: int, *, increase_after: int | None = None) -> None:
        if cap < 1:
            raise ValueError("cap must be >= 1")
        self.cap = cap
        self.limit = cap
        self.in_flight = 0
        self.max_in_flight_seen = 0
        self.increase_after = increase_after
        self.decreases = 0
        self.increases = 0
        self._epoch = 0
        self._successes = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    def __repr__(self) -> str:
        return (
            f"AdaptiveLimiter(cap={self.cap}, limit={self.limit}, in_flight={self.in_flight}, "
            f"waiting={len(self._waiters)})"
        )

    @property
    def epoch(self) -> int:
        return self._epoch

    async def acquire(self) -> LimiterSlot:
        """Wait for a free slot."""
        if not self._waiters and self.in_flight < self.limit:
            self._take()
            return LimiterSlot(self._epoch)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # granted, then cancelled before resuming: hand the slot on
            else:
                self._discard(waiter)
            raise
        return LimiterSlot(self._epoch)

    def release(self) -> None:
        """Give a slot back and wake waiters that now fit."""
        self.in_flight = max(0, self.in_flight - 1)
        self._wake()

    def on_rate_limited(self, epoch: int | None = None) -> None:
        """Multiplicative decrease. ``epoch``: the slot's epoch; signals from an older epoch are ignored."""
        self._successes = 0
        if epoch is not None and epoch != self._epoch:
            return
        self._epoch += 1
        new_limit = max(1, self.limit // 2)
        if new_limit < self.limit:
            self.decreases += 1
        self.limit = new_limit

    def on_success(self) -> None:
        """Additive increase after enough consecutive successes."""
        if self.limit >= self.cap:
            self._successes = 0
            return
        self._successes += 1
        if self._successes >= (self.increase_after or self.limit):
            self._successes = 0
            self.limit += 1
            self.increases += 1
            self._wake()

    async def __aenter__(self) -> LimiterSlot:
        return await self.acquire()

    async def __aexit__(self, *exc_info: Any) -> None:
        self.release()

    def _take(self) -> None:
        self.in_flight += 1
        self.max_in_flight_seen = max(self.max_in_flight_seen, self.in_flight)

    def _wake(self) -> None:
        while self._waiters and self.in_flight < self.limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._take()
                waiter.set_result(None)

    def _discard(self, waiter: asyncio.Future[None]) -> None:
        try:
            self._waiters.remove(waiter)
        except ValueError:
            pass


# --------------------------------------------------------------------------------------
# Circuit breaker
# --------------------------------------------------------------------------------------

# What a logical request's final outcome tells the breaker about the vendor (see CircuitBreaker).
Signal = Literal["success", "answered", "down", "unauthorized", "refused", "neutral"]
BreakerState = Literal["closed", "open", "half_open"]

# Body-level error codes meaning "this token is no good" (Slack's {"ok": false, "error": ...} on HTTP 200).
AUTH_ERROR_CODES: frozenset[str] = frozenset(
    {"invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive"}
)


def default_refusal(response: httpx.Response) -> Literal["unauthorized", "refused"] | None:
    """For a response already classified *permanent*: is it a refusal of the caller rather than of the request?

    ``"unauthorized"``: HTTP 401, or an HTTP-ok body whose error code is an auth failure
    (Slack's ``invalid_auth``, ``token_revoked``, ...): the token itself is refused, so every
    further call would be refused the same way. ``"refused"``: HTTP 403, or a *permanent* 429
    (OpenAI's ``insufficient_quota``): the account is refused, but a 403 may also concern one
    resource only (Drive's ``insufficientFilePermissions``). ``None``: an ordinary refusal of
    this one request (400, 404, 409, 422, ...).
    """
    status = response.status_code
    if status == 401:
        return "unauthorized"
    if status in (403, 429):
        return "refused"
    if status < 400:
        payload = _json_or_none(response)
        if isinstance(payload, Mapping) and payload.get("error") in AUTH_ERROR_CODES:
            return "unauthorized"
    return None


@dataclass(frozen=True)
class BreakerTicket:
    """What :meth:`CircuitBreaker.admit` hands a logical request: the breaker generation it
    started in, and whether it is the half-open probe."""

    generation: int
    probe: bool = False


class CircuitBreaker:
    """Stops a session (or several sessions of one vendor) from hammering a vendor that plainly went down.

    The rule, counted per *logical request* (its final outcome, after its own retries):

    * **closed** (the normal state, no cost): every request is sent.
      It **opens** when

      - ``failure_threshold`` (default 3) consecutive requests ended *down*: their retry
        budget was spent on 5xx/408 answers or transport errors (timeouts, resets,
        refused connections), i.e. they raised a plain :class:`RetryableVendorError`; or
      - one request was refused with **401** (or a body-level auth error such as Slack's
        ``invalid_auth``): a revoked or wrong token refuses every further call the same way; or
      - ``failure_threshold`` consecutive requests were refused with **403** (or a permanent
        429, OpenAI's ``insufficient_quota``): one 403 may concern one resource only
        (Drive's ``insufficientFilePermissions``), a run of them is the account.

      These do **not** open it, and reset the *down* streak (the vendor answered): a success; a
      permanent refusal of the request itself (400, 404, 409, 422, ...); a request that ended
      rate limited (429 with or without ``Retry-After``, Drive's rate-limit 403): rate limits
      are the :class:`AdaptiveLimiter`'s business, the vendor is up. These count for nothing
      either way: an :class:`AmbiguousWriteError` (a lost response or a 5xx on a write that
      was never retried; :meth:`HttpSession.create_once` reconciles it with reads, which do
      count), a permanent transport error (bad base URL), a cancelled request.
    * **open**: every new request, and every retry of a request already under way, fails at
      once without a network call: :class:`CircuitOpenError` (a retryable error, so items
      go to their local fallback) after an outage; a copy of the 401/403
      :class:`PermanentVendorError` (same status, kind and vendor message) after a refusal.
      Outcomes of requests that started before it opened are ignored.
    * after ``cooldown_s`` (default 30 s, read from ``clock``) the next request makes it
      **half-open** and is sent as the single **probe**; other requests keep failing fast
      meanwhile. The probe's outcome decides: the vendor answered (success, an ordinary
      refusal, a rate limit) closes it; down or refused again re-opens it for another
      cool-down; no verdict (ambiguous, cancelled) leaves it half-open for the next request
      to probe.

    Holds no I/O and no lock: bound to one event loop, like the sessions sharing it. Share
    one instance between the sessions of one vendor in one step (chat and images both call
    OpenAI) by passing it to each :class:`HttpSession`; by default each session has its own.
    Transitions are returned to the caller (the session logs and counts them).
    """

    def __init__(
        self,
        *,
        failure_threshold: int = 3,
        cooldown_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be >= 1")
        if cooldown_s < 0:
            raise ValueError("cooldown_s must be >= 0")
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self._clock = clock
        self.state: BreakerState = "closed"
        self.generation = 0  # +1 each time it opens: outcomes of older requests are stale
        self.opened = 0  # times it opened (re-openings after a failed probe included)
        self.opened_at: float | None = None
        self.reason: VendorError | None = None  # the failure it opened on (redacted)
        self.down_streak = 0
        self.refused_streak = 0
        self._probe_out = False

    def __repr__(self) -> str:
        return f"CircuitBreaker(state={self.state}, opened={self.opened}, down_streak={self.down_streak})"

    @property
    def permanent(self) -> bool:
        """Open on a refusal (401/403): refused calls re-raise a :class:`PermanentVendorError` copy."""
        return isinstance(self.reason, PermanentVendorError)

    def retry_in(self) -> float:
        """Seconds until an open circuit lets a probe through (0 when not open)."""
        if self.state != "open" or self.opened_at is None:
            return 0.0
        return max(0.0, self.opened_at + self.cooldown_s - self._clock())

    # -- the session's side ----------------------------------------------------------

    def admit(self) -> tuple[BreakerTicket | None, bool]:
        """A new logical request asks to be sent: ``(ticket, became_half_open)``; ticket ``None`` = refused.

        Called before the request waits for a concurrency slot; :meth:`allows_retry` is asked
        again once it holds one, and before each retry."""
        if self.state == "closed":
            return BreakerTicket(self.generation), False
        became_half_open = False
        if self.state == "open" and self.retry_in() <= 0:
            self.state, became_half_open = "half_open", True
        if self.state == "half_open" and not self._probe_out:
            self._probe_out = True
            return BreakerTicket(self.generation, probe=True), became_half_open
        return None, became_half_open

    def allows_retry(self, ticket: BreakerTicket) -> bool:
        """May an admitted request send its next attempt? Only while the circuit is closed (or as the probe)."""
        return ticket.probe or self.state == "closed"

    def record(self, ticket: BreakerTicket, signal: Signal, error: VendorError | None = None) -> str | None:
        """A logical request ended: update the state. Returns the transition, if any:
        ``"opened"``, ``"reopened"`` or ``"closed"``."""
        if ticket.probe:
            self._probe_out = False
            if self.state != "half_open" or ticket.generation != self.generation:
                return None
            if signal in ("success", "answered") or (signal == "refused" and not self.permanent):
                self._close(refused_streak=1 if signal == "refused" else 0)
                return "closed"
            if signal in ("down", "unauthorized", "refused"):
                self._open(error)
                return "reopened"
            return None  # no verdict: the next request probes
        if self.state != "closed" or ticket.generation != self.generation:
            return None  # started before the circuit opened: stale
        if signal in ("success", "answered"):
            self.down_streak = self.refused_streak = 0
        elif signal == "down":
            self.down_streak += 1
            self.refused_streak = 0
            if self.down_streak >= self.failure_threshold:
                self._open(error)
                return "opened"
        elif signal == "unauthorized":
            self._open(error)
            return "opened"
        elif signal == "refused":
            self.refused_streak += 1
            self.down_streak = 0
            if self.refused_streak >= self.failure_threshold:
                self._open(error)
                return "opened"
        return None

    def release(self, ticket: BreakerTicket) -> None:
        """A request ended with no outcome to record (cancelled, unexpected error): free the probe slot."""
        if ticket.probe:
            self._probe_out = False

    def _open(self, error: VendorError | None) -> None:
        self.state = "open"
        self.generation += 1
        self.opened += 1
        self.opened_at = self._clock()
        self.reason = error
        self.down_streak = self.refused_streak = 0
        self._probe_out = False

    def _close(self, *, refused_streak: int = 0) -> None:
        self.state = "closed"
        self.opened_at = None
        self.reason = None
        self.down_streak, self.refused_streak = 0, refused_streak


# --------------------------------------------------------------------------------------
# Stats
# --------------------------------------------------------------------------------------

FAILURE_KINDS: tuple[str, ...] = ("permanent", "retryable", "rate_limited", "ambiguous")


@dataclass
class ServiceStats:
    """Per-service counters for one step. Plain numbers only: picklable and JSON-able.

    ``calls`` counts HTTP requests sent (every attempt); ``retries`` the re-attempts;
    ``rate_limited`` the rate-limit responses; ``failures`` the logical requests that
    raised, split by kind in ``errors``; ``seconds`` sums attempt durations; the wall
    span runs from the first request start to the last request end. ``circuit_opened``
    counts the times this session's outcomes opened (or re-opened) the vendor's circuit;
    ``short_circuited`` the logical requests an open circuit failed fast (refused before
    sending, or before their next retry); those are not in ``failures``.
    """

    service: str = ""
    calls: int = 0
    successes: int = 0
    retries: int = 0
    rate_limited: int = 0
    server_errors: int = 0
    transport_errors: int = 0
    failures: int = 0
    reconciled: int = 0
    circuit_opened: int = 0
    short_circuited: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    first_start: float | None = None  # time.monotonic()
    last_end: float | None = None
    max_in_flight: int = 0

    @property
    def wall_seconds(self) -> float:
        if self.first_start is None or self.last_end is None:
            return 0.0
        return max(0.0, self.last_end - self.first_start)

    def record_attempt(self, started: float, ended: float) -> None:
        self.seconds += ended - started
        self.first_start = started if self.first_start is None else min(self.first_start, started)
        self.last_end = ended if self.last_end is None else max(self.last_end, ended)

    def record_failure(self, kind: str) -> None:
        self.failures += 1
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def as_metadata(self) -> dict[str, int | float]:
        """Flat numeric metadata, e.g. for ``MaterializeResult(metadata=...)`` (prefix keys per service there)."""
        metadata: dict[str, int | float] = {
            "calls": self.calls,
            "successes": self.successes,
            "retries": self.retries,
            "rate_limited": self.rate_limited,
            "server_errors": self.server_errors,
            "transport_errors": self.transport_errors,
            "failures": self.failures,
            "reconciled": self.reconciled,
            "circuit_opened": self.circuit_opened,
            "short_circuited": self.short_circuited,
            "seconds": round(self.seconds, 3),
            "wall_seconds": round(self.wall_seconds, 3),
            "max_in_flight": self.max_in_flight,
        }
        for kind in FAILURE_KINDS:
            metadata[f"failures_{kind}"] = self.errors.get(kind, 0)
        return metadata


# --------------------------------------------------------------------------------------
# The session
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Outcome:
    """What one attempt produced. Holds no exception object (no traceback, no unredacted text)."""

    verdict: Literal["ok", "rate_limited", "retryable", "permanent", "transport"]
    response: httpx.Response | None = None
    error_kind: str | None = None  # httpx exception class name
    error_text: str = ""  # redacted
    not_sent: bool = False  # the request certainly never reached the vendor

    @property
    def status_code(self) -> int | None:
        return self.response.status_code if self.response is not None else None

    @property
    def kind(self) -> str:
        return self.error_kind or f"http_{self.status_code}"


class HttpSession:
    """One service's async HTTP session for one step: a single ``httpx.AsyncClient`` shared by many tasks.

    Use as ``async with HttpSession(...) as http: await http.json("GET", "/path")``.
    """

    def __init__(
        self,
        *,
        service: str,
        base_url: str,
        headers: Mapping[str, str] | None = None,
        secrets: Sequence[str | None] = (),
        cap: int,
        policy: RetryPolicy = RetryPolicy(),
        profile: VendorProfile | None = None,
        stats: ServiceStats | None = None,
        limiter: AdaptiveLimiter | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        rng: random.Random | int | None = None,
        shared_slot: Callable[[], AbstractAsyncContextManager[Any]] | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        """``shared_slot``: a slot of the service's cap shared with every other
        process (``SlotBoard.hold``), held around each attempt inside the
        local limiter; None keeps the cap per session.

        ``breaker``: the vendor's :class:`CircuitBreaker`; pass one instance to every
        session of the same vendor in a step to share it; None gives this session its
        own with the defaults (3 consecutive down requests, 30 s cool-down)."""
        self.service = service
        self.base_url = base_url
        self.policy = policy
        self.profile = profile or VendorProfile(service=service)
        self.redactor = Redactor([*secrets, *_header_secrets(headers or {})])
        self.stats = stats if stats is not None else ServiceStats(service=service)
        self.limiter = limiter if limiter is not None else AdaptiveLimiter(cap)
        self._headers = dict(headers or {})
        self._transport = transport
        self._sleep = sleep
        self._rng = rng if isinstance(rng, random.Random) else random.Random(rng)
        self._client: httpx.AsyncClient | None = None
        self._log_filter = self.redactor.logging_filter()
        self._shared_slot = shared_slot or contextlib.nullcontext
        self.breaker = breaker if breaker is not None else CircuitBreaker()

    # -- lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> HttpSession:
        if self._client is not None:
            raise RuntimeError(f"{self.service} HttpSession is already open")
        pool = self.limiter.cap + 4  # the limiter is the real cap; the pool never becomes the bottleneck
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            headers=self._headers,
            timeout=httpx.Timeout(self.policy.timeout_s),
            limits=httpx.Limits(max_connections=pool, max_keepalive_connections=pool),
            transport=self._transport,
        )
        for name in THIRD_PARTY_LOGGERS:
            logging.getLogger(name).addFilter(self._log_filter)
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        client, self._client = self._client, None
        try:
            if client is not None:
                await client.aclose()
        finally:
            for name in THIRD_PARTY_LOGGERS:
                logging.getLogger(name).removeFilter(self._log_filter)

    @property
    def client(self) -> httpx.AsyncClient:
        """The open ``httpx.AsyncClient`` (raises if the session is not entered)."""
        if self._client is None:
            raise RuntimeError(f"{self.service} HttpSession used outside 'async with'")
        return self._client

    # -- public API ------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Any = None,
        content: bytes | None = None,
        data: Mapping[str, Any] | None = None,
        files: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        """Send one logical request with classification, retries and the concurrency cap.

        ``idempotent`` defaults to ``method in {GET, HEAD, PUT, DELETE, OPTIONS}``; pass
        ``True`` for a POST the vendor deduplicates (idempotency key). Bodies must be
        re-sendable (bytes, not streams). Returns the successful response or raises a
        :class:`VendorError` subclass.
        """
        client = self.client
        method = method.upper()
        if idempotent is None:
            idempotent = method in IDEMPOTENT_METHODS
        send_kwargs: dict[str, Any] = {
            key: value
            for key, value in {
                "json": json,
                "params": params,
                "content": content,
                "data": data,
                "files": files,
                "headers": headers,
            }.items()
            if value is not None
        }
        if timeout is not None:
            send_kwargs["timeout"] = timeout

        ticket = self._admit(method, path)
        recorded = False
        try:
            max_attempts = self.policy.max_attempts
            for attempt in range(1, max_attempts + 1):
                outcome = await self._attempt(client, method, path, send_kwargs, ticket, attempt)
                if outcome.verdict == "ok":
                    self.stats.successes += 1
                    recorded = True
                    self._record(ticket, "success", None)
                    assert outcome.response is not None
                    return outcome.response
                if attempt >= max_attempts or not self._may_retry(outcome, idempotent):
                    error = self._failure(outcome, method, path, attempt, idempotent)
                    self._log_failure(error)
                    recorded = True
                    self._record(ticket, self._signal(outcome, error), error)
                    raise error
                if not self.breaker.allows_retry(ticket):  # the circuit opened meanwhile: no backoff, no retry
                    raise self._short_circuit(method, path, attempt)
                delay = self._retry_delay(outcome, attempt)
                self._log_retry(outcome, method, path, attempt, delay)
                self.stats.retries += 1
                await self._sleep(delay)  # no limiter slot is held here
            raise AssertionError("unreachable")  # pragma: no cover
        finally:
            if not recorded:  # cancelled or an unexpected error: no verdict, but free a probe slot
                self.breaker.release(ticket)

    async def json(self, method: str, path: str, **kwargs: Any) -> Any:
        """``request(...)`` and decode the JSON body; ``None`` on 204 or an empty body."""
        response = await self.request(method, path, **kwargs)
        if response.status_code == 204 or not response.content.strip():
            return None
        payload = _decode_json(response)
        if payload is _NOT_JSON:  # raised outside any except block: nothing unredacted is chained
            raise PermanentVendorError(
                self.service,
                f"expected a JSON body, got {response.headers.get('content-type') or 'no content type'}",
                status_code=response.status_code,
                method=method.upper(),
                path=path,
                kind="invalid_json",
                redactor=self.redactor,
            )
        return payload

    async def create_once(
        self,
        create: Callable[[], Awaitable[T]],
        find: Callable[[], Awaitable[T | None]],
    ) -> T:
        """Exactly-once create for a non-idempotent write.

        Calls ``create()``. On :class:`AmbiguousWriteError` (the write may have
        committed) it backs off, then calls ``find()`` (list the vendor's objects and
        match the deterministic marker ``create`` wrote): if found, that object is
        returned (counted as ``reconciled``); otherwise ``create()`` is tried again,
        up to ``policy.max_attempts`` creates. Other errors propagate unchanged.
        """
        last_error: AmbiguousWriteError | None = None
        for attempt in range(1, self.policy.max_attempts + 1):
            try:
                return await create()
            except AmbiguousWriteError as error:
                last_error = error
            # Back off before looking, so a commit that was still landing is visible.
            delay = backoff_delay(self.policy, attempt, self._rng)
            await self._sleep(delay)
            found = await find()
            if found is not None:
                self.stats.reconciled += 1
                self._log(logging.INFO, f"{self.service}: ambiguous write reconciled: the object exists")
                return found
            if attempt < self.policy.max_attempts:
                self._log(
                    logging.WARNING,
                    f"{self.service}: ambiguous write not found on the vendor; creating again "
                    f"(attempt {attempt}/{self.policy.max_attempts})",
                )
        assert last_error is not None
        raise last_error

    # -- circuit breaker -------------------------------------------------------------

    def _admit(self, method: str, path: str) -> BreakerTicket:
        """A ticket to send this logical request, or raise the open circuit's error (nothing is sent)."""
        ticket, became_half_open = self.breaker.admit()
        if became_half_open:  # the request admitted is the probe
            self._log(
                logging.INFO,
                f"{self.service}: circuit half-open after {self.breaker.cooldown_s:g}s: "
                f"probing the vendor with {method} {path}",
                http_service=self.service,
                http_circuit="half_open",
            )
        if ticket is None:
            raise self._short_circuit(method, path, 0)
        return ticket

    def _short_circuit(self, method: str, path: str, attempts: int) -> VendorError:
        """Build (and count) the fail-fast error of an open circuit: nothing more is sent for this call."""
        self.stats.short_circuited += 1
        reason = self.breaker.reason
        not_sent = "not sent" if attempts == 0 else "not retried"
        common: dict[str, Any] = {"method": method, "path": path, "attempts": attempts, "redactor": self.redactor}
        if isinstance(reason, PermanentVendorError):
            # The token (or account) was refused: the same refusal, without asking again.
            return PermanentVendorError(
                self.service,
                f"{reason.message} ({not_sent}: circuit open since this refusal)",
                status_code=reason.status_code,
                kind=reason.kind,
                **common,
            )
        last = f"; last failure: {reason}" if reason is not None else ""
        return CircuitOpenError(
            self.service,
            f"{not_sent}: circuit open, the vendor is down{last}",
            status_code=reason.status_code if reason is not None else None,
            kind="circuit_open",
            **common,
        )

    def _signal(self, outcome: _Outcome, error: VendorError) -> Signal:
        """What a request's final failure tells the breaker (the rule is on :class:`CircuitBreaker`)."""
        if isinstance(error, AmbiguousWriteError):
            return "neutral"
        if isinstance(error, RateLimitedError):
            return "answered"
        if isinstance(error, RetryableVendorError):
            return "down"
        if outcome.response is None:
            return "neutral"  # a permanent transport error: a bad base URL, not the vendor
        try:
            refusal = default_refusal(outcome.response)
        except Exception:
            refusal = None
        return refusal or "answered"

    def _record(self, ticket: BreakerTicket, signal: Signal, error: VendorError | None) -> None:
        breaker = self.breaker
        transition = breaker.record(ticket, signal, error)
        if transition is None:
            return
        if transition == "closed":
            self._log(
                logging.INFO,
                f"{self.service}: circuit closed: the probe succeeded, the vendor is back",
                http_service=self.service,
                http_circuit="closed",
            )
            return
        self.stats.circuit_opened += 1
        why = (
            "the probe failed"
            if transition == "reopened"
            else "the token was refused"
            if signal == "unauthorized"
            else f"{breaker.failure_threshold} consecutive requests were refused"
            if signal == "refused"
            else f"{breaker.failure_threshold} consecutive requests failed after their retries"
        )
        self._log(
            logging.WARNING,
            f"{self.service}: circuit open: {why} ({error}); further requests fail fast "
            f"for {breaker.cooldown_s:g}s, then one probe",
            http_service=self.service,
            http_circuit="open",
            http_reason=error.kind if error is not None else None,
        )

    # -- one attempt -----------------------------------------------------------------

    async def _attempt(
        self,
        client: httpx.AsyncClient,
        method: str,
        path: str,
        send_kwargs: dict[str, Any],
        ticket: BreakerTicket,
        attempt: int,
    ) -> _Outcome:
        async with self.limiter as slot, self._shared_slot():
            if not self.breaker.allows_retry(ticket):  # opened while this call waited for a slot
                raise self._short_circuit(method, path, attempt - 1)
            self.stats.max_in_flight = max(self.stats.max_in_flight, self.limiter.in_flight)
            self.stats.calls += 1
            started = time.monotonic()
            response: httpx.Response | None = None
            failure: httpx.RequestError | None = None
            try:
                response = await client.request(method, path, **send_kwargs)
            except httpx.RequestError as exc:
                failure = exc
            finally:
                self.stats.record_attempt(started, time.monotonic())
            if response is None:
                assert failure is not None
                return self._transport_outcome(failure)
            verdict = self._classify(response)
            if verdict == "rate_limited":
                self.stats.rate_limited += 1
                self.limiter.on_rate_limited(slot.epoch)
            elif verdict == "ok":
                self.limiter.on_success()
            elif verdict == "retryable":
                self.stats.server_errors += 1
            return _Outcome(verdict=verdict, response=response)

    def _transport_outcome(self, exc: httpx.RequestError) -> _Outcome:
        self.stats.transport_errors += 1
        kind = type(exc).__name__
        text = self.redactor.redact(str(exc) or kind)
        if isinstance(exc, PERMANENT_TRANSPORT_ERRORS):
            return _Outcome(verdict="permanent", error_kind=kind, error_text=text, not_sent=True)
        return _Outcome(
            verdict="transport", error_kind=kind, error_text=text, not_sent=isinstance(exc, NOT_SENT_ERRORS)
        )

    def _classify(self, response: httpx.Response) -> Classification:
        classify = self.profile.classify or default_classify
        try:
            verdict = classify(response)
        except Exception:  # a buggy profile must not turn into an unclassified crash
            verdict = default_classify(response)
        return verdict if verdict in ("ok", "rate_limited", "retryable", "permanent") else default_classify(response)

    # -- decisions -------------------------------------------------------------------

    @staticmethod
    def _may_retry(outcome: _Outcome, idempotent: bool) -> bool:
        if outcome.verdict == "rate_limited":
            return True  # the vendor did not process it: safe even for writes
        if outcome.verdict == "retryable":
            return idempotent
        if outcome.verdict == "transport":
            return idempotent or outcome.not_sent
        return False

    def _retry_delay(self, outcome: _Outcome, attempt: int) -> float:
        hint = self._retry_after(outcome.response) if outcome.response is not None else None
        if hint is None:
            return backoff_delay(self.policy, attempt, self._rng)
        hint = min(hint, self.policy.retry_after_max_s)
        # A little positive jitter so a burst of identical Retry-After hints does not return as one burst.
        return hint + self._rng.uniform(0.0, min(0.1 * hint, 1.0))

    def _retry_after(self, response: httpx.Response) -> float | None:
        try:
            return self.profile.retry_after(response)
        except Exception:
            return default_retry_after(response)

    def _vendor_message(self, response: httpx.Response) -> str:
        try:
            message = self.profile.error_message(response)
        except Exception:
            message = default_error_message(response)
        return self.redactor.redact(_truncate(str(message or f"HTTP {response.status_code}")))

    def _failure(self, outcome: _Outcome, method: str, path: str, attempts: int, idempotent: bool) -> VendorError:
        """Build (but do not raise) the error for a final outcome, and count it."""
        response = outcome.response
        message = self._vendor_message(response) if response is not None else outcome.error_text
        common: dict[str, Any] = {
            "status_code": outcome.status_code,
            "method": method,
            "path": path,
            "kind": outcome.kind,
            "attempts": attempts,
            "redactor": self.redactor,
        }
        error: VendorError
        if outcome.verdict == "permanent":
            error, bucket = PermanentVendorError(self.service, message, **common), "permanent"
        elif outcome.verdict == "rate_limited":
            hint = self._retry_after(response) if response is not None else None
            error, bucket = RateLimitedError(self.service, message, retry_after=hint, **common), "rate_limited"
        elif idempotent or outcome.not_sent:
            error, bucket = RetryableVendorError(self.service, message, **common), "retryable"
        else:
            message = f"outcome unknown, the write may have committed ({message})"
            error, bucket = AmbiguousWriteError(self.service, message, **common), "ambiguous"
        self.stats.record_failure(bucket)
        return error

    # -- logging ---------------------------------------------------------------------

    def _log(self, level: int, message: str, **extra: Any) -> None:
        logger.log(level, "%s", self.redactor.redact(message), extra=self.redactor.redact_obj(extra))

    def _log_retry(self, outcome: _Outcome, method: str, path: str, attempt: int, delay: float) -> None:
        if outcome.response is not None:
            reason = f"HTTP {outcome.status_code} ({outcome.verdict.replace('_', ' ')})"
            detail = _truncate(self._vendor_message(outcome.response), MAX_LOGGED_MESSAGE_CHARS)
        else:
            reason, detail = outcome.kind, _truncate(outcome.error_text, MAX_LOGGED_MESSAGE_CHARS)
        self._log(
            logging.WARNING,
            f"{self.service} {method} {path}: {reason}; attempt {attempt}/{self.policy.max_attempts} failed, "
            f"retrying in {delay:.3f}s: {detail}",
            http_service=self.service,
            http_method=method,
            http_path=path,
            http_reason=outcome.kind,
            http_attempt=attempt,
            http_delay_s=round(delay, 3),
        )

    def _log_failure(self, error: VendorError) -> None:
        # A permanent answer (e.g. a 404 the caller expects) is INFO; exhausted retries and ambiguous writes WARN.
        self._log(
            logging.WARNING if error.retryable else logging.INFO,
            f"giving up: {error}",
            http_service=self.service,
            http_method=error.method,
            http_path=error.path,
            http_reason=error.kind,
            http_attempt=error.attempts,
        )
