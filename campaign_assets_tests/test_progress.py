"""Progress you can watch (issue 11): item lines in the run's event log, the
launch's live progress read back from that log, and status's percentage."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import pytest
import yaml

from campaign_assets.core.items import Attempt, Item, VendorRef, run_items
from campaign_assets.core.progress import expected_items, format_line, parse_line, watching
from campaign_assets.ledger import Ledger, Scope
from campaign_assets.progress import RunProgress, plain_line, plain_lines
from campaign_assets.sandbox.config import SandboxConfig
from campaign_assets.sandbox.server import SandboxServer, service_env
from campaign_assets.spec import load_spec

from .conftest import EXAMPLES, PROJECT, SEED
from campaign_assets_tests.support.dagster import campaign_graph

ET = dg.DagsterEventType
FAST = {"HTTP_BACKOFF_S": "0.01", "HTTP_MAX_ATTEMPTS": "8", "CANVA_POLL_INTERVAL_S": "0.02"}


# --- pure: lines in, lines out ------------------------------------------------------------------

def test_an_item_line_reads_back_exactly() -> None:
    from collections import Counter

    line = format_line("creatives", 3, 6, "creative:728x90", "created", Counter(created=3), 1, "canva HTTP 429")
    assert line == "items: creatives 3/6 | creative:728x90 created | created 3 | 1 retrying: canva HTTP 429"
    parsed = parse_line(line)
    assert (parsed.asset, parsed.done, parsed.total) == ("creatives", 3, 6)
    assert parse_line("creatives 3/6") is None and parse_line(None) is None
    assert parse_line("items: not a progress line") is None


def entry(kind: ET | None = None, step: str | None = None, message: str = "", asset: str | None = None,
          ts: float = 0.0) -> SimpleNamespace:
    """The parts of an ``EventLogEntry`` the fold reads."""
    event = None
    if kind is not None:
        event = SimpleNamespace(event_type=kind, step_key=step,
                                asset_key=dg.AssetKey(asset) if asset else None)
    return SimpleNamespace(dagster_event=event, user_message=message, step_key=step, timestamp=ts)


def test_event_records_fold_into_plain_lines_printed_only_on_change() -> None:
    records = [
        entry(ET.STEP_START, "campaign_spec"),
        entry(ET.STEP_SUCCESS, "campaign_spec"),
        entry(ET.STEP_START, "creatives"),
        entry(None, "creatives", "creatives: some other log line"),
        entry(None, "creatives", "items: creatives 1/4 | creative:300x250 created | created 1"),
        entry(None, "creatives", "items: creatives 2/4 | creative:728x90 reused | created 1, reused 1"),
        entry(ET.ASSET_MATERIALIZATION, "creatives", asset="creatives"),
        entry(ET.STEP_SUCCESS, "creatives"),
        entry(ET.RUN_SUCCESS),
    ]
    assert plain_lines("q4", records, steps_total=10) == [
        "q4: 0/10 steps; running campaign_spec",
        "q4: 1/10 steps",
        "q4: 1/10 steps; running creatives",
        "q4: 1/10 steps; creatives 1/4 items",
        "q4: 1/10 steps; creatives 2/4 items",
        "q4: 1/10 steps; creatives 4/4 items",
        "q4: 2/10 steps",
        "q4: 2/10 steps; success",
    ]


def test_the_fold_tracks_running_steps_and_their_items() -> None:
    progress = RunProgress("q4", steps_total=5)
    for record in [entry(ET.STEP_START, "a"), entry(ET.STEP_START, "creatives"),
                   entry(None, "creatives", "items: creatives 2/6 | x created | created 2"),
                   entry(ET.STEP_FAILURE, "a")]:
        progress.apply(record)
    assert progress.running == ["creatives"] and progress.failed == {"a"}
    assert progress.running_items() == [("creatives", 2, 6)]
    assert plain_line(progress) == "q4: 1/5 steps; creatives 2/6 items"


def test_expected_items_follow_the_spec() -> None:
    spec = load_spec(EXAMPLES / f"{SEED}.yaml")
    expected = expected_items(spec)
    assert expected["project_tasks"] == 1 + len(spec.launch_tasks()) == 14
    assert expected["creatives"] == len(spec.creative_sizes)
    assert expected["content_pieces"] == expected["content_library"] == len(spec.content_matrix())
    assert expected["dsp_activation"] == 2 * len(spec.dsp_channels)


# --- run_items tells each outcome as it lands ---------------------------------------------------

def _items(tmp_path: Path, **kwargs) -> list:
    scope = Scope("acme", "q4", "creatives")

    async def create(item: Item, attempt: Attempt) -> VendorRef:
        if item.key == "bad":
            raise ValueError("refused")
        return VendorRef(f"v-{item.key}")

    with Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}") as ledger:
        items = [Item(k, {"k": k}) for k in ("a", "b", "bad")]
        return [asyncio.run(run_items(ledger, scope, "canva", items, create=create, **kwargs)),
                asyncio.run(run_items(ledger, scope, "canva", items, create=create, **kwargs))]


def test_run_items_calls_a_progress_callable_per_outcome(tmp_path: Path) -> None:
    told: list[tuple] = []
    _items(tmp_path, progress=lambda *args: told.append(args))
    assert sorted(told[:3]) == [("canva", "a", "created", None, 3), ("canva", "b", "created", None, 3),
                                ("canva", "bad", "failed", "ValueError: refused", 3)]
    assert sorted(t[2] for t in told[3:]) == ["failed", "reused", "reused"]


def test_run_items_logs_running_counts_to_a_logger(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "campaign_assets.items")
    _items(tmp_path, progress=logging.getLogger("campaign_assets.items"))
    lines = [r.getMessage() for r in caplog.records if r.name == "campaign_assets.items"]
    assert len(lines) == 6 and all(parse_line(line) for line in lines)
    assert [parse_line(line).done for line in lines[:3]] == [1, 2, 3]
    assert any("bad failed (ValueError: refused)" in line for line in lines)


def test_a_step_tracker_counts_across_calls_and_folds_in_http_retries(tmp_path: Path) -> None:
    lines: list[str] = []
    with watching("creatives", 6, lines.append):
        logging.getLogger("campaign_assets.http").warning(
            "canva POST /v1/designs: HTTP 429 (rate limited); retrying in 0.1s",
            extra={"http_service": "canva", "http_reason": "http_status", "http_delay_s": 0.1})
        _items(tmp_path)
    assert [parse_line(line).done for line in lines] == [1, 2, 3, 4, 5, 6]
    assert all(parse_line(line).total == 6 for line in lines)
    assert lines[0].endswith("1 retrying: canva HTTP 429") and "retrying" not in lines[1]


# --- the run's event log: item lines and the HTTP layer's retries, through the managed loggers ----

@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(SandboxConfig(scale=0.005, timeout_hold_s=1.0, seed=11)) as server:
        yield server


def python_logs() -> dict:
    """The ``python_logs`` section both dagster.yaml files ship."""
    sections = [yaml.safe_load((PROJECT / name).read_text())["python_logs"]
                for name in ("dagster.yaml", "dagster.postgres.yaml")]
    assert sections[0] == sections[1]
    assert {"campaign_assets.http", "campaign_assets.items"} <= set(sections[0]["managed_python_loggers"])
    return sections[0]


def test_item_lines_and_http_retries_reach_the_runs_event_log_redacted(
    project: dict[str, str], sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from campaign_assets.definitions import build_defs
    from campaign_assets.sandbox.config import FaultSpec

    env = project | service_env(sandbox.url) | FAST
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    sandbox.reset(vendor_faults={"canva": FaultSpec(rate=0.5, kinds=("429", "500")).model_dump()})
    defs = build_defs(env)
    with dg.instance_for_test(overrides={"python_logs": python_logs()}) as instance:
        instance.add_dynamic_partitions("campaigns", [SEED])
        result = dg.materialize(campaign_graph(defs), partition_key=SEED, resources=defs.resources, instance=instance)
        assert result.success
        messages = [e.user_message for e in instance.all_logs(result.run_id) if e.dagster_event is None]
    creatives = [parse_line(m) for m in messages if m.startswith("items: creatives ")]
    spec = load_spec(EXAMPLES / f"{SEED}.yaml")
    assert [p.done for p in creatives] == list(range(1, len(spec.creative_sizes) + 1))
    assert any(m.startswith("items: project_tasks 14/14") for m in messages)
    retries = [m for m in messages if "retrying in" in m]
    assert any(m.startswith("canva ") for m in retries), messages  # the HTTP layer's line, in the event log
    assert any("retrying: canva HTTP" in m for m in messages if m.startswith("items: creatives"))
    tokens = [v for k, v in service_env(sandbox.url).items() if k.endswith(("_API_KEY", "_TOKEN"))]
    for token in tokens:
        assert not any(token in m for m in messages), token


# --- the terminal: `campaign-assets launch` ----------------------------------------------------

def one_campaign_project(tmp_path: Path, project: dict[str, str], keep: str = SEED) -> dict[str, str]:
    campaigns = Path(project["CAMPAIGNS_DIR"])
    for spec in campaigns.glob("*.yaml"):
        if spec.stem != keep:
            spec.unlink()
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    shutil.copy(PROJECT / "dagster.yaml", home / "dagster.yaml")
    return {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_TOKEN", "_BASE_URL"))} | project | {
        "DAGSTER_HOME": str(home)}


@pytest.mark.slow
def test_launch_piped_prints_plain_progress_lines_before_the_summary(project: dict[str, str], tmp_path: Path) -> None:
    env = one_campaign_project(tmp_path, project)
    done = subprocess.run([sys.executable, "-m", "campaign_assets.cli", "launch", SEED], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    summary = next(i for i, line in enumerate(lines) if line.startswith(f"{SEED}: SUCCESS in"))
    progress = [line for line in lines[:summary] if line.startswith(f"{SEED}: ") and " steps" in line]
    assert len(progress) >= 3, done.stdout
    assert any(" items" in line for line in progress), done.stdout
    assert len(progress) == len(set(progress)) or all(a != b for a, b in zip(progress, progress[1:]))
    assert "\x1b[" not in done.stdout  # no terminal control codes when piped


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_launch_in_a_terminal_shows_progress_updating_before_the_campaign_ends(
    project: dict[str, str], tmp_path: Path, sandbox: SandboxServer
) -> None:
    # Vendors at a quarter of their real latency: with steps as threads the run
    # would otherwise end between two looks at the screen.
    sandbox.reset(scale=0.25)
    env = one_campaign_project(tmp_path, project) | service_env(sandbox.url) | FAST
    session = f"progress-{os.getpid()}"
    script = tmp_path / "launch.sh"
    exports = "".join(f"export {k}={json.dumps(v)}\n" for k, v in env.items() if k.isidentifier())
    script.write_text(f"{exports}cd {tmp_path}\n{sys.executable} -m campaign_assets.cli launch {SEED}; "
                      f"echo LAUNCH-EXITED; sleep 60\n")
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "160", "-y", "50", f"bash {script}"],
                   check=True)
    try:
        screens: list[str] = []
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            screen = subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True,
                                    text=True).stdout
            if "LAUNCH-EXITED" in screen or f"{SEED}: SUCCESS" in screen:
                break
            if f"{SEED} steps" in screen and (not screens or screens[-1] != screen):
                screens.append(screen)
            time.sleep(0.3)
        assert len(screens) >= 2, screens  # the bars moved while the run went
        assert any(" items" in s for s in screens), screens
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)


# --- status --json during a run ------------------------------------------------------------------

@pytest.mark.slow
def test_status_json_during_a_run_reports_a_percentage_between_0_and_100(
    project: dict[str, str], tmp_path: Path, sandbox: SandboxServer
) -> None:
    sandbox.reset(scale=0.05)
    env = one_campaign_project(tmp_path, project) | service_env(sandbox.url) | FAST
    launch = subprocess.Popen([sys.executable, "-m", "campaign_assets.cli", "launch", SEED], env=env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen: list[dict] = []
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and launch.poll() is None:
            done = subprocess.run([sys.executable, "-m", "campaign_assets.cli", "status", SEED, "--json"], env=env,
                                  cwd=tmp_path, capture_output=True, text=True, timeout=120)
            if done.returncode == 0 and done.stdout.strip():
                status = json.loads(done.stdout)
                seen.append(status)
                if 0 < status["progress_pct"] < 100 and status["phase"] == "running":
                    break
            time.sleep(0.5)
        middle = [s for s in seen if 0 < s["progress_pct"] < 100 and s["phase"] == "running"]
        assert middle, [(s["phase"], s["progress_pct"]) for s in seen]
        assert middle[0]["items_expected"] > middle[0]["items_done"] > 0
        assert {"campaign", "organization", "phase", "last_run", "items", "failed", "fallback"} <= set(middle[0])
        assert middle[0]["last_run"]["elapsed_s"] is not None and isinstance(middle[0]["running"], list)
    finally:
        out, _ = launch.communicate(timeout=600)
    assert launch.returncode == 0, out[-3000:]
    final = json.loads(subprocess.run([sys.executable, "-m", "campaign_assets.cli", "status", SEED, "--json"],
                                      env=env, cwd=tmp_path, capture_output=True, text=True).stdout)
    assert final["progress_pct"] == 100 and final["running"] == []
