"""Slack: chat.postMessage to tell the campaign channel a report is ready.

The HTTP backend speaks the Slack Web API: JSON bodies for ``chat.postMessage``
and ``chat.delete``, ``conversations.history`` with cursor pagination. Slack
reports most failures as HTTP 200 ``{"ok": false, "error": ...}``: the vendor
profile classifies those (``ratelimited`` is a rate limit, ``invalid_auth`` or
``channel_not_found`` are permanent). Posting is exactly once: the message text
carries the ledger marker, so a post whose response was lost is found in the
channel's history before it is tried again (``channel`` must then be a channel
id, as ``conversations.history`` requires).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from campaign_assets.services.base import HttpClient, ServiceResource
from campaign_assets.services.http import HttpSession, PermanentVendorError, VendorProfile, body_flag_classifier
from campaign_assets.services.local import LocalClient

HISTORY_PAGE_SIZE = 200  # Slack's recommended page size for conversations.history


def escape_text(text: str) -> str:
    """Slack's own rule for text we did not write: ``&``, ``<`` and ``>`` as
    entities, so a campaign named ``<!channel>`` pings nobody and a name
    cannot forge a link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@dataclass(frozen=True)
class Message:
    channel: str
    ts: str


class LocalSlack(LocalClient):
    """Messages as JSON records, one per post."""

    def __init__(self, out_dir: Path, channel: str):
        super().__init__("slack", out_dir)
        self.channel = channel

    async def post_message(self, text: str, *, marker: str) -> Message:
        ts = f"{time.time():.6f}"
        async with self.call("chat.postMessage"):
            self.put("messages", ts.replace(".", "-"), dict(channel=self.channel, ts=ts, text=text, marker=marker))
        return Message(self.channel, ts)

    async def find_message(self, *, marker: str) -> Message | None:
        found = self.find("messages", marker)
        return Message(found["channel"], found["ts"]) if found else None

    async def delete_message(self, ts: str) -> bool:
        async with self.call("chat.delete"):
            return self.remove("messages", ts.replace(".", "-"))


class HttpSlack(HttpClient):
    """Slack Web API over one ``HttpSession``."""

    def __init__(self, http: HttpSession, channel: str):
        super().__init__(http)
        self.channel = channel

    async def post_message(self, text: str, *, marker: str) -> Message:
        async def create() -> Message:
            posted = await self.http.json("POST", "/chat.postMessage", json={"channel": self.channel, "text": text})
            return Message(str(posted["channel"]), str(posted["ts"]))

        return await self.http.create_once(create, lambda: self.find_message(marker=marker))

    async def find_message(self, *, marker: str) -> Message | None:
        """The newest message of the channel whose text contains the marker."""
        async for message in self._history():
            if marker in str(message.get("text") or ""):
                return Message(self.channel, str(message["ts"]))
        return None

    async def delete_message(self, ts: str) -> bool:
        """Delete a message: True, or False when it was already gone (``message_not_found``)."""
        try:
            await self.http.json("POST", "/chat.delete", json={"channel": self.channel, "ts": ts}, idempotent=True)
        except PermanentVendorError as error:
            if error.message.partition(":")[0].strip() != "message_not_found":  # Slack's 404 is unknown_method
                raise
            return False
        return True

    async def _history(self) -> AsyncIterator[dict[str, Any]]:
        """The channel's messages, newest first, following ``response_metadata.next_cursor``."""
        params = {"channel": self.channel, "limit": str(HISTORY_PAGE_SIZE)}
        cursor = ""
        while True:
            page_params = {**params, **({"cursor": cursor} if cursor else {})}
            page = await self.http.json("GET", "/conversations.history", params=page_params)
            for message in page.get("messages") or []:
                yield message
            cursor = (page.get("response_metadata") or {}).get("next_cursor") or ""
            if not cursor:
                return


class SlackResource(ServiceResource):
    """Notifications to the campaign channel."""

    SERVICE: ClassVar[str] = "slack"
    DEFAULT_BASE_URL: ClassVar[str] = "https://slack.com/api"

    channel: str = Field(
        default="#campaigns",
        description="Channel to post to. The HTTP backend needs the channel id (C...): history is read by id.",
    )

    def local_client(self, out_dir: Path) -> LocalSlack:
        return LocalSlack(out_dir, self.channel)

    def http_client(self, http: HttpSession) -> HttpSlack:
        return HttpSlack(http, self.channel)

    def vendor_profile(self) -> VendorProfile:
        return VendorProfile(service=self.SERVICE, classify=body_flag_classifier())
