"""A temporary Dagster project, and dagster-webserver plus dagster-daemon on it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from campaign_assets_tests.support.ports import HOST
from campaign_assets_tests.support.processes import start_in_group, stop_groups, wait_for

PROJECT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
INIT_INSTANCE = "import os, dagster as dg; dg.DagsterInstance.from_config(os.environ['DAGSTER_HOME']).dispose()"


@contextmanager
def temp_project(campaign_ids: Sequence[str] = (), specs: Sequence[Path] = ()) -> Iterator[dict[str, str]]:
    """A fresh DAGSTER_HOME (the project's dagster.yaml), campaigns folder and workspace."""
    root = Path(tempfile.mkdtemp(prefix="ca-bench-"))
    try:
        (root / "home").mkdir()
        shutil.copy(PROJECT / "dagster.yaml", root / "home" / "dagster.yaml")
        campaigns = root / "campaigns"
        campaigns.mkdir()
        for campaign in campaign_ids:
            shutil.copy(PROJECT / "campaigns" / f"{campaign}.yaml", campaigns)
        for spec in specs:
            shutil.copy(spec, campaigns)
        yield {
            "DAGSTER_HOME": str(root / "home"),
            "CAMPAIGNS_DIR": str(campaigns),
            "WORKSPACE_DIR": str(root / "workspace"),
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)


def webserver_args(port: int, workspace: str = "workspace.yaml") -> list[str]:
    return [str(BIN / "dagster-webserver"), "-w", workspace, "-h", HOST, "-p", str(port)]


def daemon_args(workspace: str = "workspace.yaml") -> list[str]:
    return [str(BIN / "dagster-daemon"), "run", "-w", workspace]


def webserver_up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/server_info", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@contextmanager
def dagster_processes(env: dict[str, str], port: int) -> Iterator[str]:
    """dagster-webserver and dagster-daemon on the project's workspace.yaml,
    stopped by their pids (process groups) whatever happens."""
    full_env = os.environ | env
    # The instance's storage is created once, before both processes start: on a
    # fresh DAGSTER_HOME each would create it too, and SQLite's schedule storage
    # can then be stamped twice ("more than one head") under a loaded machine.
    subprocess.run([sys.executable, "-c", INIT_INSTANCE], env=full_env, check=True)
    procs = [
        start_in_group(webserver_args(port), cwd=PROJECT, env=full_env),
        start_in_group(daemon_args(), cwd=PROJECT, env=full_env),
    ]
    url = f"http://{HOST}:{port}"
    try:
        wait_for("dagster-webserver", lambda: webserver_up(url), timeout=120)
        yield url
    finally:
        stop_groups(procs, grace_s=20)


def graphql(url: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    """POST a GraphQL query to the webserver at `url`; its ``data``, or RuntimeError with its errors."""
    response = httpx.post(f"{url}/graphql", json={"query": query, "variables": variables or {}}, timeout=60)
    response.raise_for_status()
    body = response.json()
    if body.get("errors"):
        raise RuntimeError(body["errors"])
    return body["data"]


def campaign_graph(defs: Any) -> list[Any]:
    """The assets partitioned by campaign: what a campaign's run materializes
    (``campaign_performance``, campaign x day, runs on its own)."""
    from campaign_assets.defs.campaign.common import campaigns_partitions

    return [a for a in defs.assets if getattr(a, "partitions_def", None) == campaigns_partitions]
