"""The slot board holds a service's cap across processes, on SQLite and Postgres."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from campaign_assets.services.slots import SlotBoard


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

    def worker() -> None:
        board = SlotBoard(url, poll_s=0.002, max_poll_s=0.01)  # its own engine, as another process would have

        async def one_call() -> None:
            nonlocal in_flight, peak, done
            async with board.hold("asana", cap):
                with lock:
                    in_flight += 1
                    peak = max(peak, in_flight)
                await asyncio.sleep(0.01)
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
    dead = SlotBoard(url, lease_s=0.2)
    assert dead.try_claim("images", 1) is not None  # a process that dies holding its slot
    alive = SlotBoard(url)
    assert alive.try_claim("images", 1) is None
    assert alive.try_claim("canva", 1) is not None
    time.sleep(0.3)
    assert alive.try_claim("images", 1) is not None
    dead.dispose()
    alive.dispose()


def test_services_sharing_a_vendor_share_one_cap() -> None:
    from campaign_assets.resources import build_resources

    env = {"LLM_SHARED_SLOTS": "openai:16", "IMAGES_SHARED_SLOTS": "openai:16"}
    resources = build_resources(env)
    assert resources["llm"].slot_key == resources["images"].slot_key == ("openai", 16)
    assert resources["docs"].slot_key == ("docs", 3)
