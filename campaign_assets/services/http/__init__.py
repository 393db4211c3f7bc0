"""The one shared HTTP layer every outside-service client is built on.

Every vendor client (OpenAI-compatible LLM, image generation, Google Docs/Sheets/Drive,
Asana, Canva, Slack) opens one :class:`HttpSession` per service per step and fans its
items out as asyncio tasks over it. One module per rule:

* :mod:`.redaction`: no secret in an error, a log line or metadata (:class:`Redactor`);
* :mod:`.wire`: secrets in query strings travel on the wire only;
* :mod:`.errors`: the :class:`VendorError` hierarchy (permanent, retryable, rate limited,
  ambiguous write, circuit open);
* :mod:`.profiles`: how each vendor reports errors and asks to wait (:class:`VendorProfile`,
  ``Retry-After``);
* :mod:`.retry`: attempts, backoff and which failures may be retried (``tenacity``);
* :mod:`.limiter`: the per-service AIMD concurrency cap (:class:`AdaptiveLimiter`);
* :mod:`.breaker`: fail fast once a vendor plainly went down (:class:`CircuitBreaker`);
* :mod:`.events`: the log lines, all redacted, on our own logger only;
* :mod:`.stats`: per-service counters for metadata (:class:`ServiceStats`), local backends too;
* :mod:`.session`: :class:`HttpSession`, which applies all of them, and ``create_once``.

The package holds no mutable module-level state, and opening a session changes no
global state (no logger, no environment): steps in separate processes never share anything.
"""

from campaign_assets.services.http.breaker import CircuitBreaker
from campaign_assets.services.http.errors import (
    AmbiguousWriteError,
    CircuitOpenError,
    PermanentVendorError,
    RateLimitedError,
    RetryableVendorError,
    VendorError,
)
from campaign_assets.services.http.limiter import AdaptiveLimiter, LimiterSlot
from campaign_assets.services.http.profiles import (
    Classification,
    VendorProfile,
    body_flag_classifier,
    default_classify,
    default_error_message,
    default_refusal,
    default_retry_after,
    parse_retry_after,
)
from campaign_assets.services.http.redaction import Redactor
from campaign_assets.services.http.retry import RetryPolicy, backoff_delay
from campaign_assets.services.http.session import HttpSession
from campaign_assets.services.http.stats import ServiceStats

__all__ = [
    "AdaptiveLimiter",
    "AmbiguousWriteError",
    "CircuitBreaker",
    "CircuitOpenError",
    "Classification",
    "HttpSession",
    "LimiterSlot",
    "PermanentVendorError",
    "RateLimitedError",
    "Redactor",
    "RetryPolicy",
    "RetryableVendorError",
    "ServiceStats",
    "VendorError",
    "VendorProfile",
    "backoff_delay",
    "body_flag_classifier",
    "default_classify",
    "default_refusal",
    "default_error_message",
    "default_retry_after",
    "parse_retry_after",
]
