"""One writer per item (DESIGN.md §4): claims, waiting writers, dead owners, on SQLite and Postgres."""

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

from campaign_assets.core.items import Attempt, Item, ItemReport, VendorRef, run_items
from campaign_assets.core.claims import claim_token, owner_is_dead, parse_token
from campaign_assets.ledger import Ledger, Scope, ledger_items

SCOPE = Scope("acme", "q4-product-launch", "project_tasks")
PROJECT = Path(__file__).resolve().parents[1]
FAST = dict(poll_s=0.005, max_poll_s=0.02)


@pytest.fixture(params=["sqlite", "postgres"])
def url(request, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    return request.getfixturevalue("pg_url")


class Clock:
    """An injected epoch clock: leases expire when the test says so."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class SharedVendor:
    """One vendor seen by every writer (threads): counts creates per marker."""

    def __init__(self, objects: dict[str, str] | None = None) -> None:
        self.lock = threading.Lock()
        self.objects: dict[str, str] = dict(objects or {})
        self.calls: list[tuple[str, str, bool]] = []
        self.gate: threading.Event | None = None

    async def create(self, item: Item, attempt: Attempt) -> VendorRef:
        if self.gate is not None:  # hold the create open until the other writer met the claim
            assert await asyncio.to_thread(self.gate.wait, 30), "the other writer never met the claim"
        with self.lock:
            if attempt.recovering and attempt.marker in self.objects:
                self.calls.append(("adopt", item.key, attempt.recovering))
                return VendorRef(attempt.marker, data={"content": self.objects[attempt.marker]})
            self.calls.append(("create", item.key, attempt.recovering))
            self.objects[attempt.marker] = item.content["text"]
        return VendorRef(attempt.marker, data={"content": item.content["text"]})

    async def update(self, item: Item, ref: VendorRef, attempt: Attempt) -> VendorRef:
        if self.gate is not None:
            assert await asyncio.to_thread(self.gate.wait, 30), "the other writer never met the claim"
        with self.lock:
            self.calls.append(("update", item.key, attempt.recovering))
            self.objects[ref.vendor_id] = item.content["text"]
        return VendorRef(ref.vendor_id, data={"content": item.content["text"]})

    def count(self, kind: str) -> dict[str, int]:
        with self.lock:
            out: dict[str, int] = {}
            for k, key, _ in self.calls:
                if k == kind:
                    out[key] = out.get(key, 0) + 1
            return out


class WatchedLedger(Ledger):
    """A ledger that tells the test when its writer met someone else's live claim."""

    def __init__(self, url: str, met: threading.Event, **kw) -> None:
        super().__init__(url, **kw)
        self.met = met
        self.polls = 0

    def claim_is_live(self, row, owner=None) -> bool:
        live = super().claim_is_live(row, owner)
        if live:
            self.met.set()
        return live

    def claim(self, *args, **kw):
        outcome = super().claim(*args, **kw)
        if outcome == "busy":
            self.met.set()
        return outcome

    def row(self, scope, item_key):
        self.polls += 1
        return super().row(scope, item_key)


def items(*pairs: tuple[str, str]) -> list[Item]:
    return [Item(k, {"text": t}) for k, t in pairs]


def two_writers(url: str, vendor: SharedVendor, work: list[Item]) -> list[ItemReport]:
    met = threading.Event()
    vendor.gate = met
    start = threading.Barrier(2)
    reports: list[ItemReport] = []
    errors: list[BaseException] = []

    def writer() -> None:
        with WatchedLedger(url, met, **FAST) as ledger:
            try:
                start.wait(30)
                reports.append(
                    asyncio.run(run_items(ledger, SCOPE, "asana", work, create=vendor.create, update=vendor.update))
                )
            except BaseException as exc:  # surfaced below
                errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert len(reports) == 2
    return reports


def test_two_writers_at_once_create_each_item_exactly_once(url: str) -> None:
    Ledger(url).dispose()  # the schema, as the first step process would make it
    vendor = SharedVendor()
    work = items(("a", "1"), ("b", "2"), ("c", "3"))
    reports = two_writers(url, vendor, work)

    assert vendor.count("create") == {"a": 1, "b": 1, "c": 1}
    for key in "abc":
        actions = sorted(r.action for report in reports for r in report.results if r.key == key)
        assert actions == ["created", "reused"], (key, actions)
        refs = {report.ref(key).vendor_id for report in reports}
        assert refs == {SCOPE.marker(key)}
    with Ledger(url) as ledger:
        rows = ledger.rows(SCOPE)
        assert {k: r.status for k, r in rows.items()} == {"a": "created", "b": "created", "c": "created"}
        assert all(r.owner is None and r.lease_expires_at is None for r in rows.values())  # released
        assert [a["action"] for a in ledger.audit(SCOPE.organization, SCOPE.campaign)].count("created") == 3


def test_two_writers_at_once_update_a_changed_item_once(url: str) -> None:
    vendor = SharedVendor()
    with Ledger(url) as ledger:
        asyncio.run(run_items(ledger, SCOPE, "asana", items(("a", "1")), create=vendor.create, update=vendor.update))
    reports = two_writers(url, vendor, items(("a", "1*")))
    assert vendor.count("update") == {"a": 1}
    assert sorted(r.action for report in reports for r in report.results) == ["reused", "updated"]
    with Ledger(url) as ledger:
        row = ledger.rows(SCOPE)["a"]
        assert row.status == "created" and row.content_hash == Item("a", {"text": "1*"}).content_hash
        assert row.owner is None


def test_a_waiting_writer_retries_what_the_owner_failed(url: str) -> None:
    clock = Clock()
    with Ledger(url, clock=clock, **FAST) as first, Ledger(url, clock=clock, **FAST) as second:
        owner = first.new_owner()
        assert first.claim(SCOPE, "a", "asana", "h", owner, None) == "won"
        assert second.claim(SCOPE, "a", "asana", "h", second.new_owner(), first.row(SCOPE, "a")) == "busy"
        vendor = SharedVendor()

        async def scenario() -> ItemReport:
            task = asyncio.create_task(
                run_items(second, SCOPE, "asana", items(("a", "1")), create=vendor.create, update=vendor.update)
            )
            await _until(lambda: second.polls_seen(), task)
            first.record_failure(SCOPE, "a", "asana", "h", "vendor refused", owner)
            return await asyncio.wait_for(task, 30)

        second.polls_seen = _poll_counter(second)  # type: ignore[attr-defined]
        report = asyncio.run(scenario())
    assert report.counts["created"] == 1
    assert vendor.calls == [("create", "a", True)]  # failed before: recovering


def _poll_counter(ledger: Ledger):
    """Count ``row`` reads (a waiting writer's polls) on an ordinary ledger."""
    calls = {"n": 0}
    original = ledger.row

    def row(scope, item_key):
        calls["n"] += 1
        return original(scope, item_key)

    ledger.row = row  # type: ignore[method-assign]
    return lambda: calls["n"] >= 2


async def _until(condition, task: asyncio.Task, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert not task.done(), task.result()
        assert time.monotonic() < deadline, "condition never met"
        await asyncio.sleep(0.005)


CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from campaign_assets.core.items import Item, VendorRef, run_items
    from campaign_assets.ledger import Ledger, Scope

    url, folder = sys.argv[1], Path(sys.argv[2])

    async def create(item, attempt):
        # The vendor object commits (keyed by its marker), then the process hangs.
        (folder / "object").write_text(attempt.marker)
        (folder / "claimed").write_text("yes")
        await asyncio.Event().wait()

    ledger = Ledger(url)
    asyncio.run(run_items(ledger, Scope("acme", "q4-product-launch", "project_tasks"), "asana",
                          [Item("a", {"text": "1"})], create=create))
    """
)


def _kill_owner_mid_item(url: str, folder: Path) -> tuple[int, str]:
    """A child process claims item "a", commits its vendor object, is SIGKILLed: (pid, marker)."""
    env = dict(os.environ, PYTHONPATH=str(PROJECT))
    child = subprocess.Popen([sys.executable, "-c", CHILD, url, str(folder)], env=env, cwd=PROJECT)
    try:
        deadline = time.monotonic() + 60
        while not (folder / "claimed").exists():
            assert child.poll() is None, f"child exited with {child.returncode}"
            assert time.monotonic() < deadline, "child never claimed the item"
            time.sleep(0.01)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    return child.pid, (folder / "object").read_text()


def test_a_dead_owner_on_this_host_is_taken_over_at_once_and_its_object_adopted(url: str, tmp_path: Path) -> None:
    pid, marker = _kill_owner_mid_item(url, tmp_path)
    clock = Clock()  # frozen: the dead owner's 30 s lease never expires here
    with Ledger(url, clock=clock, **FAST) as ledger:
        row = ledger.rows(SCOPE)["a"]
        assert row.status == "pending" and parse_token(row.owner) == (os.uname().nodename, pid)
        assert row.lease_expires_at > clock()
        assert not ledger.claim_is_live(row)  # the pid is gone
        vendor = SharedVendor({marker: "1"})
        report = asyncio.run(run_items(ledger, SCOPE, "asana", items(("a", "1")), create=vendor.create))
        assert report.counts["created"] == 1
        assert vendor.calls == [("adopt", "a", True)] and len(vendor.objects) == 1
        after = ledger.rows(SCOPE)["a"]
        assert after.status == "created" and after.vendor_id == marker and after.owner is None


def test_a_silent_owner_on_another_host_is_taken_over_after_its_lease(url: str) -> None:
    clock = Clock()
    ghost = f"run-1/some-other-host:{os.getpid()}:abcdef"
    with Ledger(url, clock=clock, **FAST) as ledger:
        assert ledger.claim(SCOPE, "a", "asana", Item("a", {"text": "1"}).content_hash, ghost, None) == "won"
        vendor = SharedVendor({SCOPE.marker("a"): "1"})  # it committed its object, then went silent

        async def scenario() -> ItemReport:
            polls = _poll_counter(ledger)
            task = asyncio.create_task(run_items(ledger, SCOPE, "asana", items(("a", "1")), create=vendor.create))
            await _until(polls, task)
            assert vendor.calls == []  # the live claim holds the second writer off
            clock.now += ledger.lease_s + 1  # the lease runs out (no heartbeat from the other host)
            return await asyncio.wait_for(task, 30)

        report = asyncio.run(scenario())
        assert report.counts["created"] == 1
        assert vendor.calls == [("adopt", "a", True)] and len(vendor.objects) == 1
        assert ledger.rows(SCOPE)["a"].owner is None


def test_the_heartbeat_keeps_a_long_create_claimed(url: str) -> None:
    clock = Clock()
    with Ledger(url, clock=clock, heartbeat_s=0.005, **FAST) as ledger, Ledger(url, clock=clock, **FAST) as other:
        started = threading.Event()
        finish = asyncio.Event()

        async def create(item: Item, attempt: Attempt) -> VendorRef:
            started.set()
            await finish.wait()
            return VendorRef("v1")

        async def scenario() -> ItemReport:
            task = asyncio.create_task(run_items(ledger, SCOPE, "asana", items(("a", "1")), create=create))
            await _until(started.is_set, task)
            for _ in range(3):  # three leases pass while the create runs
                clock.now += ledger.lease_s
                await _until(lambda: (ledger.row(SCOPE, "a").lease_expires_at or 0) > clock.now, task)
                assert other.claim_is_live(other.row(SCOPE, "a"))
                assert other.claim(SCOPE, "a", "asana", "x", other.new_owner(), other.row(SCOPE, "a")) == "busy"
            finish.set()
            return await asyncio.wait_for(task, 30)

        report = asyncio.run(scenario())
        assert report.counts["created"] == 1 and ledger.rows(SCOPE)["a"].owner is None


def test_claim_tokens_and_liveness() -> None:
    token = claim_token("run-7")
    host, pid = parse_token(token)
    assert token.startswith("run-7/") and pid == os.getpid()
    assert claim_token() != claim_token()
    assert not owner_is_dead(token)  # this very process
    assert not owner_is_dead(f"elsewhere:{os.getpid() + 1}:x")  # another host: never provably dead
    assert parse_token("garbage") is None and not owner_is_dead(None)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(30)
    assert owner_is_dead(f"{host}:{child.pid}:x")


def test_a_claim_is_a_compare_and_swap(url: str) -> None:
    clock = Clock()
    with Ledger(url, clock=clock) as ledger:
        a, b = ledger.new_owner(), ledger.new_owner()
        assert ledger.claim(SCOPE, "k", "asana", "h", a, None) == "won"
        assert ledger.claim(SCOPE, "k", "asana", "h", b, None) == "changed"  # the row exists now
        seen = ledger.row(SCOPE, "k")
        assert ledger.claim(SCOPE, "k", "asana", "h", b, seen) == "busy"
        ledger.record_success(SCOPE, "k", "asana", action="created", vendor_id="v", url=None, content_hash="h",
                              payload={}, owner=a)
        assert ledger.claim(SCOPE, "k", "asana", "h2", b, seen) == "changed"  # seen pending, now created
        assert ledger.renew(SCOPE, ["k"], a) == 0  # released with the outcome
        with ledger.engine.connect() as conn:
            assert conn.execute(sa.select(ledger_items.c.owner)).scalar_one() is None
