"""Item fan-out over the ledger: exactly once, retry only what failed (DESIGN.md §4, §6).

An asset turns its work into ``Item``s (one Asana task, one creative, one
content piece...). ``run_items`` decides per item, from the ledger, whether to
reuse, update, reconcile or create it, runs the vendor calls as asyncio tasks,
and records each outcome. An item that fails never sinks its siblings: it is
recorded as failed with its reason and retried by the next materialization.

The item state machine (the one description; DESIGN.md §4). A ledger row has
a ``status`` and, separately, a claim (``owner`` + ``lease_expires_at``):

    (no row) --claim: INSERT .. ON CONFLICT DO NOTHING--> pending+claimed
    pending | failed | fallback | deleted, unclaimed or claim dead
             --claim: UPDATE .. WHERE no live claim--> pending+claimed
    created, content hash changed, unclaimed or claim dead
             --claim (status and hash kept)--> created+claimed  (update due)
    pending+claimed --create ok--> created         (claim released in the
                    --vendor down, fallback ok--> fallback   same transaction
                    --error--> failed               as the outcome)
    created+claimed --update ok--> created (new hash) | --error--> failed
    created, same content hash --> reused, no claim, no vendor call

- One writer per item: only the claim holder calls the vendor. While it
  works, a heartbeat task renews all its claims every ``ledger.heartbeat_s``
  (a third of the lease by default); the renewal runs in a thread so the
  event loop never waits on the database.
- A second writer that finds a live claim does not call the vendor: it polls
  the row (bounded, growing interval) until the claim is released or dies,
  then decides again from the row: created with its content hash -> reused;
  failed -> claims and retries; claim dead -> takes over.
- A claim is dead when its lease expired (owner gone quiet for a lease: at
  most ``ledger.lease_s``, 30 s by default) or, at once, when its owner ran on
  this host and its pid no longer exists.
- A create runs with ``recovering=True`` when the row was pending, failed or
  fallback (an earlier attempt, perhaps a dead owner, may have committed the
  vendor object): it adopts the object found by its marker instead of
  creating a second one. That rule is written once, here:
  ``Attempt.adopt_or_create(find, create)`` (and ``Attempt.adopted(find)``
  for a create that must know whether it adopted); a teardown finds what a
  row names with ``locate`` (the recorded vendor id, else the marker).

This layer and ``HttpSession.create_once`` (``services/http``) are two
different guards. ``create_once`` settles one ambiguous HTTP write inside a
single call: a POST whose response was lost is reconciled against the vendor
(list and match) before it is resent. This layer settles whole items across
calls, writers and processes: the ledger claim, reuse, update, adoption by
marker after a dead attempt, and the local fallback. A client's ``create_*``
uses ``create_once``; a workflow's item uses this layer; neither calls the
other's rules. The errors this layer acts on are in ``core/errors.py``
(``ServiceUnavailable`` is "vendor down": the HTTP layer's retryable errors
subclass it).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from campaign_assets.core.errors import ServiceUnavailable
from campaign_assets.core.progress import progress_hook
from campaign_assets.ledger import Ledger, LedgerRow, Scope

T = TypeVar("T")
Find = Callable[[str], Awaitable[T | None]]  # marker -> the vendor object carrying it, if any

Action = Literal["created", "reused", "updated", "fallback", "failed"]
ACTIONS: tuple[Action, ...] = ("created", "reused", "updated", "fallback", "failed")


@dataclass(frozen=True)
class Item:
    """One unit of outside work. ``content`` is everything the vendor object
    is built from: when its hash changes, the object is updated."""

    key: str
    content: Mapping[str, Any]

    @property
    def content_hash(self) -> str:
        blob = json.dumps(self.content, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:32]


@dataclass(frozen=True)
class VendorRef:
    """What a vendor gave back: its id, a URL a person can open, and the
    payload downstream assets need (kept in the ledger for reuse)."""

    vendor_id: str
    url: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Attempt:
    """What a create needs besides the item: the marker to write into the
    vendor object, and whether an earlier attempt may have left objects
    behind (ledger row pending or failed), in which case each vendor object
    is looked up by its marker before it is created."""

    marker: str
    recovering: bool

    async def adopted(self, find: Find[T]) -> T | None:
        """The vendor object an earlier attempt left (looked up by the
        marker, only when recovering), else None."""
        return await find(self.marker) if self.recovering else None

    async def adopt_or_create(self, find: Find[T], create: Callable[[str], Awaitable[T]]) -> T:
        """Create a vendor object carrying the marker, unless an earlier
        attempt already did (then adopt that one)."""
        found = await self.adopted(find)
        return found if found is not None else await create(self.marker)


@dataclass(frozen=True)
class ItemResult:
    key: str
    action: Action
    ref: VendorRef | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.action != "failed"


@dataclass(frozen=True)
class ItemReport:
    """The outcome of one fan-out, in item order."""

    service: str
    results: tuple[ItemResult, ...]

    @property
    def counts(self) -> dict[str, int]:
        counter = Counter(r.action for r in self.results)
        return {a: counter.get(a, 0) for a in ACTIONS}

    @property
    def failures(self) -> list[tuple[str, str]]:
        return [(r.key, r.error or "unknown error") for r in self.results if not r.ok]

    @property
    def fallbacks(self) -> list[tuple[str, str]]:
        return [(r.key, r.error or "") for r in self.results if r.action == "fallback"]

    @property
    def succeeded(self) -> list[ItemResult]:
        return [r for r in self.results if r.ok]

    def ref(self, key: str) -> VendorRef | None:
        return next((r.ref for r in self.results if r.key == key and r.ok), None)


Create = Callable[[Item, Attempt], Awaitable[VendorRef]]
Update = Callable[[Item, VendorRef, Attempt], Awaitable[VendorRef]]
LibraryRow = Callable[[Item, VendorRef], Mapping[str, Any]]
ProgressHook = Callable[[str, str, str, "str | None", int], None]  # service, key, action, error, batch size


def _ref(row: LedgerRow) -> VendorRef:
    return VendorRef(vendor_id=row.vendor_id or "", url=row.url, data=row.payload)


async def locate(row: LedgerRow, find: Callable[[str], Awaitable[str | None]]) -> str | None:
    """The vendor id of what ``row`` names: the one it recorded, else the
    one found by its marker (a create whose outcome was never recorded)."""
    return row.vendor_id or await find(row.marker)


def describe_error(exc: BaseException) -> str:
    text = str(exc).strip() or exc.__class__.__name__
    return f"{exc.__class__.__name__}: {text}"[:1000]


async def run_items(
    ledger: Ledger,
    scope: Scope,
    service: str,
    items: Iterable[Item],
    *,
    create: Create,
    update: Update | None = None,
    library_row: LibraryRow | None = None,
    fallback: Create | None = None,
    concurrency: int = 64,
    owner: str | None = None,
    fallback_on: type[BaseException] | tuple[type[BaseException], ...] = ServiceUnavailable,
    progress: ProgressHook | logging.Logger | None = None,
) -> ItemReport:
    """Bring every item to "exists with this content", at most once each,
    however many writers run at once (the state machine is in the module
    docstring).

    - ledger says created, same content hash: reused, no vendor call;
    - created, content changed: claim, ``update`` (or reused if the vendor
      object cannot change, when ``update`` is None);
    - otherwise: claim (the row becomes pending), ``create``, record. When the
      row was pending or failed, ``create`` runs with ``recovering=True`` and
      adopts what an earlier attempt committed (found by marker) instead of
      creating it twice.
    - claimed by another live writer: wait for its outcome and reuse it.

    When the vendor is down (retries exhausted on 5xx, 429 or transport
    errors, not a permanent refusal) and a ``fallback`` is given, the local
    backend makes the artifact: recorded as ``fallback`` with the reason, and
    brought to the vendor by the next materialization. ``fallback_on``: the
    errors that count as "vendor down" (default: ``ServiceUnavailable``, which
    the HTTP layer's ``RetryableVendorError`` is).

    The vendor clients cap their own calls; ``concurrency`` only bounds how
    many items are in progress at once. ``owner``: this writer's claim token
    (default: a fresh ``ledger.new_owner()``).
    """
    items = list(items)
    keys = [i.key for i in items]
    if len(set(keys)) != len(keys):
        raise ValueError(f"duplicate item keys in {scope.asset}: {keys}")
    me = owner or ledger.new_owner()
    existing = await asyncio.to_thread(ledger.rows, scope)
    gate = asyncio.Semaphore(max(1, concurrency))
    held: set[str] = set()  # item keys this writer holds a claim on
    hook = progress_hook(progress, scope.asset)

    def told(result: ItemResult) -> ItemResult:
        if hook is not None:
            try:
                hook(service, result.key, result.action, result.error, len(items))
            except Exception:  # progress never sinks an item
                pass
        return result

    async def heartbeat() -> None:
        while True:
            await asyncio.sleep(ledger.heartbeat_s)
            if held:
                try:
                    await asyncio.to_thread(ledger.renew, scope, sorted(held), me)
                except Exception:  # a missed renewal is retried next beat, within the lease
                    pass

    async def one(item: Item) -> ItemResult:
        async with gate:
            try:
                return await _bring(item, existing.get(item.key))
            except fallback_on as exc:
                if fallback is None:
                    return await _fail(item, exc)
                reason = describe_error(exc)
                try:
                    ref = await fallback(item, Attempt(scope.marker(item.key), recovering=False))
                    return await _record(item, "fallback", ref, fallback_reason=reason)
                except Exception as local_exc:
                    return await _fail(item, local_exc)
            except Exception as exc:  # an item failure never sinks its siblings
                return await _fail(item, exc)
            finally:
                if item.key in held:  # an outcome that could not be recorded: free the item
                    held.discard(item.key)
                    try:
                        await asyncio.to_thread(ledger.release, scope, item.key, me)
                    except Exception:
                        pass  # the lease expires on its own

    async def _fail(item: Item, exc: BaseException) -> ItemResult:
        error = describe_error(exc)
        await asyncio.to_thread(ledger.record_failure, scope, item.key, service, item.content_hash, error, me)
        held.discard(item.key)
        return ItemResult(item.key, "failed", error=error)

    async def _claim(item: Item, row: LedgerRow | None) -> LedgerRow | ItemResult | None:
        """Hold the item's claim (the row as it was when claimed: the caller
        decides from it), or the outcome another writer left (reused)."""
        digest = item.content_hash
        delay = ledger.poll_s
        while True:
            if row is not None and row.status == "created" and (row.content_hash == digest or update is None):
                return ItemResult(item.key, "reused", _ref(row))
            if row is not None and ledger.claim_is_live(row, me):
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(ledger.max_poll_s, delay * 1.5)
            else:
                outcome = await asyncio.to_thread(ledger.claim, scope, item.key, service, digest, me, row)
                if outcome == "won":
                    held.add(item.key)
                    return row
                if outcome == "busy":
                    await asyncio.sleep(delay * (0.5 + random.random()))
                    delay = min(ledger.max_poll_s, delay * 1.5)
            row = await asyncio.to_thread(ledger.row, scope, item.key)

    async def _bring(item: Item, row: LedgerRow | None) -> ItemResult:
        claimed = await _claim(item, row)
        if isinstance(claimed, ItemResult):
            return claimed
        row = claimed
        if row is not None and row.status == "created":  # content changed: update
            assert update is not None
            ref = await update(item, _ref(row), Attempt(row.marker, recovering=False))
            return await _record(item, "updated", ref)
        recovering = row is not None and row.status in ("pending", "failed", "fallback")
        ref = await create(item, Attempt(scope.marker(item.key), recovering=recovering))
        return await _record(item, "created", ref)

    async def _record(item: Item, action: Action, ref: VendorRef, fallback_reason: str | None = None) -> ItemResult:
        await asyncio.to_thread(
            ledger.record_success,
            scope,
            item.key,
            service,
            action=action,
            vendor_id=ref.vendor_id,
            url=ref.url,
            content_hash=item.content_hash,
            payload=ref.data,
            library_row=library_row(item, ref) if library_row else None,
            fallback_reason=fallback_reason,
            owner=me,
        )
        held.discard(item.key)
        return ItemResult(item.key, action, ref, error=fallback_reason)

    async def _told(item: Item) -> ItemResult:
        return told(await one(item))

    beat = asyncio.create_task(heartbeat())
    try:
        results = await asyncio.gather(*(_told(i) for i in items))
    finally:
        beat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beat
    return ItemReport(service, tuple(results))
