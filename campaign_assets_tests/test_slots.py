"""The slot board holds a service's cap across processes, on SQLite and Postgres."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from campaign_assets.services.slots import SlotBoard, service_slots

from campaign_assets_tests.support.processes import wait_for

PROJECT = Path(__file__).resolve().parents[1]


@pytest.fixture(params=["sqlite", "postgres"])
def url(request, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'slots.sqlite'}"
    return request.getfixturevalue("pg_url")


def test_the_cap_holds_across_independent_boards(url: str) -> None:
    cap, workers, calls_each = 3, 6, 5
    in_flight = peak = done = 0
    errors: list[BaseException] = []
    lock = threading.Lock()
    filled = threading.Event()  # set once `cap` calls hold a slot together: the cap is reached

    def worker() -> None:
        board = SlotBoard(url, poll_s=0.002, max_poll_s=0.01)  # its own engine, as another process would have

        async def one_call() -> None:
            nonlocal in_flight, peak, done
            async with board.hold("asana", cap):
                with lock:
                    in_flight += 1
                    peak = max(peak, in_flight)
                    if in_flight == cap:
                        filled.set()
                # The first holders wait for the cap to fill (however slow the machine), then all run on.
                assert await asyncio.to_thread(filled.wait, 60), "the cap never filled"
                await asyncio.sleep(0.005)
                with lock:
                    in_flight -= 1
                    done += 1

        async def calls() -> None:
            await asyncio.gather(*(one_call() for _ in range(calls_each)))

        try:
            asyncio.run(calls())
        except BaseException as exc:  # surfaced below: a dead worker must fail the test
            errors.append(exc)
        finally:
            board.dispose()

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors and done == workers * calls_each
    assert peak == cap  # reached, never exceeded
    board = SlotBoard(url)
    assert board.in_use("asana") == 0
    board.dispose()


def test_an_expired_lease_is_reclaimed_and_services_are_independent(url: str) -> None:
    clock = Clock()  # one injected clock: the lease expires when the test says, not when the machine does
    dead = SlotBoard(url, lease_s=0.2, clock=clock)
    assert dead.try_claim("images", 1) is not None  # a process that dies holding its slot
    alive = SlotBoard(url, clock=clock)
    assert alive.try_claim("images", 1) is None
    assert alive.try_claim("canva", 1) is not None
    clock.now += 0.1
    assert alive.try_claim("images", 1) is None  # within the lease
    clock.now += 0.2
    assert alive.try_claim("images", 1) is not None  # past it
    dead.dispose()
    alive.dispose()


def test_services_sharing_a_vendor_share_one_cap() -> None:
    from campaign_assets.resources import build_resources

    env = {"LLM_SHARED_SLOTS": "openai:16", "IMAGES_SHARED_SLOTS": "openai:16", "CAMPAIGN_CAPS_PROFILE": "seed"}
    resources = build_resources(env)
    assert resources["llm"].slot_key == resources["images"].slot_key == ("openai", 16)
    assert resources["docs"].slot_key == ("docs", 3)


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from campaign_assets.services.slots import SlotBoard

    board = SlotBoard(sys.argv[1])  # the default lease: far longer than this test waits
    assert board.try_claim("images", 1) is not None
    Path(sys.argv[2]).write_text("held")
    time.sleep(600)
    """
)


def test_a_killed_holders_slot_is_reclaimed_on_the_next_claim(url: str, tmp_path: Path) -> None:
    marker = tmp_path / "held"
    env = dict(os.environ, PYTHONPATH=str(PROJECT))
    child = subprocess.Popen([sys.executable, "-c", HOLDER, url, str(marker)], env=env, cwd=PROJECT)
    try:
        def claimed() -> bool:
            assert child.poll() is None, f"holder exited with {child.returncode}"
            return marker.exists()

        wait_for("the holder's claim", claimed, timeout=60, interval=0.01)
        clock = Clock()  # frozen: the holder's lease cannot expire here
        board = SlotBoard(url, clock=clock)
        assert board.try_claim("images", 1) is None  # alive: its slot is its own
        child.send_signal(signal.SIGKILL)
        child.wait(30)
        holder = board.try_claim("images", 1)  # dead: reclaimed at once
        assert holder is not None and board.in_use("images") == 1
        board.release("images", holder)
        board.dispose()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(30)


