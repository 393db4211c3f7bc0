"""The Buffer (social) clients: queued updates against the vendor sandbox, and the local backend."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from campaign_assets.logic.delivery import buffer_statistics
from campaign_assets.sandbox.server import SandboxServer
from campaign_assets.services import buffer
from campaign_assets.services.buffer import HttpSocial, LocalSocial, SocialPost, SocialResource
from campaign_assets.services.http import PermanentVendorError
from campaign_assets_tests.conftest import CLIENT_SANDBOX
from campaign_assets_tests.http_doubles import GENEROUS_TIMEOUT_S

PROFILE = "4eb854340acb04e870000010"
MARKER = "[ca:acme/q4-product-launch/social_posts/linkedin-1]"
TEXT = "Acme Q4 is here: faster onboarding for IT teams. https://acme.example/q4"
AT = dt.datetime(2031, 1, 4, 9, 30, tzinfo=dt.timezone.utc)
CREATE = "POST /updates/create.json"
PENDING = "GET /profiles/{id}/updates/pending.json"
DESTROY = "POST /updates/{id}/destroy.json"


def resource(sandbox: SandboxServer, **overrides: Any) -> SocialResource:
    config: dict[str, Any] = dict(
        base_url=f"{sandbox.url}/buffer/1", api_key="sandbox-buffer-token", backoff_base_s=0.001,
        timeout_s=GENEROUS_TIMEOUT_S, rate_limit_window_s=60 * CLIENT_SANDBOX["scale"],  # the sandbox's minute
    )
    return SocialResource(**(config | overrides))


def live_updates(sandbox: SandboxServer) -> list[dict[str, Any]]:
    objects = sandbox.state()["vendors"]["buffer"]["objects"]
    return [o["data"] for o in objects if o["kind"] == "update" and not o["deleted"]]


def calls(sandbox: SandboxServer, endpoint: str | None = None) -> list[dict[str, Any]]:
    return [c for c in sandbox.state()["calls"] if c["vendor"] == "buffer" and endpoint in (None, c["endpoint"])]


def run(sandbox: SandboxServer, tmp_path: Path, body: Any, **overrides: Any) -> Any:
    async def scenario() -> Any:
        async with resource(sandbox, **overrides).session(tmp_path) as client:
            assert isinstance(client, HttpSocial)
            return await body(client)

    return asyncio.run(scenario())


def post(client: Any, text: str = TEXT, at: dt.datetime = AT, marker: str = MARKER) -> Any:
    return client.schedule_post(PROFILE, text, at, marker=marker)


def test_schedule_find_and_delete(sandbox: SandboxServer, tmp_path: Path) -> None:
    async def body(client: HttpSocial) -> tuple[SocialPost, SocialPost | None, SocialPost | None, SocialPost | None]:
        made = await post(client)
        return (
            made,
            await client.find_post(PROFILE, TEXT, AT),
            await client.find_post(PROFILE, TEXT, AT + dt.timedelta(minutes=1)),  # same text, other time
            await client.find_post(PROFILE, TEXT + "!", AT),
        )

    made, found, other_time, other_text = run(sandbox, tmp_path, body)
    assert (made.profile_id, made.text, made.scheduled_at, made.status) == (PROFILE, TEXT, "2031-01-04T09:30:00Z", "buffer")
    assert found == made and other_time is None and other_text is None
    [stored] = live_updates(sandbox)
    assert stored["text"] == TEXT and MARKER not in stored["text"]  # the marker never reaches followers
    assert stored["due_at"] == int(AT.timestamp())

    async def teardown(client: HttpSocial) -> tuple[bool, bool]:
        return await client.delete_post(made.post_id), await client.delete_post(made.post_id)

    assert run(sandbox, tmp_path, teardown) == (True, False)
    assert live_updates(sandbox) == []


def test_lost_responses_on_every_write_leave_exactly_one_post(sandbox: SandboxServer, tmp_path: Path) -> None:
    sandbox.queue_fault("buffer", "lost_response", CREATE)
    made = run(sandbox, tmp_path, post)
    assert [u["id"] for u in live_updates(sandbox)] == [made.post_id]
    assert len(calls(sandbox, CREATE)) == 1  # found among the pending updates, not posted again

    sandbox.queue_fault("buffer", "lost_response", DESTROY)
    run(sandbox, tmp_path, lambda client: client.delete_post(made.post_id))
    assert live_updates(sandbox) == []


def test_a_duplicate_refusal_adopts_the_earlier_post(sandbox: SandboxServer, tmp_path: Path) -> None:
    first = run(sandbox, tmp_path, post)
    assert run(sandbox, tmp_path, post) == first  # Buffer refuses the duplicate (1025): the earlier post is it
    assert [c["status"] for c in calls(sandbox, CREATE)] == [200, 400]
    with pytest.raises(PermanentVendorError, match="1025"):  # the same text at another time is a real conflict
        run(sandbox, tmp_path, lambda client: post(client, at=AT + dt.timedelta(hours=1)))
    assert len(live_updates(sandbox)) == 1


def test_a_queued_429_is_waited_on(sandbox: SandboxServer, tmp_path: Path) -> None:
    sandbox.queue_fault("buffer", "429", CREATE, times=2)
    made = run(sandbox, tmp_path, post)
    assert [u["id"] for u in live_updates(sandbox)] == [made.post_id]
    assert [c["status"] for c in calls(sandbox, CREATE)] == [429, 429, 200]


def test_the_per_token_limit_is_waited_on(sandbox: SandboxServer, tmp_path: Path) -> None:
    sandbox.reset(**CLIENT_SANDBOX, limits={"buffer": [{"name": "requests per token", "max_requests": 3}]})

    async def body(client: HttpSocial) -> list[SocialPost]:
        return [await post(client, text=f"{TEXT} #{n}", marker=f"[ca:p{n}]") for n in range(6)]

    made = run(sandbox, tmp_path, body)
    assert sorted(u["id"] for u in live_updates(sandbox)) == sorted(p.post_id for p in made)
    assert any(c["rate_limited"] for c in calls(sandbox)) and len(made) == 6


def test_a_revoked_token_is_permanent(sandbox: SandboxServer, tmp_path: Path) -> None:
    with pytest.raises(PermanentVendorError) as raised:
        run(sandbox, tmp_path, post, api_key="revoked-buffer-0123456789")
    assert raised.value.status_code == 401
    assert "revoked-buffer-0123456789" not in str(raised.value)
    assert len(calls(sandbox)) == 1 and live_updates(sandbox) == []


def test_find_reads_every_page(sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(buffer, "PAGE_SIZE", 2)

    async def setup(client: HttpSocial) -> SocialPost:
        for n in range(4):
            await post(client, text=f"earlier {n}", at=AT - dt.timedelta(hours=n + 1), marker=f"[ca:e{n}]")
        return await post(client)  # latest due: last in the queue, on the third page

    made = run(sandbox, tmp_path, setup)
    before = len(calls(sandbox, PENDING))
    assert run(sandbox, tmp_path, lambda client: client.find_post(PROFILE, TEXT, AT)) == made
    assert len(calls(sandbox, PENDING)) - before == 3


def test_post_stats_are_the_delivery_models_lifetime_so_far(sandbox: SandboxServer, tmp_path: Path) -> None:
    async def body(client: HttpSocial) -> tuple[str, dict[str, int], dict[str, int]]:
        made = await post(client)
        return made.post_id, await client.post_stats(made.post_id), await client.post_stats(made.post_id)

    post_id, first, second = run(sandbox, tmp_path, body)
    assert first == second and set(first) == set(buffer.STAT_KEYS)
    today = dt.datetime.now(dt.timezone.utc).date()
    assert first == buffer_statistics(post_id, "", AT.date(), today)  # AT is in the future: nothing yet
    assert not any(first.values())


def test_local_backend(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with SocialResource().session(tmp_path) as client:
            assert isinstance(client, LocalSocial)
            made = await post(client)
            assert (made.text, made.scheduled_at) == (TEXT, "2031-01-04T09:30:00Z")
            assert await post(client) == made  # same marker: the same record
            assert await client.find_post(PROFILE, TEXT, AT) == made
            assert await client.find_post(PROFILE, TEXT, AT + dt.timedelta(minutes=1)) is None
            assert len(list((tmp_path / "social" / "posts").glob("*.json"))) == 1
            stats = await client.post_stats(made.post_id)
            assert stats == await client.post_stats(made.post_id) and set(stats) == set(buffer.STAT_KEYS)
            assert await client.delete_post(made.post_id) is True
            assert await client.delete_post(made.post_id) is False
            with pytest.raises(ValueError):
                await client.schedule_post(PROFILE, TEXT, dt.datetime(2031, 1, 4), marker=MARKER)

    asyncio.run(scenario())
