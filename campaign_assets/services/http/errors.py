"""The errors every vendor client raises: one hierarchy, all text already redacted.

The rule: :class:`PermanentVendorError` means "do not retry" (4xx other than
408/429, a vendor-level refusal); :class:`RetryableVendorError` means "retries
were spent, a later step may succeed" (5xx, 408, transport errors), with three
special cases: :class:`RateLimitedError` (still rate limited),
:class:`AmbiguousWriteError` (a write whose outcome is unknown: reconcile before
retrying) and :class:`CircuitOpenError` (nothing was sent: the vendor is down).
Errors pickle, so they cross process boundaries.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from campaign_assets.core.errors import ServiceError, ServiceUnavailable
from campaign_assets.services.http.redaction import Redactor

if TYPE_CHECKING:
    from campaign_assets.services.http.retry import Outcome


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
    (``core.items.run_items``) use it exactly as for exhausted retries. ``kind`` is
    ``"circuit_open"``, ``status_code`` the last failure's, ``attempts`` the attempts
    this call itself sent (0 when refused up front); the message carries the last failure.
    """


def final_error(
    outcome: Outcome,
    service: str,
    message: str,
    *,
    method: str,
    path: str,
    attempts: int,
    idempotent: bool,
    retry_after: float | None,
    redactor: Redactor,
) -> tuple[VendorError, str]:
    """The error for a request's final failed outcome, and its failure bucket for the stats.

    ``message`` is the vendor's (redacted) message or the transport error's text. A
    retryable failure of a non-idempotent request that may have been sent is ambiguous.
    """
    common: dict[str, Any] = {
        "status_code": outcome.status_code,
        "method": method,
        "path": path,
        "kind": outcome.kind,
        "attempts": attempts,
        "redactor": redactor,
    }
    if outcome.verdict == "permanent":
        return PermanentVendorError(service, message, **common), "permanent"
    if outcome.verdict == "rate_limited":
        return RateLimitedError(service, message, retry_after=retry_after, **common), "rate_limited"
    if idempotent or outcome.not_sent:
        return RetryableVendorError(service, message, **common), "retryable"
    message = f"outcome unknown, the write may have committed ({message})"
    return AmbiguousWriteError(service, message, **common), "ambiguous"
