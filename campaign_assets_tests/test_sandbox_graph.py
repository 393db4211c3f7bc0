"""The whole graph through the real HTTP clients against the vendor sandbox."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from campaign_assets.definitions import build_defs
from campaign_assets.ledger import Ledger
from campaign_assets.sandbox.config import FaultSpec, SandboxConfig
from campaign_assets.sandbox.server import SandboxServer, service_env
from campaign_assets.spec import scan_campaigns

from campaign_assets_tests.support.in_flight import max_concurrency, vendor_of
from campaign_assets_tests.support.sandbox import objects_by_marker

from .conftest import SEED
from campaign_assets_tests.support.dagster import campaign_graph

FAST = {"HTTP_BACKOFF_S": "0.01", "HTTP_MAX_ATTEMPTS": "8", "CANVA_POLL_INTERVAL_S": "0.02"}


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(SandboxConfig(scale=0.005, timeout_hold_s=1.0, seed=11)) as server:
        yield server


@pytest.fixture
def http_project(project: dict[str, str], sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = project | service_env(sandbox.url) | FAST
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.mark.slow
def test_launch_with_twenty_percent_faults_leaves_exactly_one_of_everything(
    http_project: dict[str, str], sandbox: SandboxServer, tmp_path: Path
) -> None:
    sandbox.reset(fault_rate=0.2)  # every kind: 500, 429, timeout, reset, lost response after commit
    env = os.environ | http_project | {"DAGSTER_HOME": str(tmp_path / "home"), "HTTP_TIMEOUT_S": "0.8"}
    done = subprocess.run(
        [sys.executable, "-m", "campaign_assets.cli", "launch", "--parallel", "3"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    state = sandbox.state()
    faults = Counter(c["fault"] for c in state["calls"] if c["fault"])
    assert faults["lost_response"] and faults["timeout"] and faults["500"], faults  # the faults really happened

    objects = objects_by_marker(state)
    assert max(objects.values()) == 1, [k for k, n in objects.items() if n > 1]  # no duplicate
    kinds = Counter((vendor, kind) for vendor, kind, _ in objects)
    specs = [f.spec for f in scan_campaigns(http_project["CAMPAIGNS_DIR"])]
    assert kinds[("google-docs", "document")] == 2 * len(specs)  # brief and report: nothing missing
    assert kinds[("google-sheets", "spreadsheet")] == len(specs)
    assert kinds[("asana", "project")] == len(specs)
    assert kinds[("asana", "task")] == sum(len(s.launch_tasks()) for s in specs)
    assert kinds[("canva", "design")] == sum(len(s.creative_sizes) for s in specs)
    # The report's message per campaign, and one review request per reviewed campaign (awaiting approval).
    assert kinds[("slack", "message")] == len(specs) + sum(s.reviewed for s in specs)
    assert not any(vendor in ("sendgrid", "buffer", "github") for vendor, _, _ in objects)  # nothing sent unapproved

    ledger = Ledger(f"sqlite:///{Path(http_project['WORKSPACE_DIR']) / 'ledger.sqlite'}")
    rows = [r for s in specs for r in ledger.campaign_rows(s.organization, s.id)]
    assert {r.status for r in rows if r.scope.asset != "market_research"} == {"created"}
    # The one example with competitor pages cannot reach them offline: flagged, never failed.
    assert {r.status for r in rows if r.scope.asset == "market_research"} <= {"fallback"}

    # No token in any log line, event, metadata value or file the run wrote.
    tokens = [v for k, v in service_env(sandbox.url).items() if k.endswith(("_API_KEY", "_TOKEN"))]
    written = b"".join(p.read_bytes() for root in (tmp_path / "home", Path(http_project["WORKSPACE_DIR"]))
                       for p in root.rglob("*") if p.is_file())
    for token in tokens:
        assert token not in done.stdout + done.stderr and token.encode() not in written, token


def materialize(env: dict[str, str]) -> dg.ExecuteInProcessResult:
    defs = build_defs(env)
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("campaigns", [SEED])
    return dg.materialize(campaign_graph(defs), partition_key=SEED, resources=defs.resources, instance=instance)


def metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == asset]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_a_revoked_token_fails_fast_with_the_vendors_message(
    http_project: dict[str, str], sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASANA_ACCESS_TOKEN", "revoked-asana-token")
    result = materialize(http_project)
    assert result.success
    meta = metadata(result, "project_tasks")
    assert meta["items_failed"] == 14 and "Not Authorized" in meta["failures"]
    assert "revoked-asana-token" not in str(meta)
    asana_calls = [c for c in sandbox.state()["calls"] if c["vendor"] == "asana"]
    assert len(asana_calls) == 1  # no retry burned on a permanent error
    [check] = [c for c in result.get_asset_check_evaluations() if c.check_name == "all_tasks_created"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN


def test_a_vendor_wholly_down_falls_back_to_local_then_publishes_when_back(
    http_project: dict[str, str], sandbox: SandboxServer
) -> None:
    sandbox.reset(vendor_faults={"google-docs": FaultSpec(rate=1.0, kinds=("500",)).model_dump()})
    first = materialize(http_project)
    assert first.success
    brief = metadata(first, "campaign_brief")
    assert brief["items_fallback"] == 1 and brief["docs/backend"] == "http"
    assert "HTTP 500" in brief["fallback"] and "INTERNAL" in brief["fallback"]  # the vendor's reason
    out = next(Path(http_project["WORKSPACE_DIR"]).rglob("brief.md"))
    assert "## Objective" in out.read_text()  # the artifact exists, made locally
    assert metadata(first, "media_plan")["items_created"] == 1  # other vendors unaffected
    report = first.output_for_node("summary_report")["markdown"]
    assert "Made locally while the vendor was down" in report and "`campaign_brief` / `brief`" in report

    sandbox.reset()  # Google is back
    second = materialize(http_project)
    brief = metadata(second, "campaign_brief")
    assert brief["items_created"] == 1 and brief["items_fallback"] == 0
    docs = [o for o in sandbox.state()["vendors"]["google-docs"]["objects"] if not o["deleted"]]
    assert len(docs) == 2  # the brief, now published, and the report


@pytest.mark.slow
def test_two_runs_at_once_overlap_their_assets_and_hold_every_cap(
    http_project: dict[str, str], sandbox: SandboxServer, tmp_path: Path
) -> None:
    from campaign_assets.settings import SERVICE_CAPS

    sandbox.reset(scale=0.02)  # long enough calls for steps to overlap visibly
    env = os.environ | http_project | {"DAGSTER_HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [sys.executable, "-m", "campaign_assets.cli", "launch", "--parallel", "2", SEED, "spring-webinar-series"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    calls = [c for c in sandbox.state()["calls"] if c["status"] < 400]
    peaks = max_concurrency(calls)
    for service, peak in peaks.items():  # both runs together, every call
        assert peak <= SERVICE_CAPS[service], service
    assert peaks["llm"] > 1 and peaks["asana"] > 1  # fan-out in a step
    by_service: dict[str, list[dict]] = defaultdict(list)
    for call in calls:
        by_service[vendor_of(call)].append(call)

    def span(service: str) -> tuple[float, float]:
        return min(c["start"] for c in by_service[service]), max(c["end"] for c in by_service[service])

    # Independent assets run side by side: tasks (Asana) while creatives (images) are drawn,
    # and the media plan (Sheets) while they are drawn too.
    # (The brief's LLM calls start after market_research, so the media plan's Sheets calls
    # are usually done by then: Sheets is paired with image generation instead.)
    for a, b in (("asana", "images"), ("sheets", "images")):
        (a0, a1), (b0, b1) = span(a), span(b)
        assert a0 < b1 and b0 < a1, (a, b)
    # The two runs were in flight together: each created its project before the other's last call.
    projects = sorted(c["start"] for c in by_service["asana"] if c["endpoint"] == "POST /projects")
    assert len(projects) == 2 and projects[1] < max(c["end"] for c in calls) - 1.0
