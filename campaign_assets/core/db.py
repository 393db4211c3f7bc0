"""The ledger's database plumbing: engines, schema creation and migration,
and bounded retry of transactions (SQLAlchemy Core; SQLite and Postgres).

Shared by the ledger (``campaign_assets.ledger``) and the slot board
(``services/slots.py``), which live in the same database.

Every transaction runs under ``db_retry``: a bounded exponential backoff with
jitter on Postgres serialization failures and deadlocks, dropped connections
and SQLite's "database is locked".
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Self, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

metadata = sa.MetaData()

# Columns added after the first release, per table: added on open to older databases.
ADDED_COLUMNS: dict[str, tuple[str, ...]] = {
    "ledger_items": ("owner", "lease_expires_at"),
    # seed 000's vault layout (backfilled by Ledger.backfill_library)
    "content_library": ("folder", "vector", "timing", "source", "auto_generated", "status"),
}

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


def dialect_insert(conn: sa.Connection) -> Any:
    """The dialect's ``insert`` (the one with ``on_conflict_*``)."""
    dialect = conn.dialect.name
    insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}.get(dialect)
    if insert is None:
        raise RuntimeError(f"unsupported ledger database dialect {dialect!r}")
    return insert


def upsert(
    conn: sa.Connection,
    table: sa.Table,
    values: Mapping[str, Any],
    update: Mapping[str, Any],
    where: sa.ColumnElement[bool] | None = None,
) -> None:
    """INSERT ... ON CONFLICT (primary key) DO UPDATE [WHERE], for SQLite and Postgres."""
    keys = [c.name for c in table.primary_key.columns]
    stmt = dialect_insert(conn)(table).values(**values).on_conflict_do_update(index_elements=keys, set_=dict(update), where=where)
    conn.execute(stmt)


def create_ledger_engine(url: str) -> sa.Engine:
    """An engine for the ledger's database. Callers hand it back with
    ``dispose_ledger_engine`` when done.

    SQLite: a new engine (WAL, a 60 s busy timeout). Postgres: the process's
    one engine for ``url`` (``_shared_engine``)."""
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
    return _shared_engine(url)


def dispose_ledger_engine(engine: sa.Engine) -> None:
    """Done with an engine of ``create_ledger_engine``: a SQLite engine is
    closed; the process's shared Postgres engine stays open for the next step
    (its pool is bounded per process, not per caller)."""
    if engine.dialect.name == "sqlite":
        engine.dispose()


# Postgres: one engine per URL per process, with a small bounded pool.
#
# Every step opens a ledger and a slot board per service, and a run worker runs
# its steps as threads, many runs at once. Without a pool (NullPool, as
# dagster-postgres) every statement opened a connection: Postgres forked a
# backend per slot claim, lease renewal and ledger write, about 400 a second in
# a 50-campaign backfill, over half of two cores in system time, and a statement
# took 37 ms instead of 0.7 ms on the loaded machine. An engine per step with a
# pool would keep idle connections per step and run out of Postgres's 100.
# So the pool is per process: at most POOL_SIZE + POOL_OVERFLOW connections,
# POOL_SIZE of them kept idle, whatever the number of steps; a thread that
# finds them all busy waits its turn (up to POOL_TIMEOUT_S). This is a cache of
# connections, not state: a forked child drops its parent's (they are the
# parent's sockets) and opens its own.
POOL_SIZE = 2
POOL_OVERFLOW = 3
POOL_TIMEOUT_S = 60.0
_engines: dict[str, sa.Engine] = {}
_engines_lock = threading.Lock()


def _shared_engine(url: str) -> sa.Engine:
    with _engines_lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _engines[url] = sa.create_engine(
                url, pool_size=POOL_SIZE, max_overflow=POOL_OVERFLOW, pool_timeout=POOL_TIMEOUT_S
            )
        return engine


def _forget_engines_after_fork() -> None:
    global _engines_lock
    _engines_lock = threading.Lock()  # a thread of the parent may have held it at the fork
    for engine in _engines.values():
        engine.dispose(close=False)  # the parent's connections stay the parent's
    _engines.clear()


os.register_at_fork(after_in_child=_forget_engines_after_fork)


def create_tables(engine: sa.Engine, *tables: sa.Table) -> None:
    """CREATE TABLE IF NOT EXISTS, tolerating the race of several step
    processes starting at once on a fresh database: each table is created on
    its own (with its indexes, in one transaction), and a loser that sees
    "already exists" checks that the table is there and moves on. Then the
    columns later versions added (``add_missing_columns``)."""
    for table in tables:
        for attempt in range(_CREATE_ATTEMPTS):
            try:
                table.create(engine, checkfirst=True)
                break
            except (sa.exc.OperationalError, sa.exc.ProgrammingError, sa.exc.IntegrityError):
                if sa.inspect(engine).has_table(table.name):
                    break  # another process created it between our check and our CREATE
                if attempt == _CREATE_ATTEMPTS - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))
    add_missing_columns(engine, *tables)


_CREATE_ATTEMPTS = 5


def add_missing_columns(engine: sa.Engine, *tables: sa.Table) -> None:
    """Bring a table created by an earlier version up to date: ALTER TABLE
    ADD COLUMN for each column in ``ADDED_COLUMNS`` it lacks (all nullable,
    so no row changes). Two processes may race: Postgres uses ADD COLUMN IF
    NOT EXISTS; on SQLite the loser's "duplicate column" is checked away."""
    for table in tables:
        wanted = ADDED_COLUMNS.get(table.name, ())
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


class Database:
    """One engine over some tables (created and migrated on open), with
    transactions and reads retried on transient errors. A context manager."""

    def __init__(self, url: str, *tables: sa.Table):
        self.url = url
        self.engine = create_ledger_engine(url)
        create_tables(self.engine, *tables)

    def dispose(self) -> None:
        """Done with the database (``dispose_ledger_engine``). Safe to call
        more than once; the engine reconnects if it is used again."""
        dispose_ledger_engine(self.engine)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.dispose()

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
