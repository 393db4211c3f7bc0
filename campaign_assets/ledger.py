"""The item ledger, the content library (the vault) and the audit log (DESIGN.md §4).

SQLAlchemy Core, one code path for SQLite (the embedded default) and
Postgres (when a URL is configured). Every side effect outside Dagster is a
ledger row keyed by (organization, campaign, asset, item key); a successful
item writes its ledger row, its vault row (if any) and an audit row in one
transaction.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

metadata = sa.MetaData()



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
)

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


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _upsert(conn: sa.Connection, table: sa.Table, values: Mapping[str, Any], update: Mapping[str, Any]) -> None:
    """INSERT ... ON CONFLICT (primary key) DO UPDATE, for SQLite and Postgres."""
    dialect = conn.dialect.name
    insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}.get(dialect)
    if insert is None:
        raise RuntimeError(f"unsupported ledger database dialect {dialect!r}")
    keys = [c.name for c in table.primary_key.columns]
    stmt = insert(table).values(**values).on_conflict_do_update(index_elements=keys, set_=dict(update))
    conn.execute(stmt)


def create_ledger_engine(url: str) -> sa.Engine:
    if url.startswith("sqlite"):
        database = sa.engine.make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 60})

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.close()

        return engine
    return sa.create_engine(url, pool_pre_ping=True)


def create_tables(engine: sa.Engine, *tables: sa.Table) -> None:
    """CREATE TABLE IF NOT EXISTS, tolerating the race of several step
    processes starting at once (the loser sees a duplicate and re-checks)."""
    for attempt in range(3):
        try:
            metadata.create_all(engine, tables=list(tables), checkfirst=True)
            return
        except (sa.exc.OperationalError, sa.exc.ProgrammingError, sa.exc.IntegrityError):
            if attempt == 2:
                raise


class Ledger:
    """Typed access to the three tables. Cheap to create; one per step."""

    def __init__(self, url: str):
        self.url = url
        self.engine = create_ledger_engine(url)
        create_tables(self.engine, ledger_items, content_library, audit_log)

    def dispose(self) -> None:
        self.engine.dispose()

    @contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        with self.engine.begin() as conn:
            yield conn

    # ---- reads -----------------------------------------------------------
    def rows(self, scope: Scope) -> dict[str, LedgerRow]:
        t = ledger_items
        with self.engine.connect() as conn:
            result = conn.execute(
                sa.select(t).where(
                    t.c.organization == scope.organization,
                    t.c.campaign == scope.campaign,
                    t.c.asset == scope.asset,
                )
            )
            return {r.item_key: _row(scope, r) for r in result}

    def campaign_rows(self, organization: str, campaign: str) -> list[LedgerRow]:
        t = ledger_items
        with self.engine.connect() as conn:
            result = conn.execute(
                sa.select(t)
                .where(t.c.organization == organization, t.c.campaign == campaign)
                .order_by(t.c.created_at)
            )
            return [_row(Scope(organization, campaign, r.asset), r) for r in result]

    def library(self, organization: str, campaign: str) -> list[dict[str, Any]]:
        t = content_library
        with self.engine.connect() as conn:
            result = conn.execute(
                sa.select(t)
                .where(t.c.organization == organization, t.c.campaign == campaign)
                .order_by(t.c.piece_key)
            )
            return [dict(r._mapping) for r in result]

    def audit(self, organization: str, campaign: str) -> list[dict[str, Any]]:
        t = audit_log
        with self.engine.connect() as conn:
            result = conn.execute(
                sa.select(t).where(t.c.organization == organization, t.c.campaign == campaign).order_by(t.c.id)
            )
            return [dict(r._mapping) for r in result]

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return {
                t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                for t in (ledger_items, content_library, audit_log)
            }

    # ---- writes ----------------------------------------------------------
    def mark_pending(self, scope: Scope, item_key: str, service: str, content_hash: str) -> None:
        """Record the intent before a create: a crash or a lost response leaves
        a pending row the next attempt reconciles instead of creating again."""
        now = _now()
        with self.transaction() as conn:
            _upsert(
                conn,
                ledger_items,
                _new_row(scope, item_key, service, now, status="pending", content_hash=content_hash),
                dict(status="pending", attempts=ledger_items.c.attempts + 1, updated_at=now),
            )

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
    ) -> None:
        """Ledger row, vault row and audit row in one transaction. With a
        ``fallback_reason`` the artifact was made by the local backend while
        the vendor was down: status ``fallback``, retried next time."""
        now = _now()
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
        with self.transaction() as tx:
            _upsert(tx, ledger_items, _new_row(scope, item_key, service, now) | values, values)
            if library_row is not None:
                row = dict(library_row, updated_at=now)
                _upsert(
                    tx,
                    content_library,
                    dict(organization=scope.organization, campaign=scope.campaign, **row),
                    {k: v for k, v in row.items() if k != "piece_key"},
                )
            _audit(tx, scope, item_key, action, vendor_id)

    def record_failure(self, scope: Scope, item_key: str, service: str, content_hash: str, error: str) -> None:
        now = _now()
        with self.transaction() as tx:
            _upsert(
                tx,
                ledger_items,
                _new_row(scope, item_key, service, now, status="failed", content_hash=content_hash, error=error),
                dict(status="failed", error=error, updated_at=now),
            )
            _audit(tx, scope, item_key, "failed", error)

    def mark_deleted(self, row: LedgerRow) -> None:
        now = _now()
        t = ledger_items
        with self.transaction() as tx:
            tx.execute(
                sa.update(t)
                .where(*(getattr(t.c, k) == v for k, v in _key(row.scope, row.item_key).items()))
                .values(status="deleted", updated_at=now)
            )
            if row.scope.asset == "content_library":
                c = content_library
                tx.execute(
                    sa.delete(c).where(
                        c.c.organization == row.scope.organization,
                        c.c.campaign == row.scope.campaign,
                        c.c.piece_key == row.item_key,
                    )
                )
            _audit(tx, row.scope, row.item_key, "deleted", row.vendor_id or "")


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
    conn.execute(
        sa.insert(audit_log).values(
            at=_now(),
            organization=scope.organization,
            campaign=scope.campaign,
            asset=scope.asset,
            item_key=item_key,
            action=action,
            detail=detail[:2000],
        )
    )


def _row(scope: Scope, r: sa.Row) -> LedgerRow:
    return LedgerRow(
        scope=scope,
        item_key=r.item_key,
        service=r.service,
        status=r.status,
        vendor_id=r.vendor_id,
        url=r.url,
        marker=r.marker,
        content_hash=r.content_hash,
        payload=json.loads(r.payload or "{}"),
        error=r.error,
        attempts=r.attempts,
    )
