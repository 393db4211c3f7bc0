"""What the HTTP layer tells the log, on the ``campaign_assets.http`` logger only.

The rule: one WARNING line per retry (with the wait), one line per give-up (INFO for a
permanent answer such as a 404 the caller may expect, WARNING for exhausted retries and
ambiguous writes), one line per circuit transition and per reconciled write. Every
message and every structured ``extra`` field (``http_service``, ``http_method``,
``http_path``, ``http_reason``, ``http_attempt``, ``http_delay_s``, ``http_circuit``)
is redacted first. No other logger is touched.
"""

from __future__ import annotations

import logging
from typing import Any

from campaign_assets.services.http.errors import VendorError
from campaign_assets.services.http.profiles import truncate
from campaign_assets.services.http.redaction import Redactor
from campaign_assets.services.http.retry import Outcome

LOGGER_NAME = "campaign_assets.http"
MAX_LOGGED_MESSAGE_CHARS = 200


class HttpLog:
    """The log lines of one service's session."""

    def __init__(self, service: str, redactor: Redactor) -> None:
        self.service = service
        self._redactor = redactor
        self._logger = logging.getLogger(LOGGER_NAME)

    def line(self, level: int, message: str, **extra: Any) -> None:
        self._logger.log(level, "%s", self._redactor.redact(message), extra=self._redactor.redact_obj(extra))

    def retry(
        self, outcome: Outcome, method: str, path: str, attempt: int, max_attempts: int, delay: float, detail: str
    ) -> None:
        """``detail``: the vendor's message (redacted), or the transport error's text."""
        if outcome.response is not None:
            reason = f"HTTP {outcome.status_code} ({outcome.verdict.replace('_', ' ')})"
        else:
            reason = outcome.kind
        self.line(
            logging.WARNING,
            f"{self.service} {method} {path}: {reason}; attempt {attempt}/{max_attempts} failed, "
            f"retrying in {delay:.3f}s: {truncate(detail, MAX_LOGGED_MESSAGE_CHARS)}",
            http_service=self.service,
            http_method=method,
            http_path=path,
            http_reason=outcome.kind,
            http_attempt=attempt,
            http_delay_s=round(delay, 3),
        )

    def gave_up(self, error: VendorError) -> None:
        self.line(
            logging.WARNING if error.retryable else logging.INFO,
            f"giving up: {error}",
            http_service=self.service,
            http_method=error.method,
            http_path=error.path,
            http_reason=error.kind,
            http_attempt=error.attempts,
        )

    def circuit_half_open(self, cooldown_s: float, method: str, path: str) -> None:
        self.line(
            logging.INFO,
            f"{self.service}: circuit half-open after {cooldown_s:g}s: probing the vendor with {method} {path}",
            http_service=self.service,
            http_circuit="half_open",
        )

    def circuit_closed(self) -> None:
        self.line(
            logging.INFO,
            f"{self.service}: circuit closed: the probe succeeded, the vendor is back",
            http_service=self.service,
            http_circuit="closed",
        )

    def circuit_open(self, why: str, error: VendorError | None, cooldown_s: float) -> None:
        self.line(
            logging.WARNING,
            f"{self.service}: circuit open: {why} ({error}); further requests fail fast "
            f"for {cooldown_s:g}s, then one probe",
            http_service=self.service,
            http_circuit="open",
            http_reason=error.kind if error is not None else None,
        )
