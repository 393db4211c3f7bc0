"""Exactly once however a campaign is run: two launches at once, a launch killed
with SIGKILL, a vendor that refuses; against the vendor sandbox, as a person runs
them (``campaign-assets launch`` in subprocesses)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml

from campaign_assets.core.claims import owner_is_dead
from campaign_assets.ledger import Ledger
from campaign_assets.sandbox.config import SandboxConfig
from campaign_assets.sandbox.server import SandboxServer, service_env
from campaign_assets.services.slots import SlotBoard

from campaign_assets_tests.support.processes import wait_for
from campaign_assets_tests.support.sandbox import objects_by_marker

from .conftest import EXAMPLES, PROJECT, SEED

FAST = {"HTTP_BACKOFF_S": "0.01", "HTTP_MAX_ATTEMPTS": "6", "CANVA_POLL_INTERVAL_S": "0.02"}
UNSEEN = "harbor-expo-2027"


def unseen_spec(folder: Path, pieces: int = 20, sizes: int = 6) -> Path:
    """A campaign none of the examples resembles: 20 content pieces, 6 creative sizes."""
    data = yaml.safe_load((EXAMPLES / f"{SEED}.yaml").read_text())
    groups = ["Port Authorities", "Freight Forwarders", "Shipping Lines", "Customs Brokers", "Terminal Operators"]
    types = ["blog-post", "email", "social-post", "press-release"]
    data |= {
        "id": UNSEEN,
        "name": "Harbor Expo 2027",
        "organization": "initech",
        "brand": {"name": "Initech", "primary_color": "#7A1FA2", "website": "https://initech.example"},
        "vectors": [
            {"stakeholder_group": g, "timing": f"Week {i + 1}", "content_types": types} for i, g in enumerate(groups)
        ],
        "creative_sizes": ["300x250", "728x90", "160x600", "320x50", "1200x628", "300x600"][:sizes],
    }
    assert len(groups) * len(types) == pieces
    path = folder / f"{UNSEEN}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(SandboxConfig(scale=0.01, timeout_hold_s=1.0, seed=5)) as server:
        yield server


@pytest.fixture(params=["sqlite", "postgres"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """Dagster storage and the ledger: both in SQLite (the embedded default), or
    both in one Postgres database (dagster.postgres.yaml, as in production)."""
    home = tmp_path / "home"
    if request.param == "sqlite":
        return {"DAGSTER_HOME": str(home)}
    url = request.getfixturevalue("pg_url")
    home.mkdir()
    (home / "dagster.yaml").write_text((PROJECT / "dagster.postgres.yaml").read_text())
    return {"DAGSTER_HOME": str(home), "DAGSTER_PG_URL": url, "CAMPAIGN_LEDGER_URL": url}


@pytest.fixture
def env(project: dict[str, str], sandbox: SandboxServer, storage: dict[str, str]) -> dict[str, str]:
    """A fresh project against the sandbox, on a fresh DAGSTER_HOME, with only the unseen campaign."""
    campaigns = Path(project["CAMPAIGNS_DIR"])
    for spec in campaigns.glob("*.yaml"):
        spec.unlink()
    unseen_spec(campaigns)
    return os.environ | project | service_env(sandbox.url) | FAST | storage


def launch(env: dict[str, str], cwd: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "campaign_assets.cli", "launch", UNSEEN, *args],
        env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )


def finish(process: subprocess.Popen, timeout: float = 600) -> tuple[int, str]:
    out, _ = process.communicate(timeout=timeout)
    return process.returncode, out


def expected_kinds(spec_path: Path) -> Counter:
    from campaign_assets.spec import load_spec

    spec = load_spec(spec_path)
    return Counter({
        ("google-docs", "document"): 2,  # brief and report
        ("google-sheets", "spreadsheet"): 1,
        ("asana", "project"): 1,
        ("asana", "task"): len(spec.launch_tasks()),
        ("canva", "design"): len(spec.creative_sizes),
        ("slack", "message"): 1,
    })


def assert_exactly_one_of_everything(sandbox: SandboxServer, spec_path: Path) -> None:
    objects = objects_by_marker(sandbox.state())
    assert max(objects.values()) == 1, [k for k, n in objects.items() if n > 1]  # no duplicate
    kinds = Counter((vendor, kind) for vendor, kind, _ in objects)
    for kind, n in expected_kinds(spec_path).items():
        assert kinds[kind] == n, (kind, kinds[kind], n)  # nothing missing either


def ledger_url(env: dict[str, str]) -> str:
    return env.get("CAMPAIGN_LEDGER_URL") or f"sqlite:///{Path(env['WORKSPACE_DIR']) / 'ledger.sqlite'}"


def ledger_of(env: dict[str, str]) -> Ledger:
    return Ledger(ledger_url(env))


@pytest.mark.slow
def test_two_launches_at_once_on_a_fresh_instance_both_end_clean_with_one_of_everything(
    env: dict[str, str], sandbox: SandboxServer, tmp_path: Path
) -> None:
    first, second = launch(env, tmp_path), launch(env, tmp_path)
    (code1, out1), (code2, out2) = finish(first), finish(second)
    for code, out in ((code1, out1), (code2, out2)):
        assert code == 0, out[-4000:]
        assert "Traceback" not in out and f"{UNSEEN}: SUCCESS" in out, out[-4000:]
    assert "waiting" in out1 + out2  # one said plainly that it waited for the other
    assert_exactly_one_of_everything(sandbox, Path(env["CAMPAIGNS_DIR"]) / f"{UNSEEN}.yaml")
    library = ledger_of(env).library("initech", UNSEEN)
    assert len(library) == 20 and len({r["piece_key"] for r in library}) == 20


def _rows(engine: sa.Engine) -> list[tuple[str, str]]:
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text("SELECT asset, status FROM ledger_items"))]
    except sa.exc.DBAPIError:  # the table is not there yet
        return []


@pytest.mark.slow
def test_a_launch_killed_with_sigkill_then_launched_again_is_exact_and_frees_everything(
    env: dict[str, str], sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox.reset(scale=0.05)  # long enough calls to be killed mid-item
    if "CAMPAIGN_LEDGER_URL" not in env:
        Path(env["WORKSPACE_DIR"]).mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(ledger_url(env))
    victim = launch(env, tmp_path)

    def mid_item() -> bool:  # kill once items are in flight and some are done
        statuses = Counter(s for _, s in _rows(engine))
        if statuses["created"] >= 5 and statuses["pending"] >= 1:
            return True
        assert victim.poll() is None, victim.communicate()[0][-3000:]
        return False

    wait_for("the launch to have items in flight", mid_item, timeout=300, interval=0.1)
    os.killpg(victim.pid, signal.SIGKILL)  # the launch and every step process, mid-item
    victim.wait()

    code, out = finish(launch(env, tmp_path), timeout=600)
    assert code == 0, out[-4000:]
    assert "left STARTED by a launch that is gone" in out, out[-3000:]
    assert_exactly_one_of_everything(sandbox, Path(env["CAMPAIGNS_DIR"]) / f"{UNSEEN}.yaml")

    if "DAGSTER_PG_URL" in env:
        monkeypatch.setenv("DAGSTER_PG_URL", env["DAGSTER_PG_URL"])
    instance = dg.DagsterInstance.from_config(env["DAGSTER_HOME"])
    try:
        statuses = Counter(r.status for r in instance.get_runs())
        assert statuses == Counter({dg.DagsterRunStatus.FAILURE: 1, dg.DagsterRunStatus.SUCCESS: 1}), statuses
        storage = instance.event_log_storage
        for pool in storage.get_concurrency_keys():
            assert not storage.get_concurrency_info(pool).claimed_slots, pool  # no pool slot held
    finally:
        instance.dispose()
    # A step process forked in the instant of the kill can outlive it (it was
    # not in the group yet) and finish its step; once every holder is gone,
    # what a dead one still holds is freed the way the next launch frees it.
    def holders() -> list[str]:
        with engine.connect() as conn:
            return [h for (h,) in conn.execute(sa.text("SELECT holder FROM service_slots WHERE holder IS NOT NULL"))]

    wait_for("every slot holder to finish or die", lambda: all(owner_is_dead(h) for h in holders()), timeout=300, interval=0.5)
    board = SlotBoard(ledger_url(env))
    board.free_dead_holders()
    board.dispose()
    with engine.connect() as conn:
        held = conn.execute(sa.text("SELECT count(*) FROM service_slots WHERE holder IS NOT NULL")).scalar_one()
        pending = conn.execute(sa.text("SELECT count(*) FROM ledger_items WHERE status = 'pending'")).scalar_one()
    engine.dispose()
    assert held == 0 and pending == 0


@pytest.mark.slow
@pytest.mark.parametrize("storage", ["sqlite"], indirect=True)
def test_a_revoked_google_token_still_makes_every_other_asset_and_the_report_names_it(
    env: dict[str, str], sandbox: SandboxServer, tmp_path: Path
) -> None:
    env = env | {"GOOGLE_ACCESS_TOKEN": "revoked-google-token"}
    code, out = finish(launch(env, tmp_path))
    assert code == 0, out[-4000:]  # the brief, plan and report exist locally: flagged, not failed
    assert f"{UNSEEN}: SUCCESS" in out
    for asset in ("campaign_brief", "media_plan", "project_tasks", "creatives", "content_pieces",
                  "content_library", "landing_page", "dsp_activation", "summary_report"):
        assert f"  {asset}" in out, asset
    folder = Path(env["WORKSPACE_DIR"]) / "initech" / UNSEEN
    brief, report = (folder / "brief.md").read_text(), (folder / "summary_report.md").read_text()
    assert "## Objective" in brief
    assert "`campaign_brief` / `brief`" in report and "HTTP 401" in report  # the refusal, with its reason
    assert (folder / "media_plan.csv").exists() and (folder / "landing_page.html").exists()
    rows = {(r.scope.asset, r.item_key): r for r in ledger_of(env).campaign_rows("initech", UNSEEN)}
    assert rows[("campaign_brief", "brief")].status == "fallback"
    assert rows[("media_plan", "spreadsheet")].status == "fallback"
    assert sum(r.scope.asset == "content_pieces" and r.status == "created" for r in rows.values()) == 20
    google_calls = [c for c in sandbox.state()["calls"] if c["vendor"].startswith("google")]
    assert all(c["status"] == 401 for c in google_calls)
    assert len(google_calls) <= 6  # refused once per step and no retry spent on a permanent refusal

    # The token works again: the next launch publishes what was made locally.
    code, out = finish(launch(env | {"GOOGLE_ACCESS_TOKEN": "sandbox-google-token"}, tmp_path))
    assert code == 0, out[-4000:]
    rows = {(r.scope.asset, r.item_key): r for r in ledger_of(env).campaign_rows("initech", UNSEEN)}
    assert rows[("campaign_brief", "brief")].status == "created"
    assert rows[("media_plan", "spreadsheet")].status == "created"


@pytest.mark.slow
@pytest.mark.parametrize("storage", ["sqlite"], indirect=True)
def test_items_that_fail_make_a_partial_launch_with_exit_status_2(
    env: dict[str, str], sandbox: SandboxServer, tmp_path: Path
) -> None:
    code, out = finish(launch(env | {"ASANA_ACCESS_TOKEN": "revoked-asana-token"}, tmp_path))
    assert code == 2, out[-4000:]
    assert f"{UNSEEN}: PARTIAL" in out and "item(s) failed" in out
    assert "summary_report" in out
