"""The session: one service's HTTP client for one step, with every rule of the layer applied.

The rule: every call to an outside service goes through :meth:`HttpSession.request`,
which (1) asks the vendor's :class:`~campaign_assets.services.http.breaker.CircuitBreaker`
whether to send at all, (2) waits for a slot of the
:class:`~campaign_assets.services.http.limiter.AdaptiveLimiter` (and the cross-process
``shared_slot``), (3) classifies the outcome with the vendor's
:class:`~campaign_assets.services.http.profiles.VendorProfile`, (4) retries what
:func:`~campaign_assets.services.http.retry.may_retry` allows (the loop is ``tenacity``,
see :mod:`~campaign_assets.services.http.retry`), and (5) raises a redacted
:class:`~campaign_assets.services.http.errors.VendorError` otherwise. No slot is held
while backing off. :meth:`HttpSession.create_once` makes a non-idempotent create
exactly-once by reconciling an :class:`AmbiguousWriteError` against the vendor
(a list-and-match by marker): ours, because no retry library can know whether a lost
write committed. Opening a session changes no global state: no logger is touched
(secrets stay out of httpx's log lines by :mod:`~campaign_assets.services.http.wire`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from contextlib import AbstractAsyncContextManager
from typing import Any, Awaitable, Callable, Mapping, Sequence, TypeVar

import httpx

from campaign_assets.services.http.breaker import (
    BreakerTicket,
    CircuitBreaker,
    Signal,
    refusal_error,
    signal_for,
)
from campaign_assets.services.http.errors import (
    AmbiguousWriteError,
    PermanentVendorError,
    VendorError,
    final_error,
)
from campaign_assets.services.http.events import HttpLog
from campaign_assets.services.http.limiter import AdaptiveLimiter
from campaign_assets.services.http.profiles import (
    NOT_JSON,
    VendorProfile,
    decode_json,
)
from campaign_assets.services.http.redaction import Redactor, header_secrets
from campaign_assets.services.http.retry import (
    IDEMPOTENT_METHODS,
    Outcome,
    RetryPolicy,
    backoff_delay,
    hinted_delay,
    may_retry,
    retrying,
    transport_outcome,
)
from campaign_assets.services.http.stats import ServiceStats
from campaign_assets.services.http.wire import EXTENSION, WireSecrets, mask_params

T = TypeVar("T")


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
        self.redactor = Redactor([*secrets, *header_secrets(headers or {})])
        self.stats = stats if stats is not None else ServiceStats(service=service)
        self.limiter = limiter if limiter is not None else AdaptiveLimiter(cap)
        self._headers = dict(headers or {})
        self._transport = transport
        self._sleep = sleep
        self._rng = rng if isinstance(rng, random.Random) else random.Random(rng)
        self._client: httpx.AsyncClient | None = None
        self._shared_slot = shared_slot or contextlib.nullcontext
        self.breaker = breaker if breaker is not None else CircuitBreaker()
        self.log = HttpLog(service, self.redactor)

    # -- lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> HttpSession:
        if self._client is not None:
            raise RuntimeError(f"{self.service} HttpSession is already open")
        pool = self.limiter.cap + 4  # the limiter is the real cap; the pool never becomes the bottleneck
        limits = httpx.Limits(max_connections=pool, max_keepalive_connections=pool)
        wire = WireSecrets(self._transport or httpx.AsyncHTTPTransport(limits=limits))
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            headers=self._headers,
            timeout=httpx.Timeout(self.policy.timeout_s),
            limits=limits,
            # An injected transport replaces the default one (as before); otherwise every
            # URL goes through the wire transport, while environment proxies still apply.
            transport=wire if self._transport is not None else None,
            mounts=None if self._transport is not None else {"all://": wire},
        )
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

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
        params, hidden = mask_params(params, self.redactor)
        given = {"json": json, "params": params, "content": content, "data": data, "files": files}
        given.update(headers=headers, timeout=timeout, extensions={EXTENSION: hidden} if hidden else None)
        send_kwargs = {key: value for key, value in given.items() if value is not None}

        ticket = self._admit(method, path)
        recorded = False
        sent = 0

        async def attempt() -> Outcome:
            nonlocal sent
            sent += 1
            return await self._attempt(client, method, path, send_kwargs, ticket, sent)

        loop = retrying(
            self.policy,
            retryable=lambda outcome: outcome.verdict != "ok" and may_retry(outcome, idempotent),
            circuit_closed=lambda: self.breaker.allows_retry(ticket),
            delay=self._retry_delay,
            before_sleep=lambda outcome, attempt, delay: self._on_retry(outcome, method, path, attempt, delay),
            refused=lambda attempts: self._short_circuit(method, path, attempts),
            sleep=self._sleep,  # no limiter slot is held while sleeping
        )
        try:
            outcome = await loop(attempt)
            if outcome.verdict == "ok":
                self.stats.successes += 1
                recorded = True
                self._record(ticket, "success", None)
                assert outcome.response is not None
                return outcome.response
            error = self._failure(outcome, method, path, sent, idempotent)
            self.log.gave_up(error)
            recorded = True
            self._record(ticket, signal_for(error, outcome.response), error)
            raise error
        finally:
            if not recorded:  # cancelled or an unexpected error: no verdict, but free a probe slot
                self.breaker.release(ticket)

    async def json(self, method: str, path: str, **kwargs: Any) -> Any:
        """``request(...)`` and decode the JSON body; ``None`` on 204 or an empty body."""
        response = await self.request(method, path, **kwargs)
        if response.status_code == 204 or not response.content.strip():
            return None
        payload = decode_json(response)
        if payload is NOT_JSON:  # raised outside any except block: nothing unredacted is chained
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
                self.log.line(logging.INFO, f"{self.service}: ambiguous write reconciled: the object exists")
                return found
            if attempt < self.policy.max_attempts:
                self.log.line(
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
            self.log.circuit_half_open(self.breaker.cooldown_s, method, path)
        if ticket is None:
            raise self._short_circuit(method, path, 0)
        return ticket

    def _short_circuit(self, method: str, path: str, attempts: int) -> VendorError:
        """Build (and count) the fail-fast error of an open circuit: nothing more is sent for this call."""
        self.stats.short_circuited += 1
        return refusal_error(self.breaker.reason, self.service, method, path, attempts, self.redactor)

    def _record(self, ticket: BreakerTicket, signal: Signal, error: VendorError | None) -> None:
        breaker = self.breaker
        transition = breaker.record(ticket, signal, error)
        if transition is None:
            return
        if transition == "closed":
            self.log.circuit_closed()
            return
        self.stats.circuit_opened += 1
        self.log.circuit_open(breaker.why_open(transition, signal), error, breaker.cooldown_s)

    # -- one attempt -----------------------------------------------------------------

    async def _attempt(
        self,
        client: httpx.AsyncClient,
        method: str,
        path: str,
        send_kwargs: dict[str, Any],
        ticket: BreakerTicket,
        attempt: int,
    ) -> Outcome:
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
            verdict = self.profile.verdict(response)
            if verdict == "rate_limited":
                self.stats.rate_limited += 1
                self.limiter.on_rate_limited(slot.epoch)
            elif verdict == "ok":
                self.limiter.on_success()
            elif verdict == "retryable":
                self.stats.server_errors += 1
            return Outcome(verdict=verdict, response=response)

    def _transport_outcome(self, exc: httpx.RequestError) -> Outcome:
        self.stats.transport_errors += 1
        return transport_outcome(exc, self.redactor)

    # -- decisions -------------------------------------------------------------------

    def _retry_delay(self, outcome: Outcome, attempt: int) -> float:
        hint = self._retry_after(outcome.response) if outcome.response is not None else None
        if hint is None:
            return backoff_delay(self.policy, attempt, self._rng)
        return hinted_delay(self.policy, hint, self._rng)

    def _retry_after(self, response: httpx.Response) -> float | None:
        return self.profile.wait_hint(response)

    def _vendor_message(self, response: httpx.Response) -> str:
        return self.redactor.redact(self.profile.message_of(response))

    def _failure(self, outcome: Outcome, method: str, path: str, attempts: int, idempotent: bool) -> VendorError:
        """Build (but do not raise) the error for a final outcome, and count it."""
        response = outcome.response
        error, bucket = final_error(
            outcome,
            self.service,
            self._vendor_message(response) if response is not None else outcome.error_text,
            method=method,
            path=path,
            attempts=attempts,
            idempotent=idempotent,
            retry_after=self._retry_after(response) if response is not None else None,
            redactor=self.redactor,
        )
        self.stats.record_failure(bucket)
        return error

    def _on_retry(self, outcome: Outcome, method: str, path: str, attempt: int, delay: float) -> None:
        self.stats.retries += 1
        detail = self._vendor_message(outcome.response) if outcome.response is not None else outcome.error_text
        self.log.retry(outcome, method, path, attempt, self.policy.max_attempts, delay, detail)
