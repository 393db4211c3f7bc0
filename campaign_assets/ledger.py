"""The item ledger, the content library (the vault) and the audit log (DESIGN.md §4),
and the campaigns' daily delivery (``performance_daily``, issue #16).

SQLAlchemy Core, one code path for SQLite (the embedded default) and
Postgres (when a URL is configured). Every side effect outside Dagster is a
ledger row keyed by (organization, campaign, asset, item key); a successful
item writes its ledger row, its vault row (if any) and an audit row in one
transaction.

Claims (DESIGN.md §4, "one writer per item"): a ledger row carries an
``owner`` (a claim token, see ``claim_token``) and a lease
(``lease_expires_at``, epoch seconds of the ledger's clock). ``Ledger.claim``
takes a row atomically (a conditional INSERT ... ON CONFLICT DO NOTHING, or a
conditional UPDATE ... WHERE no live claim, checked by rowcount), ``renew``
keeps a claim alive, and ``record_success``/``record_failure`` release it in
the same transaction as the outcome. The item state machine that uses them is
documented once, in ``campaign_assets.core.items``. Claim tokens and owner
liveness are in ``core/claims.py``; engines, migration and ``db_retry`` (every
transaction runs under it) in ``core/db.py``.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import pandas as pd
import sqlalchemy as sa

from campaign_assets.core import claims
from campaign_assets.core.claims import ClaimOutcome, claim_token
from campaign_assets.core.db import Database, metadata, upsert


def _tenant_key() -> tuple[sa.Column, sa.Column]:
    """Every stored row carries its tenant and campaign (DESIGN.md §1)."""
    return (
        sa.Column("organization", sa.String(64), primary_key=True),
        sa.Column("campaign", sa.String(64), primary_key=True),
    )


ledger_items = sa.Table(
    "ledger_items",
    metadata,
    *_tenant_key(),
    sa.Column("asset", sa.String(64), primary_key=True),
    sa.Column("item_key", sa.String(200), primary_key=True),
    sa.Column("service", sa.String(32), nullable=False),
    # pending: a create is in flight (or its outcome was lost); created; failed;
    # fallback: made locally while the vendor was down; deleted
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("vendor_id", sa.String(200)),
    sa.Column("url", sa.Text),
    sa.Column("marker", sa.String(300), nullable=False),
    sa.Column("content_hash", sa.String(64)),
    sa.Column("payload", sa.Text, nullable=False, default="{}"),
    sa.Column("error", sa.Text),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    # The claim: who is working on the row now (a ``claim_token``) and until
    # when (epoch seconds) unless renewed. NULL owner: nobody.
    sa.Column("owner", sa.String(200)),
    sa.Column("lease_expires_at", sa.Float),
)

content_library = sa.Table(
    "content_library",
    metadata,
    *_tenant_key(),
    sa.Column("piece_key", sa.String(200), primary_key=True),
    sa.Column("stakeholder_group", sa.String(200), nullable=False),
    sa.Column("content_type", sa.String(64), nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    # Seed 000's vault layout and metadata (added later: nullable, migrated
    # on open by core/db.py, backfilled by ``Ledger.backfill_library``).
    sa.Column("folder", sa.String(400)),  # Campaigns/{PATTERN}/{VECTOR} or Campaigns/{PATTERN}/Research
    sa.Column("vector", sa.String(200)),  # the stakeholder group ("Research" for research notes)
    sa.Column("timing", sa.String(200)),
    sa.Column("source", sa.Text),  # the asset that wrote it, or the page a research note read
    sa.Column("auto_generated", sa.Boolean),
    sa.Column("status", sa.String(32)),  # draft | research | unavailable
)

UNFILED_PATTERN = "UNFILED"  # a migrated row's folder until its campaign's pattern is known


def vault_folder(pattern: str, vector: str) -> str:
    """``Campaigns/{PATTERN}/{VECTOR}``: a path segment, so no slashes inside."""
    clean = " ".join(vector.replace("/", "-").replace("\\", "-").split()) or "Unsorted"
    return f"Campaigns/{pattern}/{clean}"

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("organization", sa.String(64), nullable=False),
    sa.Column("campaign", sa.String(64), nullable=False),
    sa.Column("asset", sa.String(64), nullable=False),
    sa.Column("item_key", sa.String(200), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("detail", sa.Text, nullable=False, default=""),
    sa.Index("ix_audit_campaign", "organization", "campaign"),
)


# What each campaign delivered, per day, source and vendor object (issue #16):
# written by campaign_performance (``Ledger.write_performance``), read by anyone
# with SQL. ``source``: the DSP's name, ``email`` or ``social``; ``object_id``:
# the line item, send or post at that source. Counts and cents are whole
# numbers, 0 where a source has no such count (a DSP has no deliveries).
performance_daily = sa.Table(
    "performance_daily",
    metadata,
    *_tenant_key(),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("source", sa.String(32), primary_key=True),
    sa.Column("channel", sa.String(64), nullable=False),
    sa.Column("object_id", sa.String(200), primary_key=True),
    sa.Column("impressions", sa.BigInteger, nullable=False, default=0),
    sa.Column("clicks", sa.BigInteger, nullable=False, default=0),
    sa.Column("spend_cents", sa.BigInteger, nullable=False, default=0),
    sa.Column("delivered", sa.BigInteger, nullable=False, default=0),
    sa.Column("opens", sa.BigInteger, nullable=False, default=0),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
)
PERFORMANCE_KEY = ("organization", "campaign", "day", "source", "object_id")
PERFORMANCE_COUNTS = ("impressions", "clicks", "spend_cents", "delivered", "opens")
PERFORMANCE_COLUMNS = [c.name for c in performance_daily.columns]


@dataclass(frozen=True)
class Scope:
    """Which asset of which campaign of which tenant an item belongs to."""

    organization: str
    campaign: str
    asset: str

    def marker(self, item_key: str) -> str:
        """Deterministic tag a create writes into the vendor object (title or
        notes) so a lost response can be reconciled by listing."""
        return f"[ca:{self.organization}/{self.campaign}/{self.asset}/{item_key}]"


@dataclass(frozen=True)
class LedgerRow:
    scope: Scope
    item_key: str
    service: str
    status: str
    vendor_id: str | None
    url: str | None
    marker: str
    content_hash: str | None
    payload: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    attempts: int = 0
    owner: str | None = None
    lease_expires_at: float | None = None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class Ledger(Database):
    """Typed access to the three tables: one engine, one schema check. One
    per step (``LedgerResource`` shares it for the step); a context manager.

    ``lease_s``: how long a claim lives unless renewed; ``heartbeat_s`` (by
    default a third of the lease): how often a claim holder renews;
    ``poll_s``/``max_poll_s``: the first and the largest interval a second
    writer waits between looks at a claimed row; ``clock``: epoch seconds for
    leases (injectable, so tests expire leases without sleeping). ``run_id``
    goes into the claim tokens for whoever reads the table.
    """

    DEFAULT_LEASE_S = 30.0

    def __init__(
        self,
        url: str,
        *,
        lease_s: float = DEFAULT_LEASE_S,
        heartbeat_s: float | None = None,
        poll_s: float = 0.05,
        max_poll_s: float = 1.0,
        clock: Callable[[], float] = time.time,
        run_id: str | None = None,
    ):
        super().__init__(url, ledger_items, content_library, audit_log, performance_daily)
        self.backfill_library()
        self.lease_s = lease_s
        self.heartbeat_s = heartbeat_s if heartbeat_s is not None else lease_s / 3
        self.poll_s = poll_s
        self.max_poll_s = max_poll_s
        self.clock = clock
        self.run_id = run_id

    def new_owner(self) -> str:
        """A fresh claim token for one writer (one ``run_items`` call)."""
        return claim_token(self.run_id)

    # ---- reads -----------------------------------------------------------
    def _select(self, table: sa.Table, *where: sa.ColumnElement[bool], order_by: Any = None) -> list[sa.Row]:
        query = sa.select(table).where(*where)
        if order_by is not None:
            query = query.order_by(order_by)
        return self._read(lambda conn: list(conn.execute(query)))

    def rows(self, scope: Scope) -> dict[str, LedgerRow]:
        t = ledger_items
        found = self._select(
            t, t.c.organization == scope.organization, t.c.campaign == scope.campaign, t.c.asset == scope.asset
        )
        return {r.item_key: _row(scope, r) for r in found}

    def row(self, scope: Scope, item_key: str) -> LedgerRow | None:
        found = self._select(ledger_items, *_match(scope, item_key))
        return _row(scope, found[0]) if found else None

    def campaign_rows(self, organization: str, campaign: str) -> list[LedgerRow]:
        t = ledger_items
        found = self._select(t, *_campaign(t, organization, campaign), order_by=t.c.created_at)
        return [_row(Scope(organization, campaign, r.asset), r) for r in found]

    def organizations(self, campaign: str) -> list[str]:
        """Every tenant the ledger holds rows of ``campaign`` for, sorted."""
        t = ledger_items
        query = sa.select(t.c.organization).where(t.c.campaign == campaign).distinct()
        return sorted(self._read(lambda conn: list(conn.execute(query).scalars())))

    def library(self, organization: str, campaign: str) -> list[dict[str, Any]]:
        t = content_library
        found = self._select(t, *_campaign(t, organization, campaign), order_by=t.c.piece_key)
        return [dict(r._mapping) for r in found]

    def backfill_library(self, organization: str | None = None, campaign: str | None = None, pattern: str | None = None) -> int:
        """Give vault rows written before the folder/metadata columns existed
        their values, without touching their content: vector = stakeholder
        group, auto_generated = true, status = draft, source = content_pieces;
        folder = ``Campaigns/{pattern}/{vector}`` when the campaign's pattern
        is given (``content_library`` passes it), else
        ``Campaigns/UNFILED/{vector}`` (on open, when no pattern is known).
        Only NULL columns change; rows already filed under UNFILED move to
        the real pattern once it is known. Returns the rows changed."""
        c = content_library
        where = [c.c.organization == organization, c.c.campaign == campaign] if organization else []

        def body(tx: sa.Connection) -> int:
            tx.execute(sa.update(c).where(*where, c.c.vector.is_(None)).values(vector=c.c.stakeholder_group))
            tx.execute(sa.update(c).where(*where, c.c.auto_generated.is_(None)).values(auto_generated=True))
            tx.execute(sa.update(c).where(*where, c.c.status.is_(None)).values(status="draft"))
            tx.execute(sa.update(c).where(*where, c.c.source.is_(None)).values(source="content_pieces"))
            tx.execute(sa.update(c).where(*where, c.c.timing.is_(None)).values(timing=""))
            unfiled = sa.or_(c.c.folder.is_(None), c.c.folder.like(f"Campaigns/{UNFILED_PATTERN}/%"))
            if not pattern:
                unfiled = c.c.folder.is_(None)
            rows = tx.execute(sa.select(c.c.organization, c.c.campaign, c.c.piece_key, c.c.vector).where(*where, unfiled)).all()
            for r in rows:
                tx.execute(
                    sa.update(c)
                    .where(c.c.organization == r.organization, c.c.campaign == r.campaign, c.c.piece_key == r.piece_key)
                    .values(folder=vault_folder(pattern or UNFILED_PATTERN, r.vector or ""))
                )
            return len(rows)

        return self._tx(body)

    def audit(self, organization: str, campaign: str) -> list[dict[str, Any]]:
        t = audit_log
        return [dict(r._mapping) for r in self._select(t, *_campaign(t, organization, campaign), order_by=t.c.id)]

    def counts(self) -> dict[str, int]:
        def read(conn: sa.Connection) -> dict[str, int]:
            return {
                t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                for t in (ledger_items, content_library, audit_log)
            }

        return self._read(read)

    def performance(self, organization: str, campaign: str, until: dt.date | None = None) -> pd.DataFrame:
        """The campaign's ``performance_daily`` rows (through ``until``,
        inclusive), ordered by day, source and object: the table's columns,
        ``day`` as dates, counts as int64. Empty (with the columns) when none."""
        t = performance_daily
        where = _campaign(t, organization, campaign) + ([t.c.day <= until] if until is not None else [])
        query = sa.select(t).where(*where).order_by(t.c.day, t.c.source, t.c.object_id)
        found = self._read(lambda conn: [dict(r._mapping) for r in conn.execute(query)])
        frame = pd.DataFrame(found, columns=PERFORMANCE_COLUMNS)
        return frame.astype({c: "int64" for c in PERFORMANCE_COUNTS})

    # ---- claims (the SQL is in core/claims.py) ----------------------------
    def claim_is_live(self, row: LedgerRow, owner: str | None = None) -> bool:
        """Whether ``row`` is claimed by someone other than ``owner`` who may
        still be working: a lease in the future and not provably dead."""
        return claims.claim_is_live(row, owner, self.clock())

    def claim(
        self, scope: Scope, item_key: str, service: str, content_hash: str, owner: str, seen: LedgerRow | None
    ) -> ClaimOutcome:
        """Atomically make ``owner`` the row's only writer, given the row as
        last ``seen`` (None: no row).

        - no row: INSERT ... ON CONFLICT DO NOTHING of a ``pending`` row;
        - a row: UPDATE ... WHERE it still has the status and content hash
          seen (a compare-and-swap: the caller's decision stays valid) and no
          live claim (owner NULL, lease expired, or the owner seen provably
          dead). A ``created`` row (an update is due) keeps its status and
          hash until the outcome is recorded; any other becomes ``pending``
          with this content hash and one more attempt.

        ``won``: the caller holds the claim and must release it by recording
        an outcome. ``busy``: someone else holds a live claim. ``changed``:
        the row moved on since ``seen``; read it again.
        """
        now = self.clock()
        new_row = _new_row(scope, item_key, service, _now(), status="pending", content_hash=content_hash)
        return self._tx(
            lambda conn: claims.take(
                conn, ledger_items, _match(scope, item_key), seen, new_row=new_row, content_hash=content_hash,
                owner=owner, now=now, lease=now + self.lease_s, updated_at=_now(),
            )
        )

    def renew(self, scope: Scope, item_keys: Iterable[str], owner: str) -> int:
        """Extend ``owner``'s claims on these items by a lease; how many it
        still held (a claim taken over after expiry is not renewed)."""
        keys = list(item_keys)
        if not keys:
            return 0
        t = ledger_items
        where = [*_campaign(t, scope.organization, scope.campaign), t.c.asset == scope.asset, t.c.item_key.in_(keys)]
        lease = self.clock() + self.lease_s
        return self._tx(lambda conn: claims.renew(conn, t, where, owner, lease))

    def release(self, scope: Scope, item_key: str, owner: str) -> None:
        """Give up ``owner``'s claim without recording an outcome."""
        self._tx(lambda conn: claims.release(conn, ledger_items, _match(scope, item_key), owner))

    # ---- writes ----------------------------------------------------------
    def record_success(
        self,
        scope: Scope,
        item_key: str,
        service: str,
        *,
        action: str,
        vendor_id: str,
        url: str | None,
        content_hash: str,
        payload: Mapping[str, Any],
        library_row: Mapping[str, Any] | None = None,
        fallback_reason: str | None = None,
        owner: str | None = None,
    ) -> None:
        """Ledger row, vault row and audit row in one transaction. With a
        ``fallback_reason`` the artifact was made by the local backend while
        the vendor was down: status ``fallback``, retried next time. The
        claim of ``owner`` (or no one's) is released in the same transaction;
        a claim someone else took over meanwhile is left to them."""
        now = _now()
        t = ledger_items
        values = dict(
            service=service,
            status="fallback" if fallback_reason else "created",
            vendor_id=vendor_id,
            url=url,
            content_hash=content_hash,
            payload=json.dumps(payload, sort_keys=True, default=str),
            error=fallback_reason,
            updated_at=now,
        )
        mine = sa.or_(t.c.owner.is_(None), t.c.owner == owner)
        released = values | dict(
            owner=sa.case((mine, None), else_=t.c.owner),
            lease_expires_at=sa.case((mine, None), else_=t.c.lease_expires_at),
        )

        def body(tx: sa.Connection) -> None:
            upsert(tx, t, _new_row(scope, item_key, service, now) | values, released)
            if library_row is not None:
                row = dict(library_row, updated_at=now)
                upsert(
                    tx,
                    content_library,
                    dict(organization=scope.organization, campaign=scope.campaign, **row),
                    {k: v for k, v in row.items() if k != "piece_key"},
                )
            _audit(tx, scope, item_key, action, vendor_id)

        self._tx(body)

    def record_failure(
        self, scope: Scope, item_key: str, service: str, content_hash: str, error: str, owner: str | None = None
    ) -> None:
        """Mark the row failed and release ``owner``'s claim, in one
        transaction with an audit row. A row someone else holds a claim on is
        left alone (their outcome will be recorded): only the audit row is
        written."""
        now = _now()
        t = ledger_items

        def body(tx: sa.Connection) -> None:
            upsert(
                tx,
                t,
                _new_row(scope, item_key, service, now, status="failed", content_hash=content_hash, error=error),
                dict(status="failed", error=error, updated_at=now, owner=None, lease_expires_at=None),
                where=sa.or_(t.c.owner.is_(None), t.c.owner == owner, t.c.lease_expires_at < self.clock()),
            )
            _audit(tx, scope, item_key, "failed", error)

        self._tx(body)

    def write_performance(self, rows: Iterable[Mapping[str, Any]] | pd.DataFrame) -> int:
        """Store delivery rows in ``performance_daily``, all in one
        transaction: an upsert on (organization, campaign, day, source,
        object_id), so fetching a day again replaces that day's rows with the
        new numbers (rows of other objects are left as they are). Each row
        names every key column, ``channel`` and ``currency``; a missing count
        is 0, a missing ``fetched_at`` now. Raises ``ValueError`` (nothing
        written) on a missing column or a negative count. Returns the rows
        written."""
        records = rows.to_dict("records") if isinstance(rows, pd.DataFrame) else list(rows)
        now = _now()
        values = [_performance_row(r, now) for r in records]

        def body(tx: sa.Connection) -> int:
            for row in values:
                upsert(tx, performance_daily, row, {k: v for k, v in row.items() if k not in PERFORMANCE_KEY})
            return len(values)

        return self._tx(body) if values else 0

    def mark_deleted(self, row: LedgerRow) -> None:
        now = _now()
        t = ledger_items

        def body(tx: sa.Connection) -> None:
            tx.execute(
                sa.update(t)
                .where(*_match(row.scope, row.item_key))
                .values(status="deleted", updated_at=now, owner=None, lease_expires_at=None)
            )
            if row.scope.asset in LIBRARY_ASSETS:
                c = content_library
                where = _campaign(c, row.scope.organization, row.scope.campaign)
                tx.execute(sa.delete(c).where(*where, c.c.piece_key == row.item_key))
            _audit(tx, row.scope, row.item_key, "deleted", row.vendor_id or "")

        self._tx(body)


# Assets whose items each own a vault row keyed by the item key.
LIBRARY_ASSETS = ("content_library", "market_research")


def _campaign(t: sa.Table, organization: str, campaign: str) -> list[sa.ColumnElement[bool]]:
    return [t.c.organization == organization, t.c.campaign == campaign]


def _match(scope: Scope, item_key: str) -> list[sa.ColumnElement[bool]]:
    t = ledger_items
    return [getattr(t.c, k) == v for k, v in _key(scope, item_key).items()]


def _key(scope: Scope, item_key: str) -> dict[str, str]:
    return dict(organization=scope.organization, campaign=scope.campaign, asset=scope.asset, item_key=item_key)


def _new_row(scope: Scope, item_key: str, service: str, now: dt.datetime, **values: Any) -> dict[str, Any]:
    """Every column of a ledger row seen for the first time; ``values`` win."""
    row = dict(
        **_key(scope, item_key),
        service=service,
        marker=scope.marker(item_key),
        payload="{}",
        attempts=1,
        created_at=now,
        updated_at=now,
    )
    return row | values


def _audit(conn: sa.Connection, scope: Scope, item_key: str, action: str, detail: str) -> None:
    conn.execute(sa.insert(audit_log).values(at=_now(), **_key(scope, item_key), action=action, detail=detail[:2000]))


def _performance_row(row: Mapping[str, Any], now: dt.datetime) -> dict[str, Any]:
    missing = [k for k in (*PERFORMANCE_KEY, "channel", "currency") if row.get(k) in (None, "")]
    if missing:
        raise ValueError(f"performance row {dict(row)!r} lacks {', '.join(missing)}")
    counts = {k: 0 if _blank(row.get(k)) else int(row[k]) for k in PERFORMANCE_COUNTS}
    negative = [k for k, v in counts.items() if v < 0]
    if negative:
        raise ValueError(f"performance row {dict(row)!r} has negative {', '.join(negative)}")
    day = row["day"]
    if isinstance(day, dt.datetime):  # also a pandas Timestamp
        day = day.date()
    elif not isinstance(day, dt.date):
        day = dt.date.fromisoformat(str(day))
    return dict(
        organization=str(row["organization"]),
        campaign=str(row["campaign"]),
        day=day,
        source=str(row["source"]),
        channel=str(row["channel"]),
        object_id=str(row["object_id"]),
        **counts,
        currency=str(row["currency"]),
        fetched_at=now if _blank(row.get("fetched_at")) else row["fetched_at"],
    )


def _blank(value: Any) -> bool:
    """None, or a pandas/NumPy missing value (NaN, NaT, NA)."""
    return value is None or (not isinstance(value, str) and bool(pd.isna(value)))


def _row(scope: Scope, r: sa.Row) -> LedgerRow:
    columns = {f.name: getattr(r, f.name) for f in fields(LedgerRow) if f.name not in ("scope", "payload")}
    return LedgerRow(scope=scope, payload=json.loads(r.payload or "{}"), **columns)
