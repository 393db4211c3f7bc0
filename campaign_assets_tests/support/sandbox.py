"""The vendor sandbox in its own process, and what its state says about duplicates."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from campaign_assets_tests.support.processes import stop_groups


@dataclass
class Sandbox:
    url: str
    env: dict[str, str]
    process: subprocess.Popen

    def state(self) -> dict[str, Any]:
        return httpx.get(f"{self.url}/_sandbox/state", timeout=60).json()

    def reset(self) -> None:
        httpx.post(f"{self.url}/_sandbox/reset", json={}, timeout=60).raise_for_status()


def read_exports(lines: Iterator[str]) -> dict[str, str]:
    """The ``export NAME=value`` lines the sandbox prints on start, up to the last one (SLACK_CHANNEL)."""
    env: dict[str, str] = {}
    for line in lines:
        if not line.startswith("export "):
            break
        name, _, value = line.removeprefix("export ").strip().partition("=")
        env[name] = value.strip("'")
        if name == "SLACK_CHANNEL":
            break
    if "LLM_BASE_URL" not in env:
        raise RuntimeError("the sandbox did not start")
    return env


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
        assert process.stdout is not None
        env = read_exports(process.stdout)
        url = env["LLM_BASE_URL"].removesuffix("/openai/v1")
        yield Sandbox(url, env, process)
    finally:
        stop_groups([process], grace_s=10)


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
    """``vendor/kind/marker`` -> count, for every marker held by more than one live object."""
    return {"/".join(key): n for key, n in objects_by_marker(state).items() if n > 1}
