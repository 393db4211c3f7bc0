"""Email: SendGrid v3 Marketing Campaigns **Single Sends**, scheduled to a contact list.

The HTTP backend follows Twilio SendGrid's v3 API reference (twilio.com/docs/sendgrid/api-reference):
"Create Single Send" (``POST /v3/marketing/singlesends`` with ``name``, ``send_to.list_ids`` and
``email_config`` {subject, html_content, plain_content, sender_id}: a draft), "Get All Single
Sends" (``GET /v3/marketing/singlesends``, ``page_size``/``page_token``, ``_metadata.next``),
"Schedule Single Send" (``PUT .../{id}/schedule`` ``{"send_at": ISO 8601}``), "Delete Single Send
Schedule" (``DELETE .../{id}/schedule``: back to draft), "Delete Single Send by ID" and
"Get Single Send Stats by ID" (``GET /v3/marketing/stats/singlesends/{id}``, ``aggregated_by=day``,
``start_date``/``end_date``: one result per day, its ``aggregation`` the date). Auth is
``Authorization: Bearer <API key>``; errors are ``{"errors": [{"field", "message"}]}``; the
"Rate Limits" page: a 429 carries ``X-RateLimit-Reset`` (epoch seconds) and no ``Retry-After``,
so this vendor's profile waits until that instant (:func:`sendgrid_retry_after`).

Exactly once: the ledger marker's short tag (``ca-`` + 16 hex digits, :func:`marker_tag`) ends the
single send's *name*, which recipients never see (names are capped at 100 characters). A create
whose response was lost is found by listing before it is tried again (``create_once``); scheduling
is an idempotent PUT, and a send found already scheduled at the wanted time is not written again.
Once its time has passed a send is ``triggered`` (sent): it can no longer be cancelled, and
``cancel_send`` raises :class:`AlreadySentError` saying so.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any, ClassVar

import httpx
from pydantic import Field

from campaign_assets.logic.delivery import EMAIL_STAT_KEYS, email_day_stats, email_list_size
from campaign_assets.services.base import HttpClient, ServiceResource
from campaign_assets.services.canva import marker_tag
from campaign_assets.services.http import (
    HttpSession,
    PermanentVendorError,
    VendorProfile,
    default_error_message,
    default_retry_after,
)
from campaign_assets.services.http.profiles import json_or_none, truncate
from campaign_assets.services.local import LocalClient, write_bytes, write_text

NAME_MAX = 100  # SendGrid's limit on a single send's name
PAGE_SIZE = 100  # the largest page GET /v3/marketing/singlesends gives
APP_URL = "https://mc.sendgrid.com/single-sends/{id}/stats"
STAT_KEYS = EMAIL_STAT_KEYS


@dataclass(frozen=True)
class EmailSend:
    send_id: str
    name: str
    status: str  # "scheduled" | "draft" | "triggered" (sent)
    send_at: str | None
    url: str


class AlreadySentError(PermanentVendorError):
    """The single send was already triggered (its time has passed): it can no longer be cancelled."""


def already_sent(service: str, send_id: str, send_at: str | None, *, status_code: int | None = None) -> AlreadySentError:
    return AlreadySentError(
        service,
        f"single send {send_id} was already sent (triggered at {send_at or 'an earlier time'}): it cannot be cancelled",
        status_code=status_code,
        kind="already_sent",
    )


def send_name(name: str, marker: str) -> str:
    """The single send's name: ``name`` cut to fit SendGrid's 100 characters, then the marker's tag."""
    tag = marker_tag(marker)
    return f"{name.strip()[: NAME_MAX - len(tag) - 1]} {tag}"


def iso_utc(moment: dt.datetime) -> str:
    """``send_at`` as SendGrid writes it: UTC, whole seconds, ``Z``. A naive time is refused."""
    if moment.tzinfo is None:
        raise ValueError(f"send_at must be timezone-aware, got {moment!r}")
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def sendgrid_retry_after(response: httpx.Response) -> float | None:
    """Seconds until ``X-RateLimit-Reset`` (epoch seconds) on a 429; else the standard ``Retry-After``."""
    reset = response.headers.get("x-ratelimit-reset")
    if response.status_code == 429 and reset:
        try:
            return max(0.0, float(reset) - time.time())
        except ValueError:
            pass
    return default_retry_after(response)


def sendgrid_error_message(response: httpx.Response) -> str:
    """``{"errors": [{"field", "message"}]}`` as ``field: message; ...``."""
    payload = json_or_none(response)
    errors = payload.get("errors") if isinstance(payload, Mapping) else None
    if isinstance(errors, list) and errors:
        parts = []
        for error in errors:
            if isinstance(error, Mapping) and error.get("message"):
                field = error.get("field")
                parts.append(f"{field}: {error['message']}" if field else str(error["message"]))
        if parts:
            return truncate("; ".join(parts))
    return default_error_message(response)


