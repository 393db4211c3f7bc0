"""The ledger and the item runner, on SQLite and on the machine's Postgres."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from campaign_assets.core.items import Attempt, Item, VendorRef, run_items
from campaign_assets.core.db import db_retry, is_transient_db_error
from campaign_assets.ledger import Ledger, Scope
from campaign_assets.resources import LedgerResource

SCOPE = Scope("acme", "q4-product-launch", "project_tasks")


@pytest.fixture(params=["sqlite", "postgres"])
def ledger(request, tmp_path: Path) -> Ledger:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    else:
        url = request.getfixturevalue("pg_url")
    store = Ledger(url)
    yield store
    store.dispose()


class Vendor:
    """A vendor double that records every create/update and can fail or lose responses."""

    def __init__(self, fail: set[str] = frozenset()):
        self.objects: dict[str, str] = {}  # marker -> content
        self.calls: list[tuple[str, str]] = []
        self.fail = set(fail)
        self.lose_response_once: set[str] = set()

    async def create(self, item: Item, attempt: Attempt) -> VendorRef:
        if attempt.recovering and attempt.marker in self.objects:
            self.calls.append(("adopt", item.key))
            return VendorRef(attempt.marker, data={"content": self.objects[attempt.marker]})
        self.calls.append(("create", item.key))
        if item.key in self.fail:
            raise RuntimeError(f"vendor refused {item.key}")
        self.objects[attempt.marker] = item.content["text"]
        if item.key in self.lose_response_once:
            self.lose_response_once.discard(item.key)
            raise ConnectionResetError("response lost after the write committed")
        return VendorRef(attempt.marker, data={"content": item.content["text"]})

    async def update(self, item: Item, ref: VendorRef, attempt: Attempt) -> VendorRef:
        self.calls.append(("update", item.key))
        self.objects[ref.vendor_id] = item.content["text"]
        return VendorRef(ref.vendor_id, data={"content": item.content["text"]})


def items(*pairs: tuple[str, str]) -> list[Item]:
    return [Item(k, {"text": t}) for k, t in pairs]


def run(ledger: Ledger, vendor: Vendor, work: list[Item], **kw):
    return asyncio.run(run_items(ledger, SCOPE, "asana", work, create=vendor.create, update=vendor.update, **kw))


def test_create_then_reuse_then_update_only_what_changed(ledger: Ledger) -> None:
    vendor = Vendor()
    first = run(ledger, vendor, items(("a", "1"), ("b", "2"), ("c", "3")))
    assert first.counts == {"created": 3, "reused": 0, "updated": 0, "fallback": 0, "failed": 0}
    counts_after_first = ledger.counts()

    again = run(ledger, vendor, items(("a", "1"), ("b", "2"), ("c", "3")))
    assert again.counts["reused"] == 3 and ledger.counts() == counts_after_first

    changed = run(ledger, vendor, items(("a", "1"), ("b", "2*"), ("c", "3")))
    assert changed.counts == {"created": 0, "reused": 2, "updated": 1, "fallback": 0, "failed": 0}
    assert [c for c in vendor.calls if c[0] == "update"] == [("update", "b")]
    assert len(vendor.objects) == 3


def test_failures_are_isolated_recorded_and_retried_alone(ledger: Ledger) -> None:
    vendor = Vendor(fail={"b"})
    report = run(ledger, vendor, items(("a", "1"), ("b", "2"), ("c", "3")))
    assert report.counts["created"] == 2 and report.counts["failed"] == 1
    assert report.failures[0][0] == "b" and "vendor refused b" in report.failures[0][1]
    assert ledger.rows(SCOPE)["b"].status == "failed"

    vendor.fail.clear()
    vendor.calls.clear()
    retry = run(ledger, vendor, items(("a", "1"), ("b", "2"), ("c", "3")))
    assert retry.counts == {"created": 1, "reused": 2, "updated": 0, "fallback": 0, "failed": 0}
    assert vendor.calls == [("create", "b")]


def test_a_lost_response_is_adopted_not_created_twice(ledger: Ledger) -> None:
    vendor = Vendor()
    vendor.lose_response_once.add("a")
    first = run(ledger, vendor, items(("a", "1")))
    assert first.counts["failed"] == 1 and len(vendor.objects) == 1  # committed, answer lost
    second = run(ledger, vendor, items(("a", "1")))
    assert second.counts["created"] == 1
    assert ("adopt", "a") in vendor.calls and len(vendor.objects) == 1
    assert ledger.rows(SCOPE)["a"].vendor_id == SCOPE.marker("a")


def test_ledger_vault_and_audit_rows_commit_together(ledger: Ledger) -> None:
    vendor = Vendor()

    def library_row(item: Item, ref: VendorRef) -> dict:
        # A vault row the database refuses (title is NOT NULL) for item "bad".
        title = None if item.key == "bad" else f"Title {item.key}"
        return dict(piece_key=item.key, stakeholder_group="G", content_type="email", title=title,
                    body=item.content["text"], content_hash=item.content_hash)

    report = run(ledger, vendor, items(("good", "1"), ("bad", "2")), library_row=library_row)
    assert report.counts["created"] == 1 and report.counts["failed"] == 1
    rows = ledger.rows(SCOPE)
    assert rows["good"].status == "created" and rows["bad"].status == "failed"
    assert [r["piece_key"] for r in ledger.library(SCOPE.organization, SCOPE.campaign)] == ["good"]
    actions = [(a["item_key"], a["action"]) for a in ledger.audit(SCOPE.organization, SCOPE.campaign)]
    assert ("good", "created") in actions and ("bad", "created") not in actions


def test_every_row_carries_its_tenant(ledger: Ledger) -> None:
    run(ledger, Vendor(), items(("a", "1")))
    other = Scope("globex", SCOPE.campaign, SCOPE.asset)
    assert ledger.rows(other) == {}
    assert ledger.campaign_rows("acme", SCOPE.campaign)[0].scope.organization == "acme"


# ---- schema migration, retries, lifecycle ------------------------------------------

OLD_LEDGER_ITEMS = """
CREATE TABLE ledger_items (
    organization VARCHAR(64) NOT NULL, campaign VARCHAR(64) NOT NULL,
    asset VARCHAR(64) NOT NULL, item_key VARCHAR(200) NOT NULL,
    service VARCHAR(32) NOT NULL, status VARCHAR(16) NOT NULL,
    vendor_id VARCHAR(200), url TEXT, marker VARCHAR(300) NOT NULL,
    content_hash VARCHAR(64), payload TEXT NOT NULL, error TEXT,
    attempts INTEGER NOT NULL, created_at TIMESTAMP WITH TIME ZONE NOT NULL,
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL,
    PRIMARY KEY (organization, campaign, asset, item_key)
)
"""


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'old.sqlite'}"
    return request.getfixturevalue("pg_url")


def _old_ledger(url: str) -> None:
    """A ledger as the first release made it: no claim columns, one created row."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(OLD_LEDGER_ITEMS))
        conn.execute(
            sa.text(
                "INSERT INTO ledger_items VALUES ('acme', 'q4-product-launch', 'project_tasks', 'a', 'asana',"
                " 'created', 'v-1', 'https://x/v-1', :marker, :hash, '{\"k\": 1}', NULL, 1,"
                " '2025-01-01 00:00:00+00:00', '2025-01-01 00:00:00+00:00')"
            ),
            dict(marker=SCOPE.marker("a"), hash=Item("a", {"text": "1"}).content_hash),
        )
    engine.dispose()