def test_the_heartbeat_keeps_a_long_calls_slot(url: str) -> None:
    clock = Clock()
    board = SlotBoard(url, clock=clock, heartbeat_s=0.005)
    rival = SlotBoard(url, clock=clock)
    threads: set[str] = set()
    original = board.try_claim

    def try_claim(service: str, cap: int, **kw):
        threads.add(threading.current_thread().name)
        return original(service, cap, **kw)

    board.try_claim = try_claim  # type: ignore[method-assign]

    def expires_at() -> float:
        with board.engine.connect() as conn:
            return conn.execute(
                sa.select(service_slots.c.expires_at).where(service_slots.c.service == "canva", service_slots.c.holder.is_not(None))
            ).scalar_one()

    async def long_call() -> None:
        async with board.hold("canva", 1):
            for _ in range(3):  # three leases pass during the call
                clock.now += board.lease_s
                deadline = time.monotonic() + 30
                while expires_at() <= clock.now:  # until the heartbeat has renewed it
                    assert time.monotonic() < deadline, "the heartbeat never renewed the slot"
                    await asyncio.sleep(0.005)
                assert rival.try_claim("canva", 1) is None
                assert rival.in_use("canva") == 1

    asyncio.run(long_call())
    assert threads and threading.main_thread().name not in threads  # claims ran off the event loop
    assert rival.in_use("canva") == 0
    assert rival.try_claim("canva", 1) is not None
    board.dispose()
    rival.dispose()


def test_a_slot_claimed_after_its_waiter_was_cancelled_is_released(url: str) -> None:
    board = SlotBoard(url)
    gate, claiming = threading.Event(), threading.Event()
    original = board.try_claim

    def slow_claim(service: str, cap: int, **kw):
        claiming.set()
        gate.wait(30)
        return original(service, cap, **kw)

    board.try_claim = slow_claim  # type: ignore[method-assign]

    async def scenario() -> None:
        async def waiter() -> None:
            async with board.hold("docs", 1):
                raise AssertionError("never entered")

        task = asyncio.create_task(waiter())
        assert await asyncio.to_thread(claiming.wait, 30)  # the claim is under way in its thread
        task.cancel()
        gate.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0)

    asyncio.run(scenario())
    # Well within the 30 s lease: released, not expired.
    wait_for("the late claim's release", lambda: board.in_use("docs") == 0, timeout=10, interval=0.01)
    board.dispose()


def test_one_waiter_per_service_polls_the_database(url: str) -> None:
    """A step's calls queued at a full cap: only the first of them polls
    (claims, and now and then looks for dead holders); the rest wait behind
    it in order, so a saturated vendor does not multiply database work by the
    calls waiting. Each still gets its slot when the holder lets go."""
    board, holder_board = SlotBoard(url, poll_s=0.002, max_poll_s=0.005), SlotBoard(url)
    held = holder_board.try_claim("llm", 1)
    assert held is not None
    polling: set[int] = set()  # callers inside a claim at once
    most = 0
    claims = 0
    lock = threading.Lock()
    original = board.try_claim

    def try_claim(service: str, cap: int, **kw):
        nonlocal most, claims
        with lock:
            polling.add(threading.get_ident())
            claims += 1
            most = max(most, len(polling))
        try:
            return original(service, cap, **kw)
        finally:
            with lock:
                polling.discard(threading.get_ident())

    board.try_claim = try_claim  # type: ignore[method-assign]
    order: list[int] = []

    async def scenario() -> None:
        async def call(i: int) -> None:
            async with board.hold("llm", 1):
                order.append(i)
                await asyncio.sleep(0)

        tasks = [asyncio.create_task(call(i)) for i in range(8)]
        while claims < 20:  # the first waiter polls the full cap a while
            await asyncio.sleep(0.005)
        assert not order
        holder_board.release("llm", held)
        await asyncio.gather(*tasks)

    asyncio.run(scenario())
    assert most == 1  # never two of the waiters polling at once
    assert order == list(range(8))  # first come, first served
    assert board.in_use("llm") == 0
    board.dispose()
    holder_board.dispose()