def _local_id(marker: str) -> str:
    raw = hashlib.sha256(marker.encode()).hexdigest()
    return f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:32]}"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class LocalEmail(LocalClient):
    """Single sends as JSON records, and the message each would send as ``email/<id>.eml`` and ``.html``.

    Status follows the vendor's rule: scheduled until its time has passed, then triggered."""

    def __init__(self, out_dir: Path, sender_id: str | None):
        super().__init__("email", out_dir)
        self.sender_id = sender_id

    def _send(self, record: dict[str, Any]) -> EmailSend:
        status = record["status"]
        if status == "scheduled" and record["send_at"] and _parse(record["send_at"]) <= _now():
            status = "triggered"
        return EmailSend(record["id"], record["name"], status, record["send_at"], record["url"])

    async def schedule_send(
        self, name: str, subject: str, html: str, text: str, list_id: str, send_at: dt.datetime, *, marker: str
    ) -> EmailSend:
        when = iso_utc(send_at)
        send_id = _local_id(marker)
        folder = self.out_dir / self.service
        async with self.call("schedule_send"):
            record = self.get("sends", send_id)
            if record is not None and self._send(record).status == "triggered":
                return self._send(record)
            message = EmailMessage()
            message["Subject"] = subject
            message["From"] = f"sender {self.sender_id or 'unset'}"
            message["To"] = f"list {list_id}"
            message["Date"] = format_datetime(send_at.astimezone(dt.timezone.utc))
            message.set_content(text)
            message.add_alternative(html, subtype="html")
            write_bytes(folder / f"{send_id}.eml", bytes(message))
            write_text(folder / f"{send_id}.html", html)
            record = dict(
                id=send_id, name=send_name(name, marker), status="scheduled", send_at=when, list_id=list_id,
                subject=subject, marker=marker, url=(folder / f"{send_id}.html").resolve().as_uri(),
            )
            self.put("sends", send_id, record)
        return self._send(record)

    async def find_send(self, *, marker: str) -> EmailSend | None:
        async with self.call("find_send"):
            found = self.find("sends", marker)
        return self._send(found) if found else None

    async def cancel_send(self, send_id: str) -> bool:
        async with self.call("cancel_send"):
            record = self.get("sends", send_id)
            if record is None:
                return False
            send = self._send(record)
            if send.status == "triggered":
                raise already_sent(self.service, send_id, send.send_at)
            record.update(status="draft", send_at=None)
            self.put("sends", send_id, record)
        return True

    async def send_stats(self, send_id: str, day: dt.date) -> dict[str, int]:
        """The send's numbers on ``day``, as the vendor reports them: zeros until the send goes out,
        then ``logic/delivery.email_day_stats`` for its list (the sandbox's model too)."""
        async with self.call("send_stats"):
            record = self.get("sends", send_id)
        if record is None:
            raise LookupError(f"resource not found: single send {send_id}")
        if self._send(record).status != "triggered":
            return dict.fromkeys(STAT_KEYS, 0)
        send_day = _parse(record["send_at"]).date()
        return email_day_stats(send_id, email_list_size(record["list_id"]), send_day, day)

    async def delete_send(self, send_id: str) -> bool:
        async with self.call("delete_send"):
            gone = self.remove("sends", send_id)
        for suffix in (".eml", ".html"):
            (self.out_dir / self.service / f"{send_id}{suffix}").unlink(missing_ok=True)
        return gone


