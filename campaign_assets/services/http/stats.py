"""Per-service counters for one step, shared by the HTTP and the local backends.

The rule: plain numbers only (picklable, JSON-able), one :class:`ServiceStats` per
service per step; the HTTP session and ``LocalClient`` fill the same fields, so asset
metadata reads the same whichever backend ran.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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


