"""The error kinds the exactly-once layer acts on, independent of any transport.

``core.items.run_items`` falls back to the local backend when a service is
down; the HTTP layer (``services/http``) raises the concrete errors, which
subclass these. Neither imports the other.
"""

from __future__ import annotations


class ServiceError(Exception):
    """A call to an outside service failed (refused or unreachable)."""


class ServiceUnavailable(ServiceError):
    """The service is down or overloaded and retries are exhausted: a local
    backend may make the artifact instead (``run_items(fallback=...)``)."""
