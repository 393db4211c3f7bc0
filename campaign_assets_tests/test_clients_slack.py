"""The Slack HTTP backend against the vendor sandbox: ok:false errors, retries and exactly-once posts."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from campaign_assets.sandbox.server import SandboxServer
from campaign_assets.services import slack
from campaign_assets.services.http import PermanentVendorError
from campaign_assets_tests.http_doubles import GENEROUS_TIMEOUT_S, time_out_next
from campaign_assets.services.slack import HttpSlack, Message, SlackResource

TOKEN = "xoxb-sandbox-token"
CHANNEL = "C0CAMPAIGNS"
MARKER = "[ca:acme/q4/summary_report/notification]"
TEXT = f"Q4 Product Launch — Summary Report is ready: https://docs.example/d/1 {MARKER}"


def resource(sandbox: SandboxServer, **overrides: Any) -> SlackResource:
    config: dict[str, Any] = dict(
        base_url=f"{sandbox.url}/slack/api", api_key=TOKEN, channel=CHANNEL, backoff_base_s=0.001,
        timeout_s=GENEROUS_TIMEOUT_S,
    )
    return SlackResource(**(config | overrides))


def live_messages(sandbox: SandboxServer) -> list[dict[str, Any]]:
    objects = sandbox.state()["vendors"]["slack"]["objects"]
    return [o["data"] for o in objects if o["kind"] == "message" and not o["deleted"]]


def calls(sandbox: SandboxServer, endpoint: str | None = None) -> list[dict[str, Any]]:
    return [
        c for c in sandbox.state()["calls"] if c["vendor"] == "slack" and endpoint in (None, c["endpoint"])
    ]


def post(sandbox: SandboxServer, tmp_path: Path, **overrides: Any) -> Message:
    async def scenario() -> Message:
        async with resource(sandbox, **overrides).session(tmp_path) as client:
            return await client.post_message(TEXT, marker=MARKER)

    return asyncio.run(scenario())


def test_post_find_and_delete(sandbox: SandboxServer, tmp_path: Path) -> None:
    async def scenario() -> Message:
        async with resource(sandbox).session(tmp_path) as client:
            assert isinstance(client, HttpSlack)
            message = await client.post_message(TEXT, marker=MARKER)
            assert await client.find_message(marker=MARKER) == message
            assert await client.find_message(marker="[ca:other]") is None
            return message

    message = asyncio.run(scenario())
    assert message.channel == CHANNEL
    [stored] = live_messages(sandbox)
    assert (stored["ts"], stored["text"], stored["channel"]) == (message.ts, TEXT, CHANNEL)

    async def teardown() -> None:
        async with resource(sandbox).session(tmp_path) as client:
            await client.delete_message(message.ts)
            await client.delete_message(message.ts)  # already gone: message_not_found is fine

    asyncio.run(teardown())
    assert live_messages(sandbox) == []


def test_rate_limit_with_retry_after_recovers(sandbox: SandboxServer, tmp_path: Path) -> None:
    sandbox.queue_fault("slack", "429", "POST /chat.postMessage", times=2)
    message = post(sandbox, tmp_path)
    assert [m["ts"] for m in live_messages(sandbox)] == [message.ts]
    statuses = [c["status"] for c in calls(sandbox, "POST /chat.postMessage")]
    assert statuses[:2] == [429, 429] and statuses[-1] == 200  # (Slack's 1/s limit may add a 429 of its own)


def test_server_error_on_a_read_is_retried(sandbox: SandboxServer, tmp_path: Path) -> None:
    message = post(sandbox, tmp_path)
    sandbox.queue_fault("slack", "500", "GET /conversations.history", times=2)

    async def scenario() -> Message | None:
        async with resource(sandbox).session(tmp_path) as client:
            return await client.find_message(marker=MARKER)

    assert asyncio.run(scenario()) == message
    assert [c["status"] for c in calls(sandbox, "GET /conversations.history")] == [500, 500, 200]


@pytest.mark.parametrize(
    ("overrides", "code"),
    [({"api_key": "xoxb-revoked-0123456789"}, "invalid_auth"), ({"channel": "not a channel"}, "channel_not_found")],
)
def test_ok_false_errors_are_permanent(
    sandbox: SandboxServer, tmp_path: Path, overrides: dict[str, str], code: str
) -> None:
    with pytest.raises(PermanentVendorError) as raised:
        post(sandbox, tmp_path, **overrides)
    assert raised.value.message == code and raised.value.status_code == 200
    assert "xoxb-revoked-0123456789" not in str(raised.value)
    assert len(calls(sandbox)) == 1 and live_messages(sandbox) == []


def test_timeout_on_a_post_is_reconciled_then_retried(
    sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox.queue_fault("slack", "timeout", "POST /chat.postMessage")
    time_out_next(monkeypatch, "POST /chat.postMessage")  # the one the sandbox holds; others keep a generous timeout
    message = post(sandbox, tmp_path)
    assert [m["ts"] for m in live_messages(sandbox)] == [message.ts]
    assert len(calls(sandbox, "POST /chat.postMessage")) == 2  # the timed-out one posted nothing
    assert len(calls(sandbox, "GET /conversations.history")) == 1


def test_lost_response_posts_exactly_once(sandbox: SandboxServer, tmp_path: Path) -> None:
    sandbox.queue_fault("slack", "lost_response", "POST /chat.postMessage")
    message = post(sandbox, tmp_path)
    assert [m["ts"] for m in live_messages(sandbox)] == [message.ts]
    assert len(calls(sandbox, "POST /chat.postMessage")) == 1


def test_find_follows_the_cursor(sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(slack, "HISTORY_PAGE_SIZE", 2)

    async def scenario() -> tuple[Message, Message | None]:
        async with resource(sandbox).session(tmp_path) as client:
            target = await client.post_message(TEXT, marker=MARKER)
            for n in range(4):  # newer messages push the target to the third page
                await client.post_message(f"update {n} [ca:u{n}]", marker=f"[ca:u{n}]")
            return target, await client.find_message(marker=MARKER)

    target, found = asyncio.run(scenario())
    assert found == target
    assert len(calls(sandbox, "GET /conversations.history")) == 3
