"""Redaction: no secret ever leaves the HTTP layer in an error, a log line or metadata.

The rule: every configured secret, every credential header value, and anything
shaped like a credential (``Bearer ...``, ``?key=...``, Slack/OpenAI/Google token
shapes) is replaced by ``***`` before it reaches an exception message, a log
record (:meth:`Redactor.logging_filter`) or metadata (:meth:`Redactor.redact_obj`).
Its literal, URL-encoded and JSON-escaped spellings are all caught.
"""

from __future__ import annotations

import json as jsonlib
import logging
import re
from typing import Any, Iterable, Mapping
from urllib.parse import quote, quote_plus

REDACTED = "***"

# Header names whose values are credentials: their values become secrets automatically.
SENSITIVE_HEADERS: frozenset[str] = frozenset(
    {"authorization", "proxy-authorization", "x-api-key", "api-key", "x-goog-api-key", "cookie"}
)
# Keys masked wholesale by Redactor.redact_obj.
_SENSITIVE_KEY = re.compile(
    r"^(authorization|proxy-authorization|x-api-key|api[-_]?key|x-goog-api-key|access[-_]?token|"
    r"refresh[-_]?token|id[-_]?token|token|client[-_]?secret|password|secret|cookie|set-cookie)$",
    re.IGNORECASE,
)
# Credential shapes redacted even when nobody configured them as secrets
# (e.g. an OAuth access token minted at run time, or a vendor echoing a key).
_TOKEN_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)\b(bearer\s+)[^\s\"'<>,;]+"), r"\g<1>" + REDACTED),
    (re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?(?:(?:bearer|basic|token|bot|oauth|digest)\s+)?)[^\s\"'<>,;]+"), r"\g<1>" + REDACTED),
    (re.compile(r"\b(Basic\s+)(?=[A-Za-z0-9+/]*[0-9+/])[A-Za-z0-9+/]{12,}={0,2}"), r"\g<1>" + REDACTED),
    (
        re.compile(
            r"(?i)([?&;](?:key|api[_-]?key|access[_-]?token|token|client[_-]?secret|password|signature|sig)=)"
            r"[^&\s#\"'<>]+"
        ),
        r"\g<1>" + REDACTED,
    ),
    (re.compile(r"\bxox[abposre]-[A-Za-z0-9-]{6,}"), REDACTED),  # Slack tokens
    (re.compile(r"\bxapp-[A-Za-z0-9-]{6,}"), REDACTED),  # Slack app tokens
    (re.compile(r"\bsk-[A-Za-z0-9_-]{16,}"), REDACTED),  # OpenAI-style keys
    (re.compile(r"\bAIza[0-9A-Za-z_-]{30,}"), REDACTED),  # Google API keys
    (re.compile(r"\bya29\.[0-9A-Za-z._-]+"), REDACTED),  # Google OAuth access tokens
)


class Redactor:
    """Replaces every configured secret, and anything that looks like a credential, with ``***``.

    Besides the literal secrets it also catches their URL-encoded and JSON-escaped
    spellings (a token in a query string), anything after ``Bearer ``, credential
    query parameters (``?key=...``) and well-known token shapes.
    """

    def __init__(self, secrets: Iterable[str | None] = (), *, mask: str = REDACTED) -> None:
        self.mask = mask
        self._variants: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | None) -> None:
        """Register one more secret (e.g. an access token obtained at run time)."""
        if not secret or not secret.strip():
            return
        variants = {
            secret,
            secret.strip(),
            quote(secret, safe=""),
            quote(secret, safe="/:"),
            quote_plus(secret),
            jsonlib.dumps(secret)[1:-1],
        }
        self._variants.update(v for v in variants if v)
        ordered = sorted(self._variants, key=len, reverse=True)  # longest first: no partial leftovers
        self._pattern = re.compile("|".join(re.escape(v) for v in ordered))

    def redact(self, text: Any) -> str:
        """Return ``str(text)`` with every secret replaced by the mask."""
        result = text if isinstance(text, str) else str(text)
        if self._pattern is not None:
            result = self._pattern.sub(self.mask, result)
        for pattern, replacement in _TOKEN_PATTERNS:
            result = pattern.sub(replacement.replace(REDACTED, self.mask), result)
        return result

    def redact_obj(self, obj: Any) -> Any:
        """Return a redacted deep copy of a nested dict/list/tuple structure.

        Strings are redacted; values under credential-like keys
        (``authorization``, ``api_key``, ``token``, ...) are masked wholesale;
        numbers, booleans and ``None`` are returned unchanged.
        """
        if isinstance(obj, str):
            return self.redact(obj)
        if isinstance(obj, Mapping):
            out: dict[Any, Any] = {}
            for key, value in obj.items():
                new_key = self.redact(key) if isinstance(key, str) else key
                if isinstance(key, str) and _SENSITIVE_KEY.match(key) and value not in (None, ""):
                    out[new_key] = self.mask
                else:
                    out[new_key] = self.redact_obj(value)
            return out
        if isinstance(obj, list):
            return [self.redact_obj(v) for v in obj]
        if isinstance(obj, tuple):
            return tuple(self.redact_obj(v) for v in obj)
        if isinstance(obj, (set, frozenset)):
            return type(obj)(self.redact_obj(v) for v in obj)
        if isinstance(obj, (bytes, bytearray)):
            return self.redact(bytes(obj).decode("utf-8", "replace")).encode("utf-8")
        return obj

    def logging_filter(self) -> logging.Filter:
        """A ``logging.Filter`` that redacts each record's message, args, exception and stack text."""
        return _RedactingFilter(self)


class _RedactingFilter(logging.Filter):
    """Rewrites a record in place so that no handler downstream can print a secret."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self._redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed format string must not kill logging
            message = f"{record.msg!s} {record.args!r}"
        record.msg = self._redactor.redact(message)
        record.args = None
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = self._redactor.redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = self._redactor.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self._redactor.redact(record.stack_info)
        return True


def header_secrets(headers: Mapping[str, str]) -> list[str]:
    """Credential values found in headers (with any ``Bearer``/``Basic`` scheme stripped)."""
    secrets: list[str] = []
    for name, value in headers.items():
        if name.lower() in SENSITIVE_HEADERS and value:
            secrets.append(value)
            scheme, _, credential = value.partition(" ")
            if credential and scheme.lower() in {"bearer", "basic", "token"}:
                secrets.append(credential.strip())
    return secrets


