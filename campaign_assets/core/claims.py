"""Claim tokens and owner liveness (DESIGN.md §4, "one writer per item").

A ledger row's claim is an ``owner`` (a token from ``claim_token``) and a
lease. This module holds who an owner is, whether it provably died, and the
conditional SQL that takes, renews and releases a claim; ``Ledger.claim``
and friends run it on ``ledger_items`` in a retried transaction. The slot
board (``services/slots.py``) uses the same tokens for its slots.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Mapping
from typing import Any, Literal, Protocol

import sqlalchemy as sa

from campaign_assets.core.db import dialect_insert

ClaimOutcome = Literal["won", "busy", "changed"]


def _hostname() -> str:
    """This host's name as tokens carry it (bounded, so a token fits its column)."""
    return socket.gethostname()[:64]


def claim_token(run_id: str | None = None) -> str:
    """A claim owner: ``[RUN_ID/]HOSTNAME:PID:RANDOM``. The host and pid let a
    claimant on the same host prove the owner dead; the random part keeps two
    claimants in one process apart."""
    base = f"{_hostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
    return f"{run_id[:100]}/{base}" if run_id else base


def parse_token(token: str) -> tuple[str, int] | None:
    """(hostname, pid) of a claim token, or None when it is not one."""
    parts = token.rsplit("/", 1)[-1].split(":")
    if len(parts) < 2:
        return None
    try:
        return parts[0], int(parts[1])
    except ValueError:
        return None


def owner_is_dead(token: str | None) -> bool:
    """True only when the owner provably died: it ran on this host and its
    pid no longer exists. An owner on another host is never provably dead
    (its lease bounds the wait instead)."""
    parsed = parse_token(token) if token else None
    if parsed is None:
        return False
    host, pid = parsed
    if host != _hostname() or pid <= 0:
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OSError):
        return False
    return False


# ---- the claim protocol in SQL (on any table with the claim columns) -------------
class Seen(Protocol):
    """A row as a claimant last read it."""

    status: str
    content_hash: str | None
    owner: str | None
    lease_expires_at: float | None


def claim_is_live(seen: Seen, owner: str | None, now: float) -> bool:
    """Whether ``seen`` is claimed by someone other than ``owner`` who may
    still be working: a lease in the future and not provably dead."""
    if seen.owner is None or seen.owner == owner:
        return False
    if seen.lease_expires_at is None or seen.lease_expires_at < now:
        return False
    return not owner_is_dead(seen.owner)


def take(
    conn: sa.Connection,
    table: sa.Table,
    where: list[sa.ColumnElement[bool]],
    seen: Seen | None,
    *,
    new_row: Mapping[str, Any],
    content_hash: str,
    owner: str,
    now: float,
    lease: float,
    updated_at: Any,
) -> ClaimOutcome:
    """One claim attempt, atomically (see ``Ledger.claim`` for the rule):
    INSERT ... ON CONFLICT DO NOTHING of ``new_row`` when there was no row,
    else a compare-and-swap UPDATE ... WHERE the row is as ``seen`` and has no
    live claim."""
    t = table
    if seen is None:
        stmt = (
            dialect_insert(conn)(t)
            .values(**new_row, owner=owner, lease_expires_at=lease)
            .on_conflict_do_nothing(index_elements=[c.name for c in t.primary_key.columns])
        )
        return "won" if conn.execute(stmt).rowcount == 1 else "changed"
    free = [t.c.owner.is_(None), t.c.lease_expires_at.is_(None), t.c.lease_expires_at < now]
    if seen.owner is not None and seen.owner != owner and owner_is_dead(seen.owner):
        free.append(t.c.owner == seen.owner)
    if seen.owner == owner:
        free.append(t.c.owner == owner)
    values: dict[str, Any] = dict(owner=owner, lease_expires_at=lease, updated_at=updated_at)
    if seen.status != "created":
        values |= dict(status="pending", content_hash=content_hash, attempts=t.c.attempts + 1)
    unchanged = [t.c.status == seen.status, t.c.content_hash.is_not_distinct_from(seen.content_hash)]
    if conn.execute(sa.update(t).where(*where, *unchanged, sa.or_(*free)).values(**values)).rowcount == 1:
        return "won"
    current = conn.execute(sa.select(t).where(*where)).first()
    if current is None or current.status != seen.status or current.content_hash != seen.content_hash:
        return "changed"
    return "busy"


def renew(conn: sa.Connection, table: sa.Table, where: list[sa.ColumnElement[bool]], owner: str, lease: float) -> int:
    """Extend ``owner``'s claims on the rows ``where`` selects; how many it still held."""
    stmt = sa.update(table).where(*where, table.c.owner == owner).values(lease_expires_at=lease)
    return conn.execute(stmt).rowcount


def release(conn: sa.Connection, table: sa.Table, where: list[sa.ColumnElement[bool]], owner: str) -> None:
    """Give up ``owner``'s claim on the rows ``where`` selects."""
    conn.execute(sa.update(table).where(*where, table.c.owner == owner).values(owner=None, lease_expires_at=None))
