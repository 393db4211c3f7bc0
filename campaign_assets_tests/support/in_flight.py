"""How many calls (or steps, or runs) were in flight at once."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any


def peak_in_flight(intervals: Iterable[tuple[float, float]]) -> int:
    """Most intervals open at once; one ending as another starts does not overlap it."""
    edges = sorted(edge for start, end in intervals for edge in ((start, 1), (end, -1)))
    now = peak = 0
    for _, delta in edges:
        now += delta
        peak = max(peak, now)
    return peak


def vendor_of(call: dict[str, Any]) -> str:
    """Our service name for a sandbox call-log entry."""
    vendor, endpoint = call["vendor"], call["endpoint"]
    if vendor in ("openai", "openrouter"):
        return "images" if "images" in endpoint or "image" in endpoint.lower() else "llm"
    return {
        "google-docs": "docs", "google-sheets": "sheets", "google-drive": "drive",
        "amazon-dsp": "amazon_dsp", "trade-desk": "trade_desk",
        "sendgrid": "email", "buffer": "social", "github": "pages",
    }.get(vendor, vendor)


def max_concurrency(calls: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Most calls in flight at once per service, from the sandbox's call log."""
    spans: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for call in calls:
        spans[vendor_of(call)].append((call["start"], call["end"]))
    return {service: peak_in_flight(intervals) for service, intervals in spans.items()}
