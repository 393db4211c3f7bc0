"""Vendor rate limits and concurrency caps, enforced the way the vendors do: refuse, don't queue."""

from __future__ import annotations

import itertools
import time
from collections import deque
from dataclasses import dataclass
from types import TracebackType

from campaign_assets.sandbox.config import LimitRule, SandboxConfig

# The shortest wait ever advertised, so an overdue request never yields "retry in 0 s".
MIN_RETRY_AFTER_S = 0.001


class _RuleTracker:
    """Live accounting for one rule: requests in flight and admissions in the rolling window."""

    def __init__(self, rule: LimitRule, scale: float) -> None:
        self.rule = rule
        self._window_s = rule.window_s * scale
        self._in_flight: dict[int, float] = {}  # ticket -> expected end (monotonic)
        self._admitted: deque[float] = deque()

    def wait_s(self, now: float) -> float | None:
        """Seconds until this rule has room again, or `None` if it has room now."""
        waits: list[float] = []
        if self.rule.max_concurrency is not None and len(self._in_flight) >= self.rule.max_concurrency:
            waits.append(min(self._in_flight.values()) - now)
        if self.rule.max_requests is not None:
            while self._admitted and self._admitted[0] <= now - self._window_s:
                self._admitted.popleft()
            if len(self._admitted) >= self.rule.max_requests:
                waits.append(self._admitted[0] + self._window_s - now)
        return max(*waits, MIN_RETRY_AFTER_S) if waits else None

    def admit(self, ticket: int, now: float, expected_end: float) -> None:
        self._in_flight[ticket] = expected_end
        self._admitted.append(now)

    def release(self, ticket: int) -> None:
        self._in_flight.pop(ticket, None)


@dataclass(frozen=True)
class RateLimited:
    """A refusal: the caller should answer the vendor's 429 with this wait."""

    retry_after_s: float


class Slot:
    """An admitted request's hold on its rules' concurrency; release by leaving the `with` block."""

    def __init__(self, trackers: list[_RuleTracker], ticket: int) -> None:
        self._trackers = trackers
        self._ticket = ticket

    def __enter__(self) -> Slot:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for tracker in self._trackers:
            tracker.release(self._ticket)


class Limiter:
    """Admits or refuses each request against its vendor's rules; with limits disabled, admits all."""

    def __init__(self, config: SandboxConfig) -> None:
        self._trackers: dict[str, list[_RuleTracker]] = (
            {
                vendor: [_RuleTracker(rule, config.scale) for rule in rules]
                for vendor, rules in config.limits.items()
            }
            if config.limits_enabled
            else {}
        )
        self._tickets = itertools.count()

    def admit(self, vendor: str, method: str, endpoint: str, expected_s: float) -> Slot | RateLimited:
        """Admit a request expected to take `expected_s` seconds, or say how long to wait."""
        now = time.monotonic()
        trackers = [t for t in self._trackers.get(vendor, []) if t.rule.applies_to(method, endpoint)]
        waits = [w for w in (t.wait_s(now) for t in trackers) if w is not None]
        if waits:
            return RateLimited(retry_after_s=max(waits))
        ticket = next(self._tickets)
        for tracker in trackers:
            tracker.admit(ticket, now, now + expected_s)
        return Slot(trackers, ticket)
