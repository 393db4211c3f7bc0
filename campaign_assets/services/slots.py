"""Service caps across processes, runs and hosts: a slot board in the database.

Within a step the ``AdaptiveLimiter`` caps a service's calls in flight. But a
backfill runs many steps at once, in separate processes (and, later, on
separate hosts), and one Dagster op can hold only one pool, while our steps
call two or three services. So every HTTP call also holds one of the
service's ``cap`` rows in a ``service_slots`` table, in the ledger database
(SQLite by default, Postgres in production): at most ``cap`` calls per service
are in flight anywhere, whatever runs at once.

A claim is a single conditional UPDATE (atomic on both databases); a claim
carries a lease, so a process that dies holding a slot frees it on expiry.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import sqlalchemy as sa

from campaign_assets.ledger import create_ledger_engine, create_tables, metadata

service_slots = sa.Table(
    "service_slots",
    metadata,
    sa.Column("service", sa.String(32), primary_key=True),
    sa.Column("slot", sa.Integer, primary_key=True),
    sa.Column("holder", sa.String(120)),
    sa.Column("expires_at", sa.Float),
)


class SlotBoard:
    """Claim and release per-service slots. One per HTTP session."""

    def __init__(self, url: str, *, lease_s: float = 600.0, poll_s: float = 0.01, max_poll_s: float = 0.1):
        self.engine = create_ledger_engine(url)
        create_tables(self.engine, service_slots)
        self.lease_s = lease_s
        self.poll_s = poll_s
        self.max_poll_s = max_poll_s
        self.waited_s = 0.0
        self._owner = f"{socket.gethostname()}:{os.getpid()}"
        self._rng = random.Random()
        self._ready: set[tuple[str, int]] = set()

    def dispose(self) -> None:
        self.engine.dispose()

    def _ensure(self, service: str, cap: int) -> None:
        if (service, cap) in self._ready:
            return
        with self.engine.begin() as conn:
            have = set(conn.execute(sa.select(service_slots.c.slot).where(service_slots.c.service == service)).scalars())
            missing = [{"service": service, "slot": i} for i in range(cap) if i not in have]
            if missing:
                try:
                    with conn.begin_nested():
                        conn.execute(sa.insert(service_slots), missing)
                except sa.exc.IntegrityError:
                    pass  # another process created them first
        self._ready.add((service, cap))

    def try_claim(self, service: str, cap: int) -> str | None:
        """Claim a free (or expired) slot below ``cap``; the holder token, or None."""
        self._ensure(service, cap)
        t = service_slots
        now = time.time()
        free = sa.or_(t.c.holder.is_(None), t.c.expires_at < now)
        pick = (
            sa.select(t.c.slot)
            .where(t.c.service == service, t.c.slot < cap, free)
            .order_by(t.c.slot)
            .limit(1)
            .scalar_subquery()
        )
        holder = f"{self._owner}:{uuid.uuid4().hex[:12]}"
        with self.engine.begin() as conn:
            claimed = conn.execute(
                sa.update(t)
                .where(t.c.service == service, t.c.slot == pick, free)
                .values(holder=holder, expires_at=now + self.lease_s)
            ).rowcount
        return holder if claimed == 1 else None

    def release(self, service: str, holder: str) -> None:
        t = service_slots
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(t).where(t.c.service == service, t.c.holder == holder).values(holder=None, expires_at=None)
            )

    def in_use(self, service: str) -> int:
        t = service_slots
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(sa.func.count()).where(t.c.service == service, t.c.holder.is_not(None), t.c.expires_at >= time.time())
            ).scalar_one()

    @asynccontextmanager
    async def hold(self, service: str, cap: int) -> AsyncIterator[None]:
        """Wait for a slot (polling with a growing, jittered interval), hold it for the block."""
        started = time.monotonic()
        delay = self.poll_s
        holder = self.try_claim(service, cap)
        while holder is None:
            await asyncio.sleep(delay * (0.5 + self._rng.random()))
            delay = min(self.max_poll_s, delay * 1.5)
            holder = self.try_claim(service, cap)
        self.waited_s += time.monotonic() - started
        try:
            yield
        finally:
            self.release(service, holder)
