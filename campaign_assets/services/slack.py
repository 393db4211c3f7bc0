"""Slack: chat.postMessage to tell the campaign channel a report is ready."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from campaign_assets.services.base import LocalClient, ServiceResource


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

    async def delete_message(self, ts: str) -> None:
        async with self.call("chat.delete"):
            self.remove("messages", ts.replace(".", "-"))


class SlackResource(ServiceResource):
    """Notifications to the campaign channel."""

    SERVICE: ClassVar[str] = "slack"
    DEFAULT_BASE_URL: ClassVar[str] = "https://slack.com/api"
    DEFAULT_CAP: ClassVar[int] = 1

    channel: str = Field(default="#campaigns", description="Channel id or name to post to.")

    def local_client(self, out_dir: Path) -> LocalSlack:
        return LocalSlack(out_dir, self.channel)
