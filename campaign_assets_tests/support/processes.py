"""Child processes in their own process groups, stopped by pid with deadlines.

Never by name: a test or benchmark stops exactly the groups it started, so a
run of the suite cannot touch another one running beside it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO, Any, TypeVar

T = TypeVar("T")


def start_in_group(
    args: list[str], *, cwd: Path | str, env: Mapping[str, str], output: IO[Any] | int | None = subprocess.DEVNULL
) -> subprocess.Popen:
    """`args` in a new session (its own process group), so `stop_groups` reaches its children."""
    return subprocess.Popen(
        args, cwd=cwd, env=dict(env), stdout=output, stderr=subprocess.STDOUT, start_new_session=True
    )


def stop_groups(procs: Iterable[subprocess.Popen], grace_s: float = 20, kill_s: float = 10) -> None:
    """SIGTERM each process group, wait up to `grace_s` for each leader, SIGKILL the group on timeout."""
    procs = list(procs)
    for proc in procs:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for proc in procs:
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=kill_s)


def _proc_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, state) for every process, from /proc."""
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            table[int(entry.name)] = (int(fields[1]), fields[0])
    return table


def descendants(roots: Iterable[int]) -> set[int]:
    """Every process below `roots` now (children, grandchildren...)."""
    table = _proc_table()
    found: set[int] = set()
    frontier = set(roots)
    while frontier:
        children = {pid for pid, (ppid, _) in table.items() if ppid in frontier} - found
        found |= children
        frontier = children
    return found


def alive(pids: Iterable[int]) -> set[int]:
    """Those of `pids` still running (zombies count as gone)."""
    table = _proc_table()
    return {pid for pid in pids if pid in table and table[pid][1] != "Z"}


def reap(pids: Iterable[int], timeout: float = 15) -> set[int]:
    """Give `pids` up to `timeout` to exit; SIGKILL those left and return them."""
    pids = set(pids)
    deadline = time.monotonic() + timeout
    while alive(pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = alive(pids)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return left


def wait_for(what: str, check: Callable[[], T | None], timeout: float, interval: float = 0.5) -> T:
    """Poll `check` until it returns something truthy; AssertionError naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)
