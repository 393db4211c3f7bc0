"""The adaptive concurrency limiter (AIMD): the cap holds, halves on a 429 burst, recovers."""

from __future__ import annotations

import asyncio

import pytest

from campaign_assets.services.http import (
    AdaptiveLimiter,
    HttpSession,
)
from campaign_assets_tests.http_layer.vendor import (
    RecordingSleep,
    Server,
    reply,
    run,
    session,
)

# --------------------------------------------------------------------------------------
# Concurrency: the adaptive limiter
# --------------------------------------------------------------------------------------


def test_limiter_never_exceeds_cap_under_50_concurrent_tasks(server: Server) -> None:
    server.vendor.script("GET", "/work", then=reply(200, {"ok": True}, delay=0.02))

    async def main() -> HttpSession:
        async with session(server, cap=5) as http:
            results = await asyncio.gather(*(http.json("GET", "/work") for _ in range(50)))
            assert results == [{"ok": True}] * 50
            assert http.limiter.in_flight == 0
            return http

    http = run(main())
    assert server.vendor.max_in_flight <= 5
    assert http.limiter.max_in_flight_seen == 5 and http.stats.max_in_flight == 5
    assert http.stats.calls == 50 and http.stats.wall_seconds > 0
    assert http.stats.seconds >= http.stats.wall_seconds  # 5 at a time: summed time exceeds the span


def test_limiter_halves_once_on_a_429_burst_then_recovers(server: Server) -> None:
    limited = reply(429, {}, headers={"Retry-After": "0.02"})
    server.vendor.script("GET", "/burst", *([limited] * 8), then=reply(200, {"ok": True}, delay=0.005))

    async def main() -> tuple[HttpSession, RecordingSleep]:
        holder: dict[str, HttpSession] = {}
        sleep = RecordingSleep(probe=lambda: holder["http"].limiter.limit)
        async with session(server, cap=8, sleep=sleep) as http:
            holder["http"] = http
            await asyncio.gather(*(http.request("GET", "/burst") for _ in range(40)))
            return http, sleep

    http, sleep = run(main())
    # The 8 requests in flight all got 429: one signal, one halving (same epoch).
    assert sleep.probes and min(sleep.probes) == 4
    assert http.limiter.decreases == 1
    assert server.vendor.max_in_flight <= 8
    # 40 successes are more than the 4+5+6+7 needed to climb back to the cap.
    assert http.limiter.limit == 8 and http.limiter.increases == 4
    assert http.stats.rate_limited == 8 and http.stats.calls == 48


def test_no_limiter_slot_is_held_while_sleeping(server: Server) -> None:
    """A backs off after a 429 and stays in backoff until B, with the only slot (cap 1), has finished."""
    server.vendor.script("GET", "/slow-429", reply(429, {}, headers={"Retry-After": "30"}), then=reply(200, {}))
    server.vendor.script("GET", "/fast", then=reply(200, {}))
    finished: list[str] = []

    async def main() -> None:
        backing_off, b_done = asyncio.Event(), asyncio.Event()

        async def held_sleep(delay: float) -> None:  # A's backoff ends only once B is done
            backing_off.set()
            await b_done.wait()

        async with session(server, cap=1, sleep=held_sleep) as http:
            async def a() -> None:
                await http.request("GET", "/slow-429")
                finished.append("A")

            async def b() -> None:
                await backing_off.wait()
                assert http.limiter.in_flight == 0  # A holds no slot while it sleeps
                await http.request("GET", "/fast")
                finished.append("B")
                b_done.set()

            await asyncio.gather(a(), b())

    run(main())
    assert finished == ["B", "A"]
    assert server.vendor.count("GET", "/slow-429") == 2


def test_adaptive_limiter_aimd_unit() -> None:
    limiter = AdaptiveLimiter(8)
    limiter.on_rate_limited(limiter.epoch)
    assert limiter.limit == 4
    limiter.on_rate_limited(0)  # stale: from a request that started before the halving
    assert limiter.limit == 4
    limiter.on_rate_limited()  # no epoch: always counts
    assert limiter.limit == 2
    for _ in range(3):
        limiter.on_rate_limited()
    assert limiter.limit == 1  # never below 1
    for expected in (2, 3, 4):
        for _ in range(expected - 1):
            limiter.on_success()
        assert limiter.limit == expected
    limiter = AdaptiveLimiter(3, increase_after=1)
    limiter.on_rate_limited()
    limiter.on_success(), limiter.on_success(), limiter.on_success()
    assert limiter.limit == 3  # capped
    with pytest.raises(ValueError):
        AdaptiveLimiter(0)


def test_adaptive_limiter_cancellation_does_not_leak_slots() -> None:
    async def main() -> None:
        limiter = AdaptiveLimiter(1)
        await limiter.acquire()
        waiter = asyncio.create_task(limiter.acquire())
        await asyncio.sleep(0)
        waiter.cancel()  # cancelled while waiting
        with pytest.raises(asyncio.CancelledError):
            await waiter
        granted = asyncio.create_task(limiter.acquire())
        await asyncio.sleep(0)
        limiter.release()  # grants the slot to `granted`...
        granted.cancel()  # ...which is cancelled before it resumes: it must hand the slot back
        with pytest.raises(asyncio.CancelledError):
            await granted
        assert limiter.in_flight == 0
        async with limiter:
            assert limiter.in_flight == 1
        assert limiter.in_flight == 0

    run(main())


def test_limiter_can_be_shared_between_sessions(server: Server) -> None:
    server.vendor.script("GET", "/work", then=reply(200, {}, delay=0.01))

    async def main() -> AdaptiveLimiter:
        shared = AdaptiveLimiter(3)
        async with session(server, limiter=shared) as a, session(server, limiter=shared) as b:
            await asyncio.gather(*(s.request("GET", "/work") for s in [a, b] * 10))
        return shared

    assert run(main()).max_in_flight_seen == 3
    assert server.vendor.max_in_flight <= 3