class HttpEmail(HttpClient):
    """SendGrid v3 Single Sends over one ``HttpSession``."""

    def __init__(self, http: HttpSession, sender_id: str | None):
        super().__init__(http)
        self.sender_id = sender_id

    async def schedule_send(
        self, name: str, subject: str, html: str, text: str, list_id: str, send_at: dt.datetime, *, marker: str
    ) -> EmailSend:
        """Create the single send (exactly once) and schedule it at ``send_at``; a send found already
        scheduled at that time, or already sent, is returned without a write."""
        when = iso_utc(send_at)
        if not self.sender_id:
            raise ValueError("EmailResource.sender_id (SENDGRID_SENDER_ID) is required to create a single send")
        body = {
            "name": send_name(name, marker),
            "send_to": {"list_ids": [list_id]},
            "email_config": {
                "subject": subject,
                "html_content": html,
                "plain_content": text,
                "sender_id": int(self.sender_id) if str(self.sender_id).isdigit() else self.sender_id,
            },
        }

        async def create() -> EmailSend:
            return _send(await self.http.json("POST", "/v3/marketing/singlesends", json=body))

        send = await self.find_send(marker=marker)
        if send is None:
            send = await self.http.create_once(create, lambda: self.find_send(marker=marker))
        if send.status == "triggered" or (send.status == "scheduled" and send.send_at == when):
            return send
        scheduled = await self.http.json(
            "PUT", f"/v3/marketing/singlesends/{send.send_id}/schedule", json={"send_at": when}
        )
        return EmailSend(send.send_id, send.name, str(scheduled.get("status") or "scheduled"),
                         scheduled.get("send_at") or when, send.url)

    async def find_send(self, *, marker: str) -> EmailSend | None:
        """The single send whose name ends with the marker's tag (listing every page)."""
        tag = marker_tag(marker)
        async for record in self._all():
            if str(record.get("name") or "").endswith(tag):
                return _send(record)
        return None

    async def cancel_send(self, send_id: str) -> bool:
        """Unschedule (back to draft): True; False when the send is gone; AlreadySentError once sent."""
        try:
            await self.http.json("DELETE", f"/v3/marketing/singlesends/{send_id}/schedule")
        except PermanentVendorError as error:
            if error.status_code == 404:
                return False
            if error.status_code in (400, 409, 422):
                current = await self._get(send_id)
                if current is not None and current.status == "triggered":
                    raise already_sent(self.service, send_id, current.send_at, status_code=error.status_code) from None
            raise
        return True

    async def delete_send(self, send_id: str) -> bool:
        try:
            await self.http.request("DELETE", f"/v3/marketing/singlesends/{send_id}")
        except PermanentVendorError as error:
            if error.status_code != 404:
                raise
            return False
        return True

    async def send_stats(self, send_id: str, day: dt.date) -> dict[str, int]:
        """The send's numbers on ``day``: ``GET /v3/marketing/stats/singlesends/{id}`` with
        ``aggregated_by=day``, ``start_date`` = ``end_date`` = the day; the result whose
        ``aggregation`` is that day (zeros when none: nothing happened that day)."""
        params = {"aggregated_by": "day", "start_date": day.isoformat(), "end_date": day.isoformat()}
        payload = await self.http.json("GET", f"/v3/marketing/stats/singlesends/{send_id}", params=params)
        totals = dict.fromkeys(STAT_KEYS, 0)
        for result in payload.get("results") or []:
            if str(result.get("aggregation") or day.isoformat())[:10] != day.isoformat():
                continue
            stats = result.get("stats") or {}
            for key in STAT_KEYS:
                totals[key] += int(stats.get(key) or 0)
        return totals

    async def _get(self, send_id: str) -> EmailSend | None:
        try:
            return _send(await self.http.json("GET", f"/v3/marketing/singlesends/{send_id}"))
        except PermanentVendorError as error:
            if error.status_code == 404:
                return None
            raise

    async def _all(self) -> AsyncIterator[dict[str, Any]]:
        """Every single send, following ``_metadata.next`` (its ``page_token``)."""
        token: str | None = None
        while True:
            params = {"page_size": str(PAGE_SIZE), **({"page_token": token} if token else {})}
            page = await self.http.json("GET", "/v3/marketing/singlesends", params=params)
            for record in page.get("result") or []:
                yield record
            following = (page.get("_metadata") or {}).get("next")
            token = httpx.URL(following).params.get("page_token") if following else None
            if not token:
                return


def _send(record: Mapping[str, Any]) -> EmailSend:
    send_id = str(record["id"])
    return EmailSend(send_id, str(record.get("name") or ""), str(record.get("status") or "draft"),
                     record.get("send_at"), APP_URL.format(id=send_id))


class EmailResource(ServiceResource):
    """Campaign email as a SendGrid Single Send to a contact list, scheduled for a given time."""

    SERVICE: ClassVar[str] = "email"
    DEFAULT_BASE_URL: ClassVar[str] = "https://api.sendgrid.com"

    sender_id: str | None = Field(
        default=None, description="SendGrid verified sender id (SENDGRID_SENDER_ID); required by the HTTP backend."
    )

    def local_client(self, out_dir: Path) -> LocalEmail:
        return LocalEmail(out_dir, self.sender_id)

    def http_client(self, http: HttpSession) -> HttpEmail:
        return HttpEmail(http, self.sender_id)

    def vendor_profile(self) -> VendorProfile:
        return VendorProfile(
            service=self.SERVICE, error_message=sendgrid_error_message, retry_after=sendgrid_retry_after
        )
