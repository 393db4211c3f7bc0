"""Service caps across processes, runs and hosts: a slot board in the database.

Within a step the ``AdaptiveLimiter`` caps a service's calls in flight. But a
backfill runs many steps at once, in separate processes (and, later, on
separate hosts), and one Dagster op can hold only one pool, while our steps
call two or three services. So every HTTP call also holds one of the
service's ``cap`` rows in a ``service_slots`` table, in the ledger database
(SQLite by default, Postgres in production): at most ``cap`` calls per service
are in flight anywhere, whatever runs at once.

A claim is a single conditional UPDATE (atomic on both databases) and carries
a short lease (30 s by default), renewed every third of the lease by one
heartbeat task per board while any of its slots is held. So a slot held by a
process that died comes back within a lease; and at once, on the next claim
attempt, when the holder ran on this host and its pid no longer exists. The
board's database calls run in a thread (``asyncio.to_thread``), so a database
lock never blocks the event loop, and under ``db_retry`` (transient database
errors are retried with a bounded backoff).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import sqlalchemy as sa

from campaign_assets.core.claims import claim_token, owner_is_dead
from campaign_assets.core.db import create_ledger_engine, create_tables, db_retry, dispose_ledger_engine, metadata

service_slots = sa.Table(
    "service_slots",
    metadata,
    sa.Column("service", sa.String(32), primary_key=True),
    sa.Column("slot", sa.Integer, primary_key=True),
    sa.Column("holder", sa.String(120)),
    sa.Column("expires_at", sa.Float),
)


class SlotBoard:
    """Claim and release per-service slots. One per HTTP session.

    ``lease_s``: how long a held slot lives unless renewed; ``heartbeat_s``
    (default: a third of the lease): how often held slots are renewed;
    ``clock``: epoch seconds for leases (injectable for tests).
    """

    DEFAULT_LEASE_S = 30.0

    def __init__(
        self,
        url: str,
        *,
        lease_s: float = DEFAULT_LEASE_S,
        heartbeat_s: float | None = None,
        poll_s: float = 0.01,
        max_poll_s: float = 0.1,
        dead_check_s: float = 1.0,
        clock: Callable[[], float] = time.time,
    ):
        self.engine = create_ledger_engine(url)
        create_tables(self.engine, service_slots)
        self.lease_s = lease_s
        self.heartbeat_s = heartbeat_s if heartbeat_s is not None else lease_s / 3
        self.poll_s = poll_s
        self.max_poll_s = max_poll_s
        self.dead_check_s = dead_check_s
        self.clock = clock
        self._owner = claim_token().rsplit(":", 1)[0]  # hostname:pid; each claim adds its own random part
        self._rng = random.Random()
        self._ready: set[tuple[str, int]] = set()
        self._held: dict[str, set[str]] = {}  # service -> holder tokens held by this board
        self._beat: asyncio.Task[None] | None = None
        self._turns: dict[tuple[str, asyncio.AbstractEventLoop], asyncio.Lock] = {}  # (service, loop) -> the one poller's turn

    def dispose(self) -> None:
        if self._beat is not None and not self._beat.done():
            with contextlib.suppress(RuntimeError):  # its loop may be closed already
                self._beat.cancel()
        dispose_ledger_engine(self.engine)

    def _ensure(self, service: str, cap: int) -> None:
        if (service, cap) in self._ready:
            return

        def body() -> None:
            with self.engine.begin() as conn:
                have = set(
                    conn.execute(sa.select(service_slots.c.slot).where(service_slots.c.service == service)).scalars()
                )
                missing = [{"service": service, "slot": i} for i in range(cap) if i not in have]
                if missing:
                    try:
                        with conn.begin_nested():
                            conn.execute(sa.insert(service_slots), missing)
                    except sa.exc.IntegrityError:
                        pass  # another process created them first

        db_retry(body)
        self._ready.add((service, cap))

    def try_claim(self, service: str, cap: int, *, free_dead: bool = True) -> str | None:
        """Claim a free slot below ``cap`` (free: never held, lease expired, or,
        with ``free_dead``, its holder provably dead); the holder token, or None."""
        self._ensure(service, cap)
        holder = self._claim(service, cap)
        if holder is None and free_dead and self._free_dead(service, cap):
            holder = self._claim(service, cap)
        return holder

    def _claim(self, service: str, cap: int) -> str | None:
        t = service_slots
        now = self.clock()
        free = sa.or_(t.c.holder.is_(None), t.c.expires_at < now)
        pick = (
            sa.select(t.c.slot)
            .where(t.c.service == service, t.c.slot < cap, free)
            .order_by(t.c.slot)
            .limit(1)
            .scalar_subquery()
        )
        holder = f"{self._owner}:{self._rng.getrandbits(48):012x}"

        def body() -> int:
            with self.engine.begin() as conn:
                return conn.execute(
                    sa.update(t)
                    .where(t.c.service == service, t.c.slot == pick, free)
                    .values(holder=holder, expires_at=now + self.lease_s)
                ).rowcount

        return holder if db_retry(body) == 1 else None

    def free_dead_holders(self) -> int:
        """Free every service's slots held by a process of this host that is
        gone (after a killed launch: a service its relaunch never calls would
        otherwise keep them until its next caller looks); how many."""
        return self._free_dead(None, None)

    def _free_dead(self, service: str | None, cap: int | None) -> int:
        """Free the slots whose holder ran on this host and whose pid is gone
        (a compare-and-swap on the holder seen), of ``service`` below ``cap``
        (None: every service); how many were freed."""
        t = service_slots

        def holders() -> list[tuple[str, int, str]]:
            where = [t.c.holder.is_not(None)]
            if service is not None:
                where += [t.c.service == service, t.c.slot < (cap or 0)]
            with self.engine.connect() as conn:
                return [(r.service, r.slot, r.holder) for r in conn.execute(sa.select(t.c.service, t.c.slot, t.c.holder).where(*where))]

        dead = [(name, slot, holder) for name, slot, holder in db_retry(holders) if owner_is_dead(holder)]
        if not dead:
            return 0

        def body() -> int:
            with self.engine.begin() as conn:
                return sum(
                    conn.execute(
                        sa.update(t)
                        .where(t.c.service == name, t.c.slot == slot, t.c.holder == holder)
                        .values(holder=None, expires_at=None)
                    ).rowcount
                    for name, slot, holder in dead
                )

        return db_retry(body)

    def renew(self) -> int:
        """Extend every slot this board holds by a lease; how many it still held."""
        t = service_slots
        expires = self.clock() + self.lease_s
        held = {service: sorted(tokens) for service, tokens in self._held.items() if tokens}
        if not held:
            return 0

        def body() -> int:
            with self.engine.begin() as conn:
                return sum(
                    conn.execute(
                        sa.update(t).where(t.c.service == service, t.c.holder.in_(tokens)).values(expires_at=expires)
                    ).rowcount
                    for service, tokens in held.items()
                )

        return db_retry(body)

    def release(self, service: str, holder: str) -> None:
        t = service_slots
        self._held.get(service, set()).discard(holder)

        def body() -> None:
            with self.engine.begin() as conn:
                conn.execute(
                    sa.update(t).where(t.c.service == service, t.c.holder == holder).values(holder=None, expires_at=None)
                )

        db_retry(body)

    def in_use(self, service: str) -> int:
        t = service_slots

        def body() -> int:
            with self.engine.connect() as conn:
                return conn.execute(
                    sa.select(sa.func.count()).where(
                        t.c.service == service, t.c.holder.is_not(None), t.c.expires_at >= self.clock()
                    )
                ).scalar_one()

        return db_retry(body)

    async def _heartbeat(self) -> None:
        """Renew every held slot each ``heartbeat_s`` while any is held."""
        while any(self._held.values()):
            await asyncio.sleep(self.heartbeat_s)
            with contextlib.suppress(Exception):  # a missed renewal is retried next beat, within the lease
                await asyncio.to_thread(self.renew)

    def _start_heartbeat(self) -> None:
        loop = asyncio.get_running_loop()
        if self._beat is None or self._beat.done() or self._beat.get_loop() is not loop:
            self._beat = loop.create_task(self._heartbeat())

    async def _claim_in_thread(self, service: str, cap: int, *, free_dead: bool = True) -> str | None:
        """``try_claim`` in a thread; a claim that lands after the caller was
        cancelled is released (in a thread), not leaked until its lease expires."""
        lock = threading.Lock()
        state: dict[str, object] = {"cancelled": False, "holder": None}

        def claim() -> str | None:
            holder = self.try_claim(service, cap, free_dead=free_dead)
            with lock:
                cancelled = state["cancelled"]
                state["holder"] = holder
            if cancelled and holder is not None:
                self.release(service, holder)
                return None
            return holder

        try:
            return await asyncio.to_thread(claim)
        except asyncio.CancelledError:
            with lock:
                state["cancelled"] = True
                holder = state["holder"]
            if isinstance(holder, str):
                threading.Thread(target=self.release, args=(service, holder), daemon=True).start()
            raise

    def _turn(self, service: str) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        return self._turns.setdefault((service, loop), asyncio.Lock())

    async def _wait_for_slot(self, service: str, cap: int) -> str:
        """Poll until a slot is claimed, with a growing, jittered interval; a
        dead holder's slots are looked for at most every ``dead_check_s``."""
        delay = self.poll_s
        dead_checked = time.monotonic()
        holder = await self._claim_in_thread(service, cap)
        while holder is None:
            await asyncio.sleep(delay * (0.5 + self._rng.random()))
            delay = min(self.max_poll_s, delay * 1.5)
            check = time.monotonic() - dead_checked >= self.dead_check_s
            if check:
                dead_checked = time.monotonic()
            holder = await self._claim_in_thread(service, cap, free_dead=check)
        return holder

    @asynccontextmanager
    async def hold(self, service: str, cap: int) -> AsyncIterator[None]:
        """Wait for a slot, hold it for the block while the heartbeat keeps its
        lease alive.

        Of a board's callers waiting for one service, only the first polls the
        database; the others queue behind it, in order, and the next starts
        polling as soon as it has its slot. At a saturated vendor a step has
        up to its cap of calls waiting; each polling on its own made every
        busy step send the database a claim (and a look for dead holders)
        per waiting call every 0.1 s."""
        async with self._turn(service):
            holder = await self._wait_for_slot(service, cap)
        self._held.setdefault(service, set()).add(holder)
        self._start_heartbeat()
        try:
            yield
        finally:
            self._held[service].discard(holder)
            await asyncio.to_thread(self.release, service, holder)
