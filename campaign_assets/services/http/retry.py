"""Retries: how many attempts, how long to wait between them, and which failures may be retried.

The rule: a logical request gets up to ``RetryPolicy.max_attempts`` attempts. A rate
limit is always retried (the vendor did not process it); a 5xx/408 or a transport
error only when the request is idempotent, or certainly never reached the vendor
(connection refused): a non-idempotent write whose outcome is unknown is never
blindly retried (:class:`~campaign_assets.services.http.errors.AmbiguousWriteError`).
The wait honours the vendor's ``Retry-After`` (capped at ``retry_after_max_s``, plus up
to 10 % / 1 s positive jitter so a burst of equal hints does not return as a burst);
without one it is exponential backoff with full jitter.

The retry loop itself is ``tenacity`` (:func:`retrying`): stop, retry predicate,
wait and sleep hooks. What stays ours, because no library does it: the
ambiguous-write rule (:func:`may_retry`), the vendor's ``Retry-After`` as the wait,
and the jitter drawn from the session's own seeded ``random.Random``
(``tenacity.wait_random_exponential`` draws from the global ``random`` module, so
two sessions with one seed would not back off identically). ``tenacity`` rather than
``stamina`` (a wrapper around tenacity): stamina's backoff adds bounded jitter to the
exponential wait instead of full jitter, its waits can only be switched off globally
(``set_testing``) rather than through the session's injected ``sleep``, and it retries on
exceptions, while our attempts return an outcome to classify.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Literal

import httpx
import tenacity

from campaign_assets.services.http.redaction import Redactor

IDEMPOTENT_METHODS: frozenset[str] = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
# Transport errors raised before any byte of the request can have reached the
# vendor: always safe to retry, even for a non-idempotent write.
NOT_SENT_ERRORS: tuple[type[httpx.TransportError], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
)
# Transport errors that no retry can fix (misconfigured base URL).
PERMANENT_TRANSPORT_ERRORS: tuple[type[httpx.TransportError], ...] = (httpx.UnsupportedProtocol,)


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


def hinted_delay(policy: RetryPolicy, hint: float, rng: random.Random) -> float:
    """The wait for a vendor's ``Retry-After`` hint: capped, plus a little positive jitter."""
    hint = min(hint, policy.retry_after_max_s)
    # A little positive jitter so a burst of identical Retry-After hints does not return as one burst.
    return hint + rng.uniform(0.0, min(0.1 * hint, 1.0))


@dataclass(frozen=True)
class Outcome:
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


def transport_outcome(exc: httpx.RequestError, redactor: Redactor) -> Outcome:
    """The outcome of an attempt that raised: permanent (bad URL), or a transport failure that
    certainly was not sent (connection refused) or may have reached the vendor (timeout, reset)."""
    kind = type(exc).__name__
    text = redactor.redact(str(exc) or kind)
    if isinstance(exc, PERMANENT_TRANSPORT_ERRORS):
        return Outcome(verdict="permanent", error_kind=kind, error_text=text, not_sent=True)
    return Outcome(verdict="transport", error_kind=kind, error_text=text, not_sent=isinstance(exc, NOT_SENT_ERRORS))


def may_retry(outcome: Outcome, idempotent: bool) -> bool:
    """The ambiguous-write rule: may this failed attempt be sent again?"""
    if outcome.verdict == "rate_limited":
        return True  # the vendor did not process it: safe even for writes
    if outcome.verdict == "retryable":
        return idempotent
    if outcome.verdict == "transport":
        return idempotent or outcome.not_sent
    return False


def retrying(
    policy: RetryPolicy,
    *,
    retryable: Callable[[Outcome], bool],
    circuit_closed: Callable[[], bool],
    delay: Callable[[Outcome, int], float],
    before_sleep: Callable[[Outcome, int, float], None],
    refused: Callable[[int], BaseException],
    sleep: Callable[[float], Awaitable[Any]],
) -> tenacity.AsyncRetrying:
    """The retry loop of one logical request, over attempts that return an :class:`Outcome`.

    After a failed attempt, in this order: not ``retryable`` -> the outcome is returned
    (the caller raises its error); the budget of ``policy.max_attempts`` is spent -> the
    outcome is returned too; the circuit opened meanwhile (``circuit_closed()`` is false)
    -> ``refused(attempts_sent)`` is raised at once, without backoff; otherwise
    ``before_sleep(outcome, attempt, delay)`` and ``sleep(delay)`` with
    ``delay(outcome, attempt)``, then the next attempt. Exceptions raised by an attempt
    propagate unchanged.
    """
    stopping = tenacity.stop_any(tenacity.stop_after_attempt(policy.max_attempts), lambda _: not circuit_closed())

    def wait(state: tenacity.RetryCallState) -> float:
        # tenacity asks for the wait before it asks whether to stop: draw jitter only for a
        # retry that will happen, so a seeded session backs off with the same sequence.
        return 0.0 if stopping(state) else delay(_outcome(state), state.attempt_number)

    def give_up(state: tenacity.RetryCallState) -> Outcome:
        if state.attempt_number < policy.max_attempts:  # stopped by the circuit, not by the budget
            raise refused(state.attempt_number)
        return _outcome(state)

    return tenacity.AsyncRetrying(
        retry=tenacity.retry_if_result(retryable),
        stop=stopping,
        wait=wait,
        before_sleep=lambda state: before_sleep(_outcome(state), state.attempt_number, state.upcoming_sleep),
        retry_error_callback=give_up,
        sleep=sleep,
    )


def _outcome(state: tenacity.RetryCallState) -> Outcome:
    assert state.outcome is not None
    result: Outcome = state.outcome.result()
    return result