def test_an_old_ledger_gains_the_claim_columns_without_loss(db_url: str) -> None:
    _old_ledger(db_url)
    errors: list[BaseException] = []

    def open_one() -> None:  # two step processes opening the old ledger at once
        try:
            Ledger(db_url).dispose()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    with Ledger(db_url) as ledger:
        columns = {c["name"] for c in sa.inspect(ledger.engine).get_columns("ledger_items")}
        assert {"owner", "lease_expires_at"} <= columns
        row = ledger.rows(SCOPE)["a"]
        assert (row.status, row.vendor_id, row.url, row.payload, row.attempts) == ("created", "v-1", "https://x/v-1", {"k": 1}, 1)
        assert row.owner is None and row.lease_expires_at is None
        vendor = Vendor()
        report = run(ledger, vendor, items(("a", "1"), ("b", "2")))
        assert report.counts == {"created": 1, "reused": 1, "updated": 0, "fallback": 0, "failed": 0}


class _PgError(Exception):
    def __init__(self, pgcode: str) -> None:
        super().__init__(f"pg error {pgcode}")
        self.pgcode = pgcode


def test_the_transient_database_error_classifier() -> None:
    locked = sa.exc.OperationalError("UPDATE x", {}, sqlite3.OperationalError("database is locked"))
    serialization = sa.exc.DBAPIError("UPDATE x", {}, _PgError("40001"))
    deadlock = sa.exc.DBAPIError("UPDATE x", {}, _PgError("40P01"))
    dropped = sa.exc.OperationalError("SELECT 1", {}, Exception("server closed the connection"), connection_invalidated=True)
    assert all(is_transient_db_error(e) for e in (locked, serialization, deadlock, dropped))
    assert is_transient_db_error(sqlite3.OperationalError("database is locked"))
    not_null = sa.exc.IntegrityError("INSERT", {}, Exception("NOT NULL constraint failed"))
    unique = sa.exc.DBAPIError("INSERT", {}, _PgError("23505"))
    syntax = sa.exc.OperationalError("SELEC", {}, sqlite3.OperationalError("near SELEC: syntax error"))
    assert not any(is_transient_db_error(e) for e in (not_null, unique, syntax, ValueError("x")))


