"""The item ledger, the content library (the vault) and the audit log (DESIGN.md §4).

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
documented once, in ``campaign_assets.items``.

Every transaction runs under ``db_retry``: a bounded exponential backoff with
jitter on Postgres serialization failures and deadlocks, dropped connections
and SQLite's "database is locked".
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

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
    # The claim: who is working on the row now (a ``claim_token``) and until
    # when (epoch seconds) unless renewed. NULL owner: nobody.
    sa.Column("owner", sa.String(200)),
    sa.Column("lease_expires_at", sa.Float),
)

# Columns added after the first release: added on open to older ledgers.
_ADDED_COLUMNS: dict[str, tuple[str, ...]] = {"ledger_items": ("owner", "lease_expires_at")}

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
    owner: str | None = None
    lease_expires_at: float | None = None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


# ---- claim tokens and owner liveness ------------------------------------------
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


# ---- bounded retry of database transactions -----------------------------------
_T = TypeVar("_T")
_TRANSIENT_SQLSTATES = {"40001", "40P01"}  # serialization failure, deadlock detected
_LOCKED_MESSAGES = ("database is locked", "database table is locked")


def is_transient_db_error(exc: BaseException) -> bool:
    """Whether re-running the whole transaction may succeed: Postgres
    serialization failures (40001) and deadlocks (40P01), a dropped
    connection, SQLite's "database is locked"."""
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    orig = getattr(exc, "orig", None) or exc
    code = getattr(orig, "pgcode", None) or getattr(orig, "sqlstate", None)
    if code in _TRANSIENT_SQLSTATES:
        return True
    if isinstance(exc, (sa.exc.OperationalError,)) or orig.__class__.__name__ == "OperationalError":
        text = str(orig).lower()
        return any(m in text for m in _LOCKED_MESSAGES)
    return False


def db_retry(
    fn: Callable[[], _T],
    *,
    attempts: int = 5,
    base_s: float = 0.05,
    max_s: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> _T:
    """Run ``fn`` (a whole transaction) and re-run it on a transient database
    error, at most ``attempts`` times, sleeping a full-jitter exponential
    backoff (base_s * 2**n, capped at max_s) between tries. Other errors, and
    the last transient one, propagate."""
    rng = rng or random
    for n in range(attempts):
        try:
            return fn()
        except Exception as exc:
            if n == attempts - 1 or not is_transient_db_error(exc):
                raise
            sleep(rng.uniform(0, min(max_s, base_s * (2**n))))
    raise AssertionError("unreachable")  # pragma: no cover


def _insert(conn: sa.Connection):
    dialect = conn.dialect.name
    insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}.get(dialect)
    if insert is None:
        raise RuntimeError(f"unsupported ledger database dialect {dialect!r}")
    return insert


def _upsert(
    conn: sa.Connection,
    table: sa.Table,
    values: Mapping[str, Any],
    update: Mapping[str, Any],
    where: sa.ColumnElement[bool] | None = None,
) -> None:
    """INSERT ... ON CONFLICT (primary key) DO UPDATE [WHERE], for SQLite and Postgres."""
    keys = [c.name for c in table.primary_key.columns]
    stmt = _insert(conn)(table).values(**values).on_conflict_do_update(index_elements=keys, set_=dict(update), where=where)
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
    processes starting at once (the loser sees a duplicate and re-checks),
    then the columns later versions added (``add_missing_columns``)."""
    for attempt in range(3):
        try:
            metadata.create_all(engine, tables=list(tables), checkfirst=True)
            break
        except (sa.exc.OperationalError, sa.exc.ProgrammingError, sa.exc.IntegrityError):
            if attempt == 2:
                raise
    add_missing_columns(engine, *tables)


def add_missing_columns(engine: sa.Engine, *tables: sa.Table) -> None:
    """Bring a table created by an earlier version up to date: ALTER TABLE
    ADD COLUMN for each column in ``_ADDED_COLUMNS`` it lacks (all nullable,
    so no row changes). Two processes may race: Postgres uses ADD COLUMN IF
    NOT EXISTS; on SQLite the loser's "duplicate column" is checked away."""
    for table in tables:
        wanted = _ADDED_COLUMNS.get(table.name, ())
        if not wanted:
            continue
        have = {c["name"] for c in sa.inspect(engine).get_columns(table.name)}
        for name in wanted:
            if name in have:
                continue
            column = table.c[name]
            ddl_type = column.type.compile(dialect=engine.dialect)
            if_not_exists = "IF NOT EXISTS " if engine.dialect.name == "postgresql" else ""
            statement = sa.text(f"ALTER TABLE {table.name} ADD COLUMN {if_not_exists}{name} {ddl_type}")
            try:
                db_retry(lambda: _execute_ddl(engine, statement))
            except (sa.exc.OperationalError, sa.exc.ProgrammingError, sa.exc.IntegrityError):
                # Another process added it first (or a racing Postgres catalog
                # update): fine if the column is there now.
                if name not in {c["name"] for c in sa.inspect(engine).get_columns(table.name)}:
                    raise


