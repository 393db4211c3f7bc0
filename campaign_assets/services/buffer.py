"""Social: posts queued on a Buffer profile for a given time.

The HTTP backend speaks Buffer's published REST API (buffer.com/developers/api: "Updates",
"Profiles", "Errors"; base ``https://api.bufferapp.com/1``): ``POST /updates/create.json``
(form-encoded ``profile_ids[]``, ``text``, ``scheduled_at``), ``GET
/profiles/{id}/updates/pending.json`` (``page``/``count`` ≤ 100, ``total``), ``GET
/updates/{id}.json`` and ``POST /updates/{id}/destroy.json``. The access token travels as
``Authorization: Bearer`` (the reference accepts it beside the ``access_token`` parameter, and
a header stays out of URLs and logs). Errors are ``{"success": false, "code", "message"}``;
over 60 requests per minute per token Buffer answers 429 without ``Retry-After``, so the
profile waits out the limit's window (``rate_limit_window_s``, 60 s) rather than the shared
layer's short exponential backoff, which would spend every attempt inside the same minute.

Exactly once without a marker: a post's text is what followers read, so the ledger marker is
never put in it. An earlier attempt's post is found among the profile's pending updates by
identical text *and* scheduled time (``find_post``); a create whose response was lost
(``create_once``), or refused as duplicate content (code 1025), is resolved that way.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import httpx
from pydantic import Field

from campaign_assets.logic.delivery import BUFFER_STAT_KEYS, buffer_statistics
from campaign_assets.services.base import HttpClient, ServiceResource
from campaign_assets.services.http import (
    HttpSession,
    PermanentVendorError,
    VendorProfile,
    default_error_message,
    default_retry_after,
)
from campaign_assets.services.http.profiles import json_or_none, truncate
from campaign_assets.services.local import LocalClient

PAGE_SIZE = 100  # Buffer's largest ``count``
DUPLICATE_CODE = 1025  # "Update was recently posted, can't post duplicate content."
STAT_KEYS = BUFFER_STAT_KEYS


@dataclass(frozen=True)
class SocialPost:
    post_id: str
    profile_id: str
    text: str
    scheduled_at: str | None
    status: str  # Buffer's: "buffer" (pending), "sent", "service" ...
    url: str | None


def due_at(moment: dt.datetime) -> int:
    """The scheduled time as Buffer stores it (``due_at``: whole unix seconds). A naive time is refused."""
    if moment.tzinfo is None:
        raise ValueError(f"scheduled_at must be timezone-aware, got {moment!r}")
    return int(moment.timestamp())


def _iso(epoch: int) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def buffer_error_message(response: httpx.Response) -> str:
    """``{"success": false, "code": N, "message": ...}`` as ``N: message``."""
    payload = json_or_none(response)
    if isinstance(payload, Mapping) and payload.get("success") is False and payload.get("message"):
        code = payload.get("code")
        return truncate(f"{code}: {payload['message']}" if code is not None else str(payload["message"]))
    return default_error_message(response)


def window_retry_after(window_s: float) -> Callable[[httpx.Response], float | None]:
    """A 429's wait: its ``Retry-After`` if any, else the rate limit's whole window."""

    def retry_after(response: httpx.Response) -> float | None:
        hint = default_retry_after(response)
        return window_s if hint is None and response.status_code == 429 else hint

    return retry_after


def _is_duplicate(error: PermanentVendorError) -> bool:
    return error.message.partition(":")[0].strip() == str(DUPLICATE_CODE)


class LocalSocial(LocalClient):
    """Queued posts as JSON records (``social/posts/<id>.json``); nothing is posted."""

    def __init__(self, out_dir: Path):
        super().__init__("social", out_dir)

    @staticmethod
    def _post(record: Mapping[str, Any]) -> SocialPost:
        return SocialPost(record["id"], record["profile_id"], record["text"], _iso(record["due_at"]),
                          record["status"], None)

    async def schedule_post(self, profile_id: str, text: str, scheduled_at: dt.datetime, *, marker: str) -> SocialPost:
        due = due_at(scheduled_at)
        post_id = hashlib.sha256(marker.encode()).hexdigest()[:24]
        record = dict(id=post_id, profile_id=profile_id, text=text, due_at=due, status="buffer", marker=marker)
        async with self.call("POST /updates/create.json"):
            self.put("posts", post_id, record)
        return self._post(record)

    async def find_post(self, profile_id: str, text: str, scheduled_at: dt.datetime) -> SocialPost | None:
        due = due_at(scheduled_at)
        async with self.call("GET /profiles/{id}/updates/pending.json"):
            for record in self.all("posts"):
                if (record["profile_id"], record["text"], record["due_at"]) == (profile_id, text, due):
                    return self._post(record)
        return None

    async def delete_post(self, post_id: str) -> bool:
        async with self.call("POST /updates/{id}/destroy.json"):
            return self.remove("posts", post_id)

    async def post_stats(self, post_id: str) -> dict[str, int]:
        """Lifetime statistics so far, as the sandbox reports them (``logic/delivery.buffer_statistics``
        from the post's due day through today; nothing is really posted)."""
        async with self.call("GET /updates/{id}.json"):
            record = self.get("posts", post_id)
            if record is None:
                raise LookupError(f"Update could not be found: {post_id}")
        posted = dt.datetime.fromtimestamp(int(record["due_at"]), dt.timezone.utc).date()
        return buffer_statistics(post_id, "", posted, dt.datetime.now(dt.timezone.utc).date())


class HttpSocial(HttpClient):
    """Buffer REST API 1 over one ``HttpSession``."""

    async def schedule_post(self, profile_id: str, text: str, scheduled_at: dt.datetime, *, marker: str) -> SocialPost:
        """Queue ``text`` on the profile at ``scheduled_at``, exactly once (``marker`` stays in the
        ledger: the text is customer-visible)."""
        due = due_at(scheduled_at)
        form = {"profile_ids[]": profile_id, "text": text, "scheduled_at": _iso(due)}

        async def create() -> SocialPost:
            try:
                created = await self.http.json("POST", "/updates/create.json", data=form)
            except PermanentVendorError as error:
                if not _is_duplicate(error):
                    raise
                found = await self.find_post(profile_id, text, scheduled_at)
                if found is None:  # the same text at another time: a real conflict, say so
                    raise
                return found
            return _post(created["updates"][0])

        return await self.http.create_once(create, lambda: self.find_post(profile_id, text, scheduled_at))

    async def find_post(self, profile_id: str, text: str, scheduled_at: dt.datetime) -> SocialPost | None:
        """The profile's pending update with exactly this text and scheduled time."""
        due = due_at(scheduled_at)
        async for update in self._pending(profile_id):
            if update.get("text") == text and int(update.get("due_at") or 0) == due:
                return _post(update)
        return None

    async def delete_post(self, post_id: str) -> bool:
        """Destroy an update: True; False when it was already gone (404)."""
        try:
            await self.http.json("POST", f"/updates/{post_id}/destroy.json", idempotent=True)
        except PermanentVendorError as error:
            if error.status_code != 404:
                raise
            return False
        return True

    async def post_stats(self, post_id: str) -> dict[str, int]:
        """The update's ``statistics`` (reach, clicks, retweets, favorites, mentions)."""
        update = await self.http.json("GET", f"/updates/{post_id}.json")
        stats = update.get("statistics") or {}
        return {key: int(stats.get(key) or 0) for key in STAT_KEYS}

    async def _pending(self, profile_id: str) -> AsyncIterator[dict[str, Any]]:
        page, seen = 1, 0
        while True:
            params = {"page": str(page), "count": str(PAGE_SIZE), "utc": "true"}
            payload = await self.http.json("GET", f"/profiles/{profile_id}/updates/pending.json", params=params)
            updates = payload.get("updates") or []
            for update in updates:
                yield update
            seen += len(updates)
            if not updates or seen >= int(payload.get("total") or 0):
                return
            page += 1


def _post(update: Mapping[str, Any]) -> SocialPost:
    due = update.get("due_at")
    return SocialPost(str(update["id"]), str(update.get("profile_id") or ""), str(update.get("text") or ""),
                      _iso(int(due)) if due else None, str(update.get("status") or "buffer"), None)


class SocialResource(ServiceResource):
    """Campaign social posts queued on Buffer profiles."""

    SERVICE: ClassVar[str] = "social"
    DEFAULT_BASE_URL: ClassVar[str] = "https://api.bufferapp.com/1"

    rate_limit_window_s: float = Field(
        default=60.0, gt=0, description="Buffer's rate-limit window (60 requests per minute): a 429 waits this long."
    )

    def local_client(self, out_dir: Path) -> LocalSocial:
        return LocalSocial(out_dir)

    def http_client(self, http: HttpSession) -> HttpSocial:
        return HttpSocial(http)

    def vendor_profile(self) -> VendorProfile:
        return VendorProfile(
            service=self.SERVICE,
            error_message=buffer_error_message,
            retry_after=window_retry_after(self.rate_limit_window_s),
        )
