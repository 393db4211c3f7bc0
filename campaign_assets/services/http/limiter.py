"""The adaptive concurrency limiter (AIMD) that keeps one service under its vendor's limits.

The rule is on :class:`AdaptiveLimiter`: halve on a rate-limit signal (once per epoch),
grow by one after enough consecutive successes, never above the cap or below one.
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


