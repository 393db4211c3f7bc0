"""Shared fixtures: a temporary project (campaigns, workspace, ledger) and a real Postgres database."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from campaign_assets.sandbox.config import SandboxConfig
from campaign_assets.sandbox.server import SandboxServer

PROJECT = Path(__file__).resolve().parents[1]
EXAMPLES = PROJECT / "campaigns"
SEED = "q4-product-launch"
# Client tests: a fast sandbox whose timeout faults outlast the clients' short timeouts.
CLIENT_SANDBOX = {"scale": 0.001, "timeout_hold_s": 1.0}
PG_ADMIN_URL = os.environ.get("CAMPAIGN_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment of a fresh project: the example campaigns, an empty
    workspace and ledger, set in os.environ (where EnvVar resolves) and
    returned for ``build_resources``/``build_defs``."""
    campaigns = tmp_path / "campaigns"
    shutil.copytree(EXAMPLES, campaigns)
    env = {"CAMPAIGNS_DIR": str(campaigns), "WORKSPACE_DIR": str(tmp_path / "workspace")}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def _postgres_reachable() -> str | None:
    try:
        engine = sa.create_engine(PG_ADMIN_URL)
        with engine.connect():
            pass
        engine.dispose()
        return None
    except sa.exc.OperationalError as exc:
        return str(exc).splitlines()[0]


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh Postgres database, dropped afterwards. In CI an unreachable
    server fails the test; elsewhere it skips with the reason."""
    problem = _postgres_reachable()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"Postgres must be reachable in CI at {PG_ADMIN_URL}: {problem}")
        pytest.skip(f"no Postgres at {PG_ADMIN_URL}: {problem}")
    name = f"ca_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="module")
def sandbox_server() -> Iterator[SandboxServer]:
    """One vendor sandbox per test module, on a free port."""
    with SandboxServer(SandboxConfig(**CLIENT_SANDBOX)) as server:
        yield server


@pytest.fixture
def sandbox(sandbox_server: SandboxServer) -> SandboxServer:
    """The module's sandbox with a clean slate: no objects, calls or queued faults."""
    sandbox_server.reset(**CLIENT_SANDBOX)
    return sandbox_server
