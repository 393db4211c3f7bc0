"""The Asana HTTP backend against the vendor sandbox: shapes, retries, auth and exactly-once creates."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from campaign_assets.sandbox.server import SandboxServer
from campaign_assets.services.asana import AsanaResource, HttpAsana, with_marker
from campaign_assets.services.http import PermanentVendorError
from campaign_assets_tests.http_doubles import GENEROUS_TIMEOUT_S, time_out_next

TOKEN = "sandbox-asana-token"
WORKSPACE = "1200000000000001"
DUE = dt.date(2027, 1, 4)
PROJECT_MARKER = "[ca:acme/q4/project_tasks/project]"


def resource(sandbox: SandboxServer, **overrides: Any) -> AsanaResource:
    config: dict[str, Any] = dict(
        base_url=f"{sandbox.url}/asana/api/1.0",
        api_key=TOKEN,
        workspace_gid=WORKSPACE,
        backoff_base_s=0.001,
        timeout_s=GENEROUS_TIMEOUT_S,
    )
    return AsanaResource(**(config | overrides))


def live(sandbox: SandboxServer, kind: str) -> list[dict[str, Any]]:
    objects = sandbox.state()["vendors"]["asana"]["objects"]
    return [o["data"] for o in objects if o["kind"] == kind and not o["deleted"]]


def calls(sandbox: SandboxServer, endpoint: str | None = None) -> list[dict[str, Any]]:
    return [
        c for c in sandbox.state()["calls"] if c["vendor"] == "asana" and endpoint in (None, c["endpoint"])
    ]


def test_projects_and_tasks_round_trip(sandbox: SandboxServer, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with resource(sandbox).session(tmp_path) as client:
            assert isinstance(client, HttpAsana)
            project = await client.create_project("Q4 Launch", "Launch plan", marker=PROJECT_MARKER)
            task = await client.create_task(project.gid, "Kickoff", "Agenda", DUE, marker="[ca:t1]")
            assert task.notes == with_marker("Agenda", "[ca:t1]") and task.due_on == "2027-01-04"
            assert project.url.startswith("https://app.asana.com/") and task.url.endswith(task.gid)

            later = DUE.replace(day=5)
            updated = await client.update_task(task.gid, "Kickoff call", "New agenda", later, marker="[ca:t1]")
            assert (updated.gid, updated.name, updated.due_on) == (task.gid, "Kickoff call", "2027-01-05")
            assert await client.list_tasks(project.gid) == [updated]
            assert await client.find_task(project.gid, marker="[ca:t1]") == updated
            assert await client.find_task(project.gid, marker="[ca:other]") is None
            assert await client.find_project(marker=PROJECT_MARKER) == project

            await client.delete_task(task.gid)
            await client.delete_task(task.gid)  # already gone: 404 is fine
            await client.delete_project(project.gid)
            await client.delete_project(project.gid)

    asyncio.run(scenario())
    assert live(sandbox, "project") == [] and live(sandbox, "task") == []
    stored = sandbox.state()["vendors"]["asana"]["objects"][0]["data"]
    assert stored["notes"].endswith(PROJECT_MARKER) and stored["workspace"]["gid"] == WORKSPACE


def test_rate_limit_with_retry_after_recovers(sandbox: SandboxServer, tmp_path: Path) -> None:
    sandbox.queue_fault("asana", "429", "POST /projects", times=2)

    async def scenario() -> str:
        async with resource(sandbox).session(tmp_path) as client:
            return (await client.create_project("Q4", "plan", marker=PROJECT_MARKER)).gid

    gid = asyncio.run(scenario())
    assert [p["gid"] for p in live(sandbox, "project")] == [gid]
    assert [c["status"] for c in calls(sandbox, "POST /projects")] == [429, 429, 201]


def test_server_error_on_a_read_is_retried(sandbox: SandboxServer, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with resource(sandbox).session(tmp_path) as client:
            project = await client.create_project("Q4", "plan", marker=PROJECT_MARKER)
            await client.create_task(project.gid, "Kickoff", "", DUE, marker="[ca:t1]")
            sandbox.queue_fault("asana", "500", "GET /projects/{projectGid}/tasks", times=2)
            assert [t.name for t in await client.list_tasks(project.gid)] == ["Kickoff"]

    asyncio.run(scenario())
    assert [c["status"] for c in calls(sandbox, "GET /projects/{projectGid}/tasks")] == [500, 500, 200]


def test_revoked_token_fails_fast_with_the_vendor_message(sandbox: SandboxServer, tmp_path: Path) -> None:
    token = "revoked-asana-token-0123456789"

    async def scenario() -> None:
        async with resource(sandbox, api_key=token).session(tmp_path) as client:
            await client.create_project("Q4", "plan", marker=PROJECT_MARKER)

    with pytest.raises(PermanentVendorError) as raised:
        asyncio.run(scenario())
    assert raised.value.status_code == 401 and raised.value.message == "Not Authorized"
    assert token not in str(raised.value)
    assert len(calls(sandbox)) == 1


def test_timeout_on_a_create_is_reconciled_then_retried(
    sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    time_out_next(monkeypatch, "POST /tasks")  # the one the sandbox holds; other calls keep a generous timeout

    async def scenario() -> tuple[str, str]:
        async with resource(sandbox).session(tmp_path) as client:
            project = await client.create_project("Q4", "plan", marker=PROJECT_MARKER)
            sandbox.queue_fault("asana", "timeout", "POST /tasks")
            task = await client.create_task(project.gid, "Kickoff", "", DUE, marker="[ca:t1]")
            return project.gid, task.gid

    project_gid, task_gid = asyncio.run(scenario())
    assert [t["gid"] for t in live(sandbox, "task")] == [task_gid]
    assert len(calls(sandbox, "POST /tasks")) == 2  # the timed-out one wrote nothing: created again
    assert len(calls(sandbox, "GET /projects/{projectGid}/tasks")) == 1  # looked before creating again


@pytest.mark.parametrize("endpoint", ["POST /projects", "POST /tasks"])
def test_lost_response_creates_exactly_once(sandbox: SandboxServer, tmp_path: Path, endpoint: str) -> None:
    async def scenario() -> tuple[str, str]:
        async with resource(sandbox).session(tmp_path) as client:
            sandbox.queue_fault("asana", "lost_response", endpoint)
            project = await client.create_project("Q4", "plan", marker=PROJECT_MARKER)
            task = await client.create_task(project.gid, "Kickoff", "", DUE, marker="[ca:t1]")
            assert client.stats.reconciled == 1
            return project.gid, task.gid

    project_gid, task_gid = asyncio.run(scenario())
    assert [p["gid"] for p in live(sandbox, "project")] == [project_gid]
    assert [t["gid"] for t in live(sandbox, "task")] == [task_gid]
    assert len(calls(sandbox, endpoint)) == 1


def test_find_pages_through_every_page(sandbox: SandboxServer, tmp_path: Path) -> None:
    async def scenario() -> tuple[str, list[str]]:
        async with resource(sandbox, page_size=2).session(tmp_path) as client:
            project = await client.create_project("Q4", "plan", marker=PROJECT_MARKER)
            for n in range(4):
                await client.create_task(project.gid, f"Task {n}", "", DUE, marker=f"[ca:t{n}]")
            sandbox.queue_fault("asana", "lost_response", "POST /tasks")
            last = await client.create_task(project.gid, "Task 4", "", DUE, marker="[ca:t4]")  # 3rd page
            assert client.stats.reconciled == 1
            return last.gid, [t.gid for t in await client.list_tasks(project.gid)]

    last_gid, listed = asyncio.run(scenario())
    assert len(listed) == 5 and listed[-1] == last_gid and len(live(sandbox, "task")) == 5
    pages = calls(sandbox, "GET /projects/{projectGid}/tasks")
    assert len(pages) == 6  # the reconciling find, then list_tasks: three pages of two each


def test_http_backend_needs_a_workspace(sandbox: SandboxServer, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with resource(sandbox, workspace_gid=None).session(tmp_path):
            pass

    with pytest.raises(ValueError, match="workspace_gid"):
        asyncio.run(scenario())
