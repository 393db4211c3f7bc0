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
import yaml

from campaign_assets_tests.support.ports import HOST, free_port
from campaign_assets_tests.support.processes import start_in_group, stop_groups, wait_for

PROJECT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
LOCATION = "campaign_assets"
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
def dagster_processes(env: dict[str, str], port: int, *, code_server: bool = False) -> Iterator[str]:
    """dagster-webserver and dagster-daemon, stopped by their pids (process
    groups) whatever happens.

    On the project's workspace.yaml (``python_module``: each of them starts its
    own code server, and the daemon starts a fresh one every minute, a full
    load of the definitions each time), or with ``code_server`` as deployed:
    the code location in its own ``dagster code-server start`` on a free port,
    which both reach through a ``grpc_server`` workspace in DAGSTER_HOME and
    which starts every run."""
    full_env = os.environ | env
    # The instance's storage is created once, before both processes start: on a
    # fresh DAGSTER_HOME each would create it too, and SQLite's schedule storage
    # can then be stamped twice ("more than one head") under a loaded machine.
    subprocess.run([sys.executable, "-c", INIT_INSTANCE], env=full_env, check=True)
    procs = []
    workspace = "workspace.yaml"
    try:
        if code_server:
            code_port = free_port()
            workspace = str(Path(full_env["DAGSTER_HOME"]) / "workspace.yaml")
            Path(workspace).write_text(yaml.safe_dump({"load_from": [{"grpc_server": {
                "host": HOST, "port": code_port, "location_name": LOCATION}}]}))
            procs.append(start_in_group(code_server_args(code_port), cwd=PROJECT, env=full_env))
            health = [str(BIN / "dagster"), "api", "grpc-health-check", "-h", HOST, "-p", str(code_port)]

            def serving() -> bool:
                if procs[0].poll() is not None:
                    raise RuntimeError(f"the code server exited with {procs[0].returncode}")
                return subprocess.run(health, check=False, env=full_env, capture_output=True).returncode == 0

            wait_for("the code server", serving, timeout=240, interval=2)
        procs += [
            start_in_group(webserver_args(port, workspace), cwd=PROJECT, env=full_env),
            start_in_group(daemon_args(workspace), cwd=PROJECT, env=full_env),
        ]
        url = f"http://{HOST}:{port}"
        wait_for("dagster-webserver", lambda: webserver_up(url), timeout=120)
        yield url
    finally:
        stop_groups(procs, grace_s=20)


def code_server_args(port: int) -> list[str]:
    return [str(BIN / "dagster"), "code-server", "start", "-m", "campaign_assets.definitions",
            "--location-name", LOCATION, "-h", HOST, "-p", str(port)]


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
