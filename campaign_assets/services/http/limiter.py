"""The adaptive concurrency limiter (AIMD) that keeps one service under its vendor's limits.

The rule is on :class:`AdaptiveLimiter`: start at the cap (the vendor's published limit,
``settings.caps_profile``), halve on a rate-limit signal (once per epoch), grow by one after
enough consecutive successes, never above the cap or below one. An account on a lower tier
than the cap assumes converges: once the vendor has refused twice at (or below) one number
of requests in flight, the probe up to that number waits ``probe_factor`` times as many
successes, so the sawtooth spends most of its time just under the vendor's real limit and
few calls are answered 429 (TCP's AIMD with a remembered ceiling, RFC 5681's idea).
Ours because no retry library does adaptive concurrency: ``tenacity`` and
``stamina`` retry one call, they do not share a cap between a step's tasks.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import Any


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

    ``ceiling``: the requests in flight the vendor refused twice running (the
    peak in flight of the epoch a signal ended, confirmed by the next signal at
    that peak or below), or None. Growing ``limit`` up to the ceiling takes
    ``probe_factor`` times the usual successes (the step onto it only); a refusal
    above the ceiling, or ``limit`` growing past it, forgets it (the vendor's tier
    went up).
    """

    def __init__(self, cap: int, *, increase_after: int | None = None, probe_factor: int = 4) -> None:
        if cap < 1:
            raise ValueError("cap must be >= 1")
        if probe_factor < 1:
            raise ValueError("probe_factor must be >= 1")
        self.cap = cap
        self.limit = cap
        self.in_flight = 0
        self.max_in_flight_seen = 0
        self.increase_after = increase_after
        self.probe_factor = probe_factor
        self.ceiling: int | None = None
        self.decreases = 0
        self.increases = 0
        self._epoch = 0
        self._epoch_peak = 0  # most requests in flight at once in this epoch
        self._refused_at: int | None = None  # the epoch peak the last signal ended
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
        self._learn_ceiling(self._epoch_peak)
        self._epoch += 1
        self._epoch_peak = self.in_flight
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
        needed = self.increase_after or self.limit
        if self.limit + 1 == self.ceiling:
            needed *= self.probe_factor  # probing the number the vendor refused: slowly
        if self._successes >= needed:
            self._successes = 0
            self.limit += 1
            self.increases += 1
            if self.ceiling is not None and self.limit > self.ceiling:
                self.ceiling = None  # past it without a refusal: the vendor allows more now
            self._wake()

    def _learn_ceiling(self, peak: int) -> None:
        if peak < 1:  # a signal with nothing in flight says nothing about concurrency
            return
        if self.ceiling is not None and peak > self.ceiling:
            self.ceiling = None
        elif self._refused_at is not None and peak <= self._refused_at:
            self.ceiling = peak
        self._refused_at = peak

    async def __aenter__(self) -> LimiterSlot:
        return await self.acquire()

    async def __aexit__(self, *exc_info: Any) -> None:
        self.release()

    def _take(self) -> None:
        self.in_flight += 1
        self.max_in_flight_seen = max(self.max_in_flight_seen, self.in_flight)
        self._epoch_peak = max(self._epoch_peak, self.in_flight)

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


