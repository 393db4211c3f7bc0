"""What the benchmarks share: a sandbox process, a temporary project, run timings."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
import sys
import tempfile
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from benchmarks.ideal import peak_in_flight

PROJECT = Path(__file__).resolve().parents[1]


@dataclass
class Sandbox:
    url: str
    env: dict[str, str]
    process: subprocess.Popen

    def state(self) -> dict[str, Any]:
        return httpx.get(f"{self.url}/_sandbox/state", timeout=60).json()

    def reset(self) -> None:
        httpx.post(f"{self.url}/_sandbox/reset", json={}, timeout=60).raise_for_status()


@contextmanager
def sandbox_process(scale: float, *extra: str) -> Iterator[Sandbox]:
    """The vendor sandbox in its own process (so it never competes with the
    orchestrator for a GIL), on a free port; stopped by its pid."""
    process = subprocess.Popen(
        [sys.executable, "-m", "campaign_assets.sandbox", "--scale", str(scale), "--port", "0", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        env: dict[str, str] = {}
        assert process.stdout is not None
        for line in process.stdout:
            if not line.startswith("export "):
                break
            name, _, value = line.removeprefix("export ").strip().partition("=")
            env[name] = value.strip("'")
            if name == "SLACK_CHANNEL":
                break
        if "LLM_BASE_URL" not in env:
            raise RuntimeError("the sandbox did not start")
        url = env["LLM_BASE_URL"].removesuffix("/openai/v1")
        yield Sandbox(url, env, process)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


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


def vendor_of(call: dict[str, Any]) -> str:
    """Our service name for a sandbox call-log entry."""
    vendor, endpoint = call["vendor"], call["endpoint"]
    if vendor in ("openai", "openrouter"):
        return "images" if "images" in endpoint or "image" in endpoint.lower() else "llm"
    return {"google-docs": "docs", "google-sheets": "sheets", "google-drive": "drive"}.get(vendor, vendor)


def max_concurrency(calls: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Most calls in flight at once per service, from the sandbox's call log."""
    spans: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for call in calls:
        spans[vendor_of(call)].append((call["start"], call["end"]))
    return {service: peak_in_flight(intervals) for service, intervals in spans.items()}


_MARKER = re.compile(r"\[ca:[^\]]+\]|ca-[0-9a-f]{16}")


def objects_by_marker(state: dict[str, Any]) -> dict[tuple[str, str, str], int]:
    """Live sandbox objects counted by (vendor, kind, ledger marker). Every
    object our clients create carries its item's marker (in a title, notes,
    text or name), so two objects with one marker are a duplicate."""
    counts: dict[tuple[str, str, str], int] = defaultdict(int)
    for vendor, info in state.get("vendors", {}).items():
        for obj in info.get("objects", []):
            if obj.get("deleted"):
                continue
            found = _MARKER.search(json.dumps(obj.get("data", {})))
            counts[(vendor, obj.get("kind", ""), found.group(0) if found else f"id:{obj.get('id')}")] += 1
    return counts


def duplicates(state: dict[str, Any]) -> dict[str, int]:
    return {"/".join(key): n for key, n in objects_by_marker(state).items() if n > 1}


@contextmanager
def dagster_processes(env: dict[str, str], port: int) -> Iterator[str]:
    """dagster-webserver and dagster-daemon on the project's workspace.yaml,
    stopped by their pids (process groups) whatever happens."""
    bin_dir = Path(sys.executable).parent
    full_env = os.environ | env
    procs = [
        subprocess.Popen(
            [str(bin_dir / "dagster-webserver"), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
            cwd=PROJECT, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        ),
        subprocess.Popen(
            [str(bin_dir / "dagster-daemon"), "run", "-w", "workspace.yaml"],
            cwd=PROJECT, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        ),
    ]
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/server_info", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        else:
            raise RuntimeError("dagster-webserver did not start")
        yield url
    finally:
        for proc in procs:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def graphql(url: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    response = httpx.post(f"{url}/graphql", json={"query": query, "variables": variables or {}}, timeout=60)
    response.raise_for_status()
    body = response.json()
    if body.get("errors"):
        raise RuntimeError(body["errors"])
    return body["data"]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
