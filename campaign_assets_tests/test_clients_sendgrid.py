"""The SendGrid (email) clients: Single Sends against the vendor sandbox, and the local backend."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from campaign_assets.logic.delivery import email_day_stats, email_list_size
from campaign_assets.sandbox.server import SandboxServer
from campaign_assets.services import sendgrid
from campaign_assets.services.canva import marker_tag
from campaign_assets.services.http import PermanentVendorError
from campaign_assets.services.sendgrid import (
    AlreadySentError,
    EmailResource,
    EmailSend,
    HttpEmail,
    LocalEmail,
    send_name,
    sendgrid_retry_after,
)
from campaign_assets_tests.conftest import CLIENT_SANDBOX
from campaign_assets_tests.http_doubles import GENEROUS_TIMEOUT_S

MARKER = "[ca:acme/q4-product-launch/email_send/launch]"
LIST_ID = "ca7b2e1f-0000-4000-8000-000000000001"
SEND_AT = dt.datetime(2031, 1, 4, 9, 30, tzinfo=dt.timezone.utc)
CREATE = "POST /v3/marketing/singlesends"
LIST = "GET /v3/marketing/singlesends"
SCHEDULE = "PUT /v3/marketing/singlesends/{id}/schedule"
UNSCHEDULE = "DELETE /v3/marketing/singlesends/{id}/schedule"
DELETE = "DELETE /v3/marketing/singlesends/{id}"


def resource(sandbox: SandboxServer, **overrides: Any) -> EmailResource:
    config: dict[str, Any] = dict(
        base_url=f"{sandbox.url}/sendgrid", api_key="SG.sandbox-key", sender_id="1234567",
        backoff_base_s=0.001, timeout_s=GENEROUS_TIMEOUT_S,
    )
    return EmailResource(**(config | overrides))


def live_sends(sandbox: SandboxServer) -> list[dict[str, Any]]:
    objects = sandbox.state()["vendors"]["sendgrid"]["objects"]
    return [o["data"] for o in objects if o["kind"] == "singlesend" and not o["deleted"]]


def calls(sandbox: SandboxServer, endpoint: str | None = None) -> list[dict[str, Any]]:
    return [c for c in sandbox.state()["calls"] if c["vendor"] == "sendgrid" and endpoint in (None, c["endpoint"])]


def schedule(client: Any, marker: str = MARKER, send_at: dt.datetime = SEND_AT) -> Any:
    return client.schedule_send(
        "Q4 Product Launch — launch email", "Meet Acme Q4", "<p>Hello</p>", "Hello", LIST_ID, send_at, marker=marker
    )


def run(sandbox: SandboxServer, tmp_path: Path, body: Any, **overrides: Any) -> Any:
    async def scenario() -> Any:
        async with resource(sandbox, **overrides).session(tmp_path) as client:
            assert isinstance(client, HttpEmail)
            return await body(client)

    return asyncio.run(scenario())


def test_schedule_find_cancel_and_delete(sandbox: SandboxServer, tmp_path: Path) -> None:
    async def body(client: HttpEmail) -> tuple[EmailSend, EmailSend | None, EmailSend | None]:
        send = await schedule(client)
        return send, await client.find_send(marker=MARKER), await client.find_send(marker="[ca:other]")

    send, found, other = run(sandbox, tmp_path, body)
    assert (send.status, send.send_at) == ("scheduled", "2031-01-04T09:30:00Z")
    assert found == send and other is None
    [stored] = live_sends(sandbox)
    assert stored["name"].endswith(marker_tag(MARKER)) and MARKER not in stored["name"]
    assert stored["send_to"]["list_ids"] == [LIST_ID]
    config = stored["email_config"]
    assert (config["subject"], config["html_content"], config["plain_content"], config["sender_id"]) == (
        "Meet Acme Q4", "<p>Hello</p>", "Hello", 1234567,
    )

    async def teardown(client: HttpEmail) -> tuple[bool, EmailSend | None, bool, bool, bool]:
        cancelled = await client.cancel_send(send.send_id)
        after = await client.find_send(marker=MARKER)
        return cancelled, after, await client.delete_send(send.send_id), await client.delete_send(send.send_id), (
            await client.cancel_send(send.send_id)
        )

    cancelled, after, deleted, again, cancel_gone = run(sandbox, tmp_path, teardown)
    assert cancelled and after is not None and (after.status, after.send_at) == ("draft", None)
    assert (deleted, again, cancel_gone) == (True, False, False)
    assert live_sends(sandbox) == []


def test_a_send_already_scheduled_at_that_time_is_not_written_again(sandbox: SandboxServer, tmp_path: Path) -> None:
    first = run(sandbox, tmp_path, schedule)
    writes = len(calls(sandbox, CREATE)) + len(calls(sandbox, SCHEDULE))
    assert run(sandbox, tmp_path, schedule) == first
    assert len(calls(sandbox, CREATE)) + len(calls(sandbox, SCHEDULE)) == writes == 2
    later = SEND_AT + dt.timedelta(days=1)  # a new time: rescheduled in place, still one send
    moved = run(sandbox, tmp_path, lambda client: schedule(client, send_at=later))
    assert (moved.send_id, moved.send_at) == (first.send_id, "2031-01-05T09:30:00Z")
    assert len(live_sends(sandbox)) == 1 and len(calls(sandbox, CREATE)) == 1


def test_lost_responses_on_every_write_leave_exactly_one_send(sandbox: SandboxServer, tmp_path: Path) -> None:
    for endpoint in (CREATE, SCHEDULE):
        sandbox.queue_fault("sendgrid", "lost_response", endpoint)
    send = run(sandbox, tmp_path, schedule)
    [stored] = live_sends(sandbox)
    assert (stored["id"], stored["status"], send.status) == (send.send_id, "scheduled", "scheduled")
    assert len(calls(sandbox, CREATE)) == 1  # the lost create was found by its name, not sent again
    assert [c["fault"] for c in calls(sandbox, SCHEDULE)][0] == "lost_response"

    for endpoint in (UNSCHEDULE, DELETE):
        sandbox.queue_fault("sendgrid", "lost_response", endpoint)
    assert run(sandbox, tmp_path, lambda client: client.cancel_send(send.send_id)) is True
    run(sandbox, tmp_path, lambda client: client.delete_send(send.send_id))
    assert live_sends(sandbox) == []


def test_a_queued_429_waits_for_the_reset_and_succeeds(sandbox: SandboxServer, tmp_path: Path) -> None:
    sandbox.queue_fault("sendgrid", "429", CREATE, times=2)
    send = run(sandbox, tmp_path, schedule)
    assert [s["id"] for s in live_sends(sandbox)] == [send.send_id]
    assert [c["status"] for c in calls(sandbox, CREATE)] == [429, 429, 201]


def test_real_limit_exhaustion_is_waited_on(sandbox: SandboxServer, tmp_path: Path) -> None:
    sandbox.reset(**CLIENT_SANDBOX, limits={"sendgrid": [{"name": "list", "endpoints": [LIST], "max_requests": 2}]})

    async def body(client: HttpEmail) -> list[EmailSend | None]:
        send = await schedule(client)
        return [send] + [await client.find_send(marker=MARKER) for _ in range(5)]

    first, *found = run(sandbox, tmp_path, body)
    assert found == [first] * 5
    listed = calls(sandbox, LIST)
    assert any(c["rate_limited"] for c in listed) and sum(c["status"] == 200 for c in listed) == 6


def test_retry_after_reads_the_reset_epoch() -> None:
    request = httpx.Request("POST", "https://api.sendgrid.com/v3/marketing/singlesends")
    reset = time.time() + 5
    limited = httpx.Response(429, headers={"X-RateLimit-Reset": f"{reset:.0f}"}, request=request)
    hint = sendgrid_retry_after(limited)
    assert hint is not None and 0 < hint <= 6
    past = httpx.Response(429, headers={"X-RateLimit-Reset": "1392815263"}, request=request)
    assert sendgrid_retry_after(past) == 0.0
    assert sendgrid_retry_after(httpx.Response(429, headers={"Retry-After": "3"}, request=request)) == 3.0
    assert sendgrid_retry_after(httpx.Response(200, request=request)) is None


def test_a_revoked_key_is_permanent(sandbox: SandboxServer, tmp_path: Path) -> None:
    with pytest.raises(PermanentVendorError) as raised:
        run(sandbox, tmp_path, schedule, api_key="SG.revoked-0123456789")
    assert raised.value.status_code == 401 and "revoked" in raised.value.message
    assert "SG.revoked-0123456789" not in str(raised.value)
    assert len(calls(sandbox)) == 1 and live_sends(sandbox) == []


def test_cancel_after_the_send_time_fails_clearly(sandbox: SandboxServer, tmp_path: Path) -> None:
    soon = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + dt.timedelta(seconds=2)

    async def body(client: HttpEmail) -> EmailSend:
        send = await schedule(client, send_at=soon)
        for _ in range(200):  # until the vendor says it went out
            found = await client.find_send(marker=MARKER)
            if found is not None and found.status == "triggered":
                break
            await asyncio.sleep(0.05)
        with pytest.raises(AlreadySentError, match="already sent"):
            await client.cancel_send(send.send_id)
        return await schedule(client, send_at=soon)  # scheduling it again writes nothing

    send = run(sandbox, tmp_path, body)
    assert send.status == "triggered"
    assert [c["status"] for c in calls(sandbox, UNSCHEDULE)] == [400]
    assert len(calls(sandbox, SCHEDULE)) == 1


def test_find_follows_the_page_token(sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sendgrid, "PAGE_SIZE", 2)

    async def setup(client: HttpEmail) -> EmailSend:
        for n in range(4):
            await schedule(client, marker=f"[ca:other/{n}]")
        return await schedule(client)  # the fifth: on the third page

    last = run(sandbox, tmp_path, setup)
    before = len(calls(sandbox, LIST))
    assert run(sandbox, tmp_path, lambda client: client.find_send(marker=MARKER)) == last
    assert len(calls(sandbox, LIST)) - before == 3


def test_send_stats_are_per_day_and_follow_the_delivery_model(sandbox: SandboxServer, tmp_path: Path) -> None:
    soon = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + dt.timedelta(seconds=2)
    send_day = soon.date()

    async def body(client: HttpEmail) -> tuple[dict[str, int], dict[str, int], dict[str, int], dict[str, int]]:
        send = await schedule(client, send_at=soon)
        before = await client.send_stats(send.send_id, send_day)
        while (await client.find_send(marker=MARKER)).status != "triggered":  # type: ignore[union-attr]
            await asyncio.sleep(0.05)
        after = await client.send_stats(send.send_id, send_day)
        later = await client.send_stats(send.send_id, send_day + dt.timedelta(days=2))
        return before, after, await client.send_stats(send.send_id, send_day), later | {"id": send.send_id}  # type: ignore[dict-item]

    before, after, again, later = run(sandbox, tmp_path, body)
    assert set(before) == set(sendgrid.STAT_KEYS) and not any(before.values())
    send_id = later.pop("id")
    size = email_list_size(LIST_ID)
    assert after == again == email_day_stats(send_id, size, send_day, send_day) and after["delivered"] > 0
    assert later == email_day_stats(send_id, size, send_day, send_day + dt.timedelta(days=2))
    assert later["delivered"] == 0  # delivered on the send day only; opens keep arriving
    asked = [c["path"] for c in calls(sandbox, "GET /v3/marketing/stats/singlesends/{id}")]
    assert asked and all(send_id in p for p in asked)


def test_names_fit_sendgrid_and_end_with_the_marker_tag() -> None:
    name = send_name("x" * 300, MARKER)
    assert len(name) == sendgrid.NAME_MAX and name.endswith(marker_tag(MARKER))
    with pytest.raises(ValueError):
        sendgrid.iso_utc(dt.datetime(2031, 1, 4, 9, 30))  # naive: refused, never guessed


def test_local_backend_writes_the_message_and_follows_the_vendor_rules(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with EmailResource(sender_id="1").session(tmp_path) as client:
            assert isinstance(client, LocalEmail)
            send = await schedule(client)
            assert (send.status, send.send_at) == ("scheduled", "2031-01-04T09:30:00Z")
            assert await client.find_send(marker=MARKER) == send
            eml = (tmp_path / "email" / f"{send.send_id}.eml").read_text()
            assert "Subject: Meet Acme Q4" in eml and "text/html" in eml
            assert (tmp_path / "email" / f"{send.send_id}.html").read_text() == "<p>Hello</p>"
            assert await client.cancel_send(send.send_id) is True
            assert (await client.find_send(marker=MARKER)).status == "draft"  # type: ignore[union-attr]
            assert await client.delete_send(send.send_id) is True
            assert await client.delete_send(send.send_id) is False
            assert await client.cancel_send(send.send_id) is False
            assert not (tmp_path / "email" / f"{send.send_id}.eml").exists()

            past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)
            sent = await schedule(client, marker="[ca:sent]", send_at=past)
            assert sent.status == "triggered"
            today = dt.datetime.now(dt.timezone.utc).date()
            stats = await client.send_stats(sent.send_id, today)
            assert stats == email_day_stats(sent.send_id, email_list_size(LIST_ID), today, today) and stats["delivered"] > 0
            draft = await schedule(client, marker="[ca:later]")
            assert not any((await client.send_stats(draft.send_id, today)).values())  # not sent yet: zeros
            with pytest.raises(AlreadySentError):
                await client.cancel_send(sent.send_id)

    asyncio.run(scenario())