def test_db_retry_backs_off_on_transient_errors_only() -> None:
    sleeps: list[float] = []
    calls = {"n": 0}
    locked = sa.exc.OperationalError("UPDATE x", {}, sqlite3.OperationalError("database is locked"))

    def flaky() -> str:
        calls["n"] += 1
        if calls["n"] < 3:
            raise locked
        return "ok"

    assert db_retry(flaky, sleep=sleeps.append, base_s=0.1, max_s=0.15) == "ok"
    assert calls["n"] == 3 and len(sleeps) == 2
    assert 0 <= sleeps[0] <= 0.1 and 0 <= sleeps[1] <= 0.15  # full jitter, capped

    calls["n"] = -100  # always failing: bounded
    sleeps.clear()
    with pytest.raises(sa.exc.OperationalError):
        db_retry(flaky, attempts=4, sleep=sleeps.append)
    assert len(sleeps) == 3

    def refused() -> None:
        raise sa.exc.IntegrityError("INSERT", {}, Exception("NOT NULL"))

    sleeps.clear()
    with pytest.raises(sa.exc.IntegrityError):
        db_retry(refused, sleep=sleeps.append)
    assert sleeps == []


def test_a_ledger_transaction_is_retried_whole_on_an_injected_failure(ledger: Ledger) -> None:
    failures = {"left": 2}

    @sa.event.listens_for(ledger.engine, "before_cursor_execute")
    def inject(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO AUDIT_LOG") and failures["left"]:
            failures["left"] -= 1
            raise sqlite3.OperationalError("database is locked")

    ledger.record_failure(SCOPE, "a", "asana", "h", "boom")
    assert failures["left"] == 0
    assert ledger.rows(SCOPE)["a"].status == "failed"
    assert [a["action"] for a in ledger.audit(SCOPE.organization, SCOPE.campaign)] == ["failed"]  # once, not thrice


def test_ledger_is_a_context_manager_and_dispose_is_idempotent(tmp_path: Path) -> None:
    with Ledger(f"sqlite:///{tmp_path / 'l.sqlite'}") as store:
        assert store.counts()["ledger_items"] == 0
    store.dispose()
    assert store.counts()["ledger_items"] == 0  # still usable: the engine reconnects


def test_the_ledger_resource_makes_one_ledger_per_step(tmp_path: Path) -> None:
    resource = LedgerResource(sqlite_path=str(tmp_path / "ledger.sqlite"))
    outside = resource.open()  # no run: a new ledger each time (the CLI's case)
    assert isinstance(outside, Ledger) and outside is not resource.open()
    outside.dispose()

    seen: list[tuple[int, str | None]] = []

    @dg.asset
    def step(ledger: LedgerResource) -> None:
        first, second = ledger.open(), ledger.open()
        assert first is second
        seen.append((id(first.engine), first.run_id))

    result = dg.materialize([step], resources={"ledger": resource})
    assert result.success
    assert len(seen) == 1 and seen[0][1] == result.run_id  # claim tokens name the run
    with dg.build_resources({"ledger": resource}) as built:
        assert built.ledger.open() is built.ledger.open()
        assert built.ledger.open().run_id is None


def test_fallback_on_names_the_errors_that_mean_vendor_down(ledger: Ledger) -> None:
    async def refused(item: Item, attempt: Attempt) -> VendorRef:
        raise RuntimeError("vendor down")

    async def local(item: Item, attempt: Attempt) -> VendorRef:
        return VendorRef(f"local-{item.key}")

    def go(**kw):
        return asyncio.run(run_items(ledger, SCOPE, "asana", items(("a", "1")), create=refused, fallback=local, **kw))

    assert go().counts["failed"] == 1  # by default only RetryableVendorError falls back
    report = go(fallback_on=RuntimeError)
    assert report.counts["fallback"] == 1 and "vendor down" in report.results[0].error
    row = ledger.rows(SCOPE)["a"]
    assert row.status == "fallback" and row.owner is None  # the claim went with the outcome


def test_many_processes_creating_a_fresh_ledger_at_once_all_succeed(tmp_path: Path) -> None:
    """Steps start side by side on a fresh database: every one gets its tables."""
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'fresh.sqlite'}"
    code = (
        "import sys, time\n"
        "from campaign_assets.ledger import Ledger\n"
        "from campaign_assets.services.slots import SlotBoard\n"
        "start = float(sys.argv[2])\n"
        "time.sleep(max(0.0, start - time.time()))\n"
        "Ledger(sys.argv[1]).dispose(); SlotBoard(sys.argv[1]).dispose()\n"
    )
    import time as _time

    start = str(_time.time() + 3.0)  # every process imports first, then all create at the same moment
    procs = [subprocess.Popen([sys.executable, "-c", code, url, start], stderr=subprocess.PIPE, text=True)
             for _ in range(8)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, "\n".join(e[-800:] for e in errors if e)


def _backend(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text("select pg_backend_pid()")).scalar_one()


def test_a_process_shares_a_few_postgres_connections_and_a_fork_opens_its_own(pg_url: str) -> None:
    """Every ledger and slot board of a process (a run worker runs many steps
    as threads, each with its own) shares one bounded pool on Postgres:
    statements reuse its connections instead of opening one each, and a
    forked child does not touch its parent's."""
    import multiprocessing

    from campaign_assets.core.db import POOL_OVERFLOW, POOL_SIZE
    from campaign_assets.services.slots import SlotBoard

    stores = [Ledger(pg_url) for _ in range(3)] + [SlotBoard(pg_url) for _ in range(6)]
    first = {_backend(store.engine) for store in stores for _ in range(3)}
    assert len(first) == 1  # one after another: the same connection, not 27

    def claims(board: SlotBoard) -> None:
        for _ in range(20):
            holder = board.try_claim("asana", 4)
            if holder is not None:
                board.release("asana", holder)

    threads = [threading.Thread(target=claims, args=(stores[3 + i % 6],)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    with stores[0].engine.connect() as conn:
        open_now = conn.execute(
            sa.text("select count(*) from pg_stat_activity where datname = current_database()")
        ).scalar_one()
    assert open_now <= POOL_SIZE + POOL_OVERFLOW  # twelve threads at once, a bounded pool

    for store in stores:
        store.dispose()
    assert stores[0].engine is stores[5].engine and _backend(stores[5].engine)  # one engine, usable after dispose

    def parents() -> set[int]:
        with stores[0].engine.connect() as conn:
            return set(conn.execute(
                sa.text("select pid from pg_stat_activity where datname = current_database()")
            ).scalars())

    before = parents()
    ctx = multiprocessing.get_context("fork")
    child_backend = ctx.Queue()
    child = ctx.Process(target=lambda: child_backend.put(_backend(Ledger(pg_url).engine)))
    child.start()
    theirs = child_backend.get(timeout=60)
    child.join(60)
    assert child.exitcode == 0
    assert theirs not in before  # its own connection, not one of the parent's sockets
    assert parents() <= before  # and the parent's connections survive the child's exit
