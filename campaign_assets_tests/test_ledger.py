"""The ledger and the item runner, on SQLite and on the machine's Postgres."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from campaign_assets.items import Attempt, Item, VendorRef, run_items
from campaign_assets.ledger import Ledger, Scope

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
