"""Item progress as it lands: one line per item outcome, with running counts.

``run_items`` reports every outcome to a progress sink: the one it is given,
else the one an asset installed for its step (``watching``, a context
variable: it follows ``asyncio.run`` into the item tasks), else the
``campaign_assets.items`` logger. No Dagster import here: an asset passes a
plain callable (``context.log.info``) and this module formats the line.

The line has a stable machine-readable head, parsed by ``parse_line`` (the
terminal follower in ``campaign_assets.progress`` and ``campaign-assets
status`` read these lines back from the run's event log)::

    items: creatives 3/6 | creative:728x90 created | created 3 | 1 retrying: canva HTTP 429

Retries are counted from the HTTP layer's own lines (``campaign_assets.http``
logger, which reaches the event log through Dagster's managed loggers): the
next outcome line says how many retries happened since the previous line and
the last reason, so a retry costs one line (the HTTP layer's), not two.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from campaign_assets.spec import CampaignSpec

PREFIX = "items: "
LOGGER_NAME = "campaign_assets.items"
HTTP_LOGGER = "campaign_assets.http"
ORDER = ("created", "reused", "updated", "fallback", "failed")
LINE = re.compile(r"^items: (?P<asset>[A-Za-z0-9_.-]+) (?P<done>\d+)/(?P<total>\d+)(?: \| (?P<rest>.*))?$")


def expected_items(spec: CampaignSpec) -> dict[str, int]:
    """The ledger items each asset of the drafting graph brings about, from the
    spec alone (DESIGN.md §2's item fan-out). ``summary_report``: its
    document and the Slack notification announcing it (when no document
    could be written there is no notification; a total never falls below
    what is done, and ``status`` counts a materialized asset as complete)."""
    pieces = len(spec.content_matrix())
    competitors = len(spec.research.competitors) if spec.research else 0
    return {
        **({"market_research": competitors} if competitors else {}),
        "campaign_brief": 1,
        "media_plan": 1,
        "project_tasks": 1 + len(spec.launch_tasks()),
        "creatives": len(spec.creative_sizes),
        "content_pieces": pieces,
        "content_library": pieces,
        "dsp_activation": 2 * len(spec.dsp_channels),  # an order and a line item per DSP channel
        "summary_report": 2,
    }


@dataclass(frozen=True)
class ProgressLine:
    asset: str
    done: int
    total: int
    rest: str = ""


def parse_line(message: str | None) -> ProgressLine | None:
    """The item progress a log message carries, or None for any other message."""
    if not message or not message.startswith(PREFIX):
        return None
    match = LINE.match(message.strip())
    if match is None:
        return None
    return ProgressLine(match["asset"], int(match["done"]), int(match["total"]), match["rest"] or "")


def format_line(asset: str, done: int, total: int, item: str, action: str, counts: Counter,
                retries: int = 0, last_retry: str = "", error: str | None = None) -> str:
    outcome = f"{item} {action}" + (f" ({error[:160]})" if error and action in ("failed", "fallback") else "")
    tally = ", ".join(f"{k} {counts[k]}" for k in ORDER if counts.get(k))
    parts = [f"{PREFIX}{asset} {done}/{max(total, done)}", outcome, tally]
    if retries:
        parts.append(f"{retries} retrying: {last_retry}" if last_retry else f"{retries} retrying")
    return " | ".join(p for p in parts if p)


class _RetryCounter(logging.Handler):
    """Counts the HTTP layer's retry lines (those carrying ``http_delay_s``)."""

    def __init__(self, tracker: ItemProgress) -> None:
        super().__init__(logging.DEBUG)
        self._tracker = tracker

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "http_delay_s", None) is None:
            return
        service = getattr(record, "http_service", "") or ""
        reason = getattr(record, "http_reason", "") or ""
        message = record.getMessage()
        status = re.search(r"HTTP (\d{3})", message)
        self._tracker.note_retry(f"{service} {('HTTP ' + status[1]) if status else reason}".strip())


@dataclass
class ItemProgress:
    """The running counts of one asset's items; ``emit`` gets each line
    (``context.log.info`` in an asset, a logger's ``info`` elsewhere)."""

    asset: str
    total: int
    emit: Callable[[str], None]
    counts: Counter = field(default_factory=Counter)
    retries: int = 0
    last_retry: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def done(self) -> int:
        return sum(self.counts.values())

    def note_retry(self, reason: str) -> None:
        with self._lock:
            self.retries += 1
            self.last_retry = reason

    def __call__(self, service: str, key: str, action: str, error: str | None = None, batch: int = 1) -> None:
        with self._lock:
            self.counts[action] += 1
            line = format_line(self.asset, self.done, self.total, key, action, self.counts,
                               self.retries, self.last_retry, error)
            self.retries, self.last_retry = 0, ""
        try:
            self.emit(line)
        except Exception:  # progress never sinks an item
            pass


_CURRENT: contextvars.ContextVar[ItemProgress | None] = contextvars.ContextVar("item_progress", default=None)


def current() -> ItemProgress | None:
    return _CURRENT.get()


@contextlib.contextmanager
def watching(asset: str, total: int, emit: Callable[[str], None]) -> Iterator[ItemProgress]:
    """Install an ``ItemProgress`` for this step: every ``run_items`` inside
    (in this thread, and in the asyncio tasks it starts) reports to it, and
    the HTTP layer's retries are counted into its next line."""
    tracker = ItemProgress(asset, total, emit)
    token = _CURRENT.set(tracker)
    handler = _RetryCounter(tracker)
    http = logging.getLogger(HTTP_LOGGER)
    http.addHandler(handler)
    try:
        yield tracker
    finally:
        http.removeHandler(handler)
        _CURRENT.reset(token)


def logger_sink(logger: logging.Logger, asset: str) -> Callable[..., None]:
    """A sink for ``run_items`` called with no tracker: running counts per call,
    logged at INFO on ``logger``."""
    counts: Counter = Counter()

    def sink(service: str, key: str, action: str, error: str | None = None, batch: int = 1) -> None:
        counts[action] += 1
        logger.info("%s", format_line(asset, sum(counts.values()), batch, key, action, counts, error=error))

    return sink


def progress_hook(progress: Any, asset: str) -> Callable[..., None] | None:
    """What ``run_items`` calls per outcome: ``progress`` itself when it is a
    callable, a line on it when it is a ``logging.Logger``, else the step's
    tracker, else the ``campaign_assets.items`` logger."""
    if isinstance(progress, logging.Logger):
        return logger_sink(progress, asset)
    if callable(progress):
        return progress
    tracker = current()
    if tracker is not None:
        return tracker
    return logger_sink(logging.getLogger(LOGGER_NAME), asset)
