"""The circuit breaker: a vendor that plainly went down costs the rest of the step nothing.

The rule is on :class:`CircuitBreaker` (what opens it, what does not, half-open probes).
Ours because the retry libraries have none, and ours counts *logical requests* after
their retries and tells a revoked token (401) from an outage.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Literal

import httpx

from campaign_assets.services.http.errors import (
    AmbiguousWriteError,
    CircuitOpenError,
    PermanentVendorError,
    RateLimitedError,
    RetryableVendorError,
    VendorError,
)
from campaign_assets.services.http.profiles import default_refusal
from campaign_assets.services.http.redaction import Redactor

# What a logical request's final outcome tells the breaker about the vendor (see CircuitBreaker).
Signal = Literal["success", "answered", "down", "unauthorized", "refused", "neutral"]
BreakerState = Literal["closed", "open", "half_open"]

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

    def why_open(self, transition: str, signal: Signal) -> str:
        """Why it just opened (``transition`` ``"opened"`` or ``"reopened"``), for the log line."""
        if transition == "reopened":
            return "the probe failed"
        if signal == "unauthorized":
            return "the token was refused"
        if signal == "refused":
            return f"{self.failure_threshold} consecutive requests were refused"
        return f"{self.failure_threshold} consecutive requests failed after their retries"

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


def signal_for(error: VendorError, response: httpx.Response | None) -> Signal:
    """What a request's final failure tells the breaker (the rule is on :class:`CircuitBreaker`)."""
    if isinstance(error, AmbiguousWriteError):
        return "neutral"
    if isinstance(error, RateLimitedError):
        return "answered"
    if isinstance(error, RetryableVendorError):
        return "down"
    if response is None:
        return "neutral"  # a permanent transport error: a bad base URL, not the vendor
    try:
        refusal = default_refusal(response)
    except Exception:
        refusal = None
    return refusal or "answered"


def refusal_error(
    reason: VendorError | None, service: str, method: str, path: str, attempts: int, redactor: Redactor
) -> VendorError:
    """The fail-fast error of an open circuit opened on ``reason``: nothing more is sent for this call.

    After a refusal (401/403) it is the same :class:`PermanentVendorError`, without asking
    again; after an outage a :class:`CircuitOpenError` carrying the last failure.
    """
    not_sent = "not sent" if attempts == 0 else "not retried"
    common: dict[str, Any] = {"method": method, "path": path, "attempts": attempts, "redactor": redactor}
    if isinstance(reason, PermanentVendorError):
        return PermanentVendorError(
            service,
            f"{reason.message} ({not_sent}: circuit open since this refusal)",
            status_code=reason.status_code,
            kind=reason.kind,
            **common,
        )
    last = f"; last failure: {reason}" if reason is not None else ""
    return CircuitOpenError(
        service,
        f"{not_sent}: circuit open, the vendor is down{last}",
        status_code=reason.status_code if reason is not None else None,
        kind="circuit_open",
        **common,
    )