def _execute_ddl(engine: sa.Engine, statement: sa.TextClause) -> None:
    with engine.begin() as conn:
        conn.execute(statement)


ClaimOutcome = Literal["won", "busy", "changed"]


class Ledger:
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
        self.url = url
        self.lease_s = lease_s
        self.heartbeat_s = heartbeat_s if heartbeat_s is not None else lease_s / 3
        self.poll_s = poll_s
        self.max_poll_s = max_poll_s
        self.clock = clock
        self.run_id = run_id
        self.engine = create_ledger_engine(url)
        create_tables(self.engine, ledger_items, content_library, audit_log)

    def dispose(self) -> None:
        """Close pooled connections. Safe to call more than once; the engine
        reconnects if the ledger is used again."""
        self.engine.dispose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.dispose()

    @contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        with self.engine.begin() as conn:
            yield conn

    def _tx(self, body: Callable[[sa.Connection], _T]) -> _T:
        """``body`` in one transaction, the whole transaction retried on a
        transient database error (``db_retry``)."""

        def once() -> _T:
            with self.engine.begin() as conn:
                return body(conn)

        return db_retry(once)

    def _read(self, body: Callable[[sa.Connection], _T]) -> _T:
        def once() -> _T:
            with self.engine.connect() as conn:
                return body(conn)

        return db_retry(once)

    def new_owner(self) -> str:
        """A fresh claim token for one writer (one ``run_items`` call)."""
        return claim_token(self.run_id)

    # ---- reads -----------------------------------------------------------
    def rows(self, scope: Scope) -> dict[str, LedgerRow]:
        t = ledger_items

        def read(conn: sa.Connection) -> dict[str, LedgerRow]:
            result = conn.execute(
                sa.select(t).where(
                    t.c.organization == scope.organization,
                    t.c.campaign == scope.campaign,
                    t.c.asset == scope.asset,
                )
            )
            return {r.item_key: _row(scope, r) for r in result}

        return self._read(read)

    def row(self, scope: Scope, item_key: str) -> LedgerRow | None:
        t = ledger_items

        def read(conn: sa.Connection) -> LedgerRow | None:
            r = conn.execute(sa.select(t).where(*_match(scope, item_key))).first()
            return _row(scope, r) if r is not None else None

        return self._read(read)

    def campaign_rows(self, organization: str, campaign: str) -> list[LedgerRow]:
        t = ledger_items

        def read(conn: sa.Connection) -> list[LedgerRow]:
            result = conn.execute(
                sa.select(t)
                .where(t.c.organization == organization, t.c.campaign == campaign)
                .order_by(t.c.created_at)
            )
            return [_row(Scope(organization, campaign, r.asset), r) for r in result]

        return self._read(read)

    def library(self, organization: str, campaign: str) -> list[dict[str, Any]]:
        t = content_library

        def read(conn: sa.Connection) -> list[dict[str, Any]]:
            result = conn.execute(
                sa.select(t)
                .where(t.c.organization == organization, t.c.campaign == campaign)
                .order_by(t.c.piece_key)
            )
            return [dict(r._mapping) for r in result]

        return self._read(read)

    def audit(self, organization: str, campaign: str) -> list[dict[str, Any]]:
        t = audit_log

        def read(conn: sa.Connection) -> list[dict[str, Any]]:
            result = conn.execute(
                sa.select(t).where(t.c.organization == organization, t.c.campaign == campaign).order_by(t.c.id)
            )
            return [dict(r._mapping) for r in result]

        return self._read(read)

    def counts(self) -> dict[str, int]:
        def read(conn: sa.Connection) -> dict[str, int]:
            return {
                t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                for t in (ledger_items, content_library, audit_log)
            }

        return self._read(read)

    # ---- claims ------------------------------------------------------------
    def claim_is_live(self, row: LedgerRow, owner: str | None = None) -> bool:
        """Whether ``row`` is claimed by someone other than ``owner`` who may
        still be working: a lease in the future and not provably dead."""
        if row.owner is None or row.owner == owner:
            return False
        if row.lease_expires_at is None or row.lease_expires_at < self.clock():
            return False
        return not owner_is_dead(row.owner)

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
        lease = now + self.lease_s
        t = ledger_items

        def body(conn: sa.Connection) -> ClaimOutcome:
            if seen is None:
                stmt = (
                    _insert(conn)(t)
                    .values(
                        **_new_row(scope, item_key, service, _now(), status="pending", content_hash=content_hash),
                        owner=owner,
                        lease_expires_at=lease,
                    )
                    .on_conflict_do_nothing(index_elements=[c.name for c in t.primary_key.columns])
                )
                return "won" if conn.execute(stmt).rowcount == 1 else "changed"
            free = [t.c.owner.is_(None), t.c.lease_expires_at.is_(None), t.c.lease_expires_at < now]
            if seen.owner is not None and seen.owner != owner and owner_is_dead(seen.owner):
                free.append(t.c.owner == seen.owner)
            if seen.owner == owner:
                free.append(t.c.owner == owner)
            values: dict[str, Any] = dict(owner=owner, lease_expires_at=lease, updated_at=_now())
            if seen.status != "created":
                values |= dict(status="pending", content_hash=content_hash, attempts=t.c.attempts + 1)
            claimed = conn.execute(
                sa.update(t)
                .where(
                    *_match(scope, item_key),
                    t.c.status == seen.status,
                    t.c.content_hash.is_not_distinct_from(seen.content_hash),
                    sa.or_(*free),
                )
                .values(**values)
            ).rowcount
            if claimed == 1:
                return "won"
            current = conn.execute(sa.select(t).where(*_match(scope, item_key))).first()
            if current is None or current.status != seen.status or current.content_hash != seen.content_hash:
                return "changed"
            return "busy"

        return self._tx(body)

    def renew(self, scope: Scope, item_keys: Iterable[str], owner: str) -> int:
        """Extend ``owner``'s claims on these items by a lease; how many it
        still held (a claim taken over after expiry is not renewed)."""
        keys = list(item_keys)
        if not keys:
            return 0
        t = ledger_items
        lease = self.clock() + self.lease_s

        def body(conn: sa.Connection) -> int:
            return conn.execute(
                sa.update(t)
                .where(
                    t.c.organization == scope.organization,
                    t.c.campaign == scope.campaign,
                    t.c.asset == scope.asset,
                    t.c.item_key.in_(keys),
                    t.c.owner == owner,
                )
                .values(lease_expires_at=lease)
            ).rowcount

        return self._tx(body)

    def release(self, scope: Scope, item_key: str, owner: str) -> None:
        """Give up ``owner``'s claim without recording an outcome."""
        t = ledger_items
        self._tx(
            lambda conn: conn.execute(
                sa.update(t).where(*_match(scope, item_key), t.c.owner == owner).values(owner=None, lease_expires_at=None)
            )
        )

    # ---- writes ----------------------------------------------------------
    def mark_pending(self, scope: Scope, item_key: str, service: str, content_hash: str) -> None:
        """Record the intent before a create, unconditionally (kept for
        callers outside the item runner, which claims instead: ``claim``)."""
        now = _now()
        self._tx(
            lambda conn: _upsert(
                conn,
                ledger_items,
                _new_row(scope, item_key, service, now, status="pending", content_hash=content_hash),
                dict(status="pending", attempts=ledger_items.c.attempts + 1, updated_at=now),
            )
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
            _upsert(tx, t, _new_row(scope, item_key, service, now) | values, released)
            if library_row is not None:
                row = dict(library_row, updated_at=now)
                _upsert(
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
            _upsert(
                tx,
                t,
                _new_row(scope, item_key, service, now, status="failed", content_hash=content_hash, error=error),
                dict(status="failed", error=error, updated_at=now, owner=None, lease_expires_at=None),
                where=sa.or_(t.c.owner.is_(None), t.c.owner == owner, t.c.lease_expires_at < self.clock()),
            )
            _audit(tx, scope, item_key, "failed", error)

        self._tx(body)

    def mark_deleted(self, row: LedgerRow) -> None:
        now = _now()
        t = ledger_items

        def body(tx: sa.Connection) -> None:
            tx.execute(
                sa.update(t)
                .where(*_match(row.scope, row.item_key))
                .values(status="deleted", updated_at=now, owner=None, lease_expires_at=None)
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

        self._tx(body)


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
        owner=r.owner,
        lease_expires_at=r.lease_expires_at,
    )
