"""Vendor profiles: how each vendor says what went wrong, and how long to wait.

The rule: every response is classified ``ok`` / ``rate_limited`` / ``retryable`` /
``permanent`` (by status code by default: 429 rate limited, 408 and 5xx
retryable, other 4xx permanent; :func:`body_flag_classifier` for vendors such as
Slack that report failures inside HTTP 200 bodies). The vendor's message is read
from the JSON error shapes of OpenAI, Google, Asana, Canva and Slack. The wait a
vendor asks for is its standard ``Retry-After`` (delta-seconds, fractions
accepted, or an HTTP-date). Vendor differences are data in a :class:`VendorProfile`,
never branches in the session.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Callable, Iterable, Literal, Mapping

import httpx

Classification = Literal["ok", "rate_limited", "retryable", "permanent"]

MAX_MESSAGE_CHARS = 500



def json_or_none(response: httpx.Response) -> Any:
    try:
        if not response.content:
            return None
        return response.json()
    except (ValueError, UnicodeDecodeError, httpx.ResponseNotRead):
        return None


NOT_JSON = object()


def decode_json(response: httpx.Response) -> Any:
    """The decoded body, or the ``NOT_JSON`` sentinel (JSON ``null`` is a valid ``None``)."""
    try:
        return response.json()
    except (ValueError, UnicodeDecodeError):
        return NOT_JSON


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def truncate(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """One line of at most ``limit`` characters."""
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
    message = _message_from_payload(json_or_none(response))
    if not message:
        try:
            message = response.text.strip()
        except Exception:
            message = ""
    if not message:
        message = response.reason_phrase or f"HTTP {response.status_code}"
    return truncate(message)


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
        payload = json_or_none(response)
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
    """Seconds the vendor asks us to wait before retrying (its ``Retry-After``), else ``None``."""
    return parse_retry_after(response.headers.get("retry-after"))


@dataclass(frozen=True)
class VendorProfile:
    """How one vendor signals errors. Defaults understand the common JSON error shapes and status codes."""

    service: str
    error_message: Callable[[httpx.Response], str] = default_error_message
    classify: Callable[[httpx.Response], Classification] | None = None  # None: default_classify
    retry_after: Callable[[httpx.Response], float | None] = default_retry_after

    # A buggy profile function must not turn into an unclassified crash: each falls back to the default.

    def verdict(self, response: httpx.Response) -> Classification:
        """The profile's classification of ``response`` (the default's if it fails or answers nonsense)."""
        classify = self.classify or default_classify
        try:
            verdict = classify(response)
        except Exception:
            verdict = default_classify(response)
        return verdict if verdict in ("ok", "rate_limited", "retryable", "permanent") else default_classify(response)

    def wait_hint(self, response: httpx.Response) -> float | None:
        """Seconds the vendor asked us to wait, if any."""
        try:
            return self.retry_after(response)
        except Exception:
            return default_retry_after(response)

    def message_of(self, response: httpx.Response) -> str:
        """The vendor's message, truncated (not yet redacted)."""
        try:
            message = self.error_message(response)
        except Exception:
            message = default_error_message(response)
        return truncate(str(message or f"HTTP {response.status_code}"))


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
        payload = json_or_none(response)
        if isinstance(payload, Mapping) and payload.get("error") in AUTH_ERROR_CODES:
            return "unauthorized"
    return None


