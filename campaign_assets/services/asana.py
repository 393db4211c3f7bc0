"""Asana: projects and tasks (create, list, update, delete).

The HTTP backend speaks Asana's REST API 1.0 (bodies wrapped in ``{"data": ...}``,
offset pagination through ``next_page.offset``). Creates are exactly once: the
ledger marker is the last line of every project's and task's notes, so a create
whose response was lost is found by listing the workspace's projects (or the
project's tasks) before it is tried again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from campaign_assets.services.base import HttpClient, ServiceResource
from campaign_assets.services.http import HttpSession, PermanentVendorError
from campaign_assets.services.local import LocalClient


@dataclass(frozen=True)
class ProjectRef:
    gid: str
    name: str
    url: str


@dataclass(frozen=True)
class TaskRef:
    gid: str
    name: str
    notes: str
    due_on: str | None
    url: str


def with_marker(notes: str, marker: str) -> str:
    """Notes carry the ledger marker on their last line, so a create whose
    response was lost can be found by listing."""
    return f"{notes}\n\n{marker}".strip()


def _gid(marker: str) -> str:
    return str(1_200_000_000_000_000 + int(hashlib.sha256(marker.encode()).hexdigest()[:12], 16))


class LocalAsana(LocalClient):
    """Projects and tasks as JSON records; the asset writes tasks.csv."""

    def __init__(self, out_dir: Path):
        super().__init__("asana", out_dir)

    def _task(self, record: dict) -> TaskRef:
        return TaskRef(record["gid"], record["name"], record["notes"], record["due_on"], record["url"])

    async def create_project(self, name: str, notes: str, *, marker: str) -> ProjectRef:
        gid = _gid(marker)
        record = dict(gid=gid, name=name, notes=with_marker(notes, marker), marker=marker, url=self._url("projects", gid))
        async with self.call("POST /projects"):
            self.put("projects", gid, record)
        return ProjectRef(gid, name, record["url"])

    async def find_project(self, *, marker: str) -> ProjectRef | None:
        async with self.call("GET /projects"):
            found = self.find("projects", marker)
        return ProjectRef(found["gid"], found["name"], found["url"]) if found else None

    async def delete_project(self, gid: str) -> bool:
        async with self.call("DELETE /projects/{gid}"):
            return self.remove("projects", gid)

    async def create_task(
        self, project_gid: str, name: str, notes: str, due_on: dt.date, *, marker: str
    ) -> TaskRef:
        gid = _gid(marker)
        record = dict(
            gid=gid,
            project=project_gid,
            name=name,
            notes=with_marker(notes, marker),
            due_on=due_on.isoformat(),
            marker=marker,
            url=self._url("tasks", gid),
        )
        async with self.call("POST /tasks"):
            self.put("tasks", gid, record)
        return self._task(record)

    async def update_task(self, gid: str, name: str, notes: str, due_on: dt.date, *, marker: str) -> TaskRef:
        async with self.call("PUT /tasks/{gid}"):
            record = self.get("tasks", gid)
            if record is None:
                raise LookupError(f"Unknown object: {gid}")
            record.update(name=name, notes=with_marker(notes, marker), due_on=due_on.isoformat())
            self.put("tasks", gid, record)
        return self._task(record)

    async def list_tasks(self, project_gid: str) -> list[TaskRef]:
        async with self.call("GET /projects/{gid}/tasks"):
            return [self._task(r) for r in self.all("tasks") if r["project"] == project_gid]

    async def find_task(self, project_gid: str, *, marker: str) -> TaskRef | None:
        return next((t for t in await self.list_tasks(project_gid) if t.notes.endswith(marker)), None)

    async def delete_task(self, gid: str) -> bool:
        async with self.call("DELETE /tasks/{gid}"):
            return self.remove("tasks", gid)

    def _url(self, kind: str, gid: str) -> str:
        return self._object_path(kind, gid).resolve().as_uri()


PROJECT_FIELDS = "name,notes,permalink_url"
TASK_FIELDS = "name,notes,due_on,permalink_url"


class HttpAsana(HttpClient):
    """Asana REST API 1.0 over one ``HttpSession``."""

    def __init__(self, http: HttpSession, workspace_gid: str, page_size: int = 100):
        super().__init__(http)
        self.workspace_gid = workspace_gid
        self.page_size = page_size

    async def create_project(self, name: str, notes: str, *, marker: str) -> ProjectRef:
        async def create() -> ProjectRef:
            body = {"name": name, "notes": with_marker(notes, marker), "workspace": self.workspace_gid}
            return _project(await self._data("POST", "/projects", body))

        return await self.http.create_once(create, lambda: self.find_project(marker=marker))

    async def find_project(self, *, marker: str) -> ProjectRef | None:
        projects = self._pages("/projects", {"workspace": self.workspace_gid, "opt_fields": PROJECT_FIELDS})
        found = await _first_marked(projects, marker)
        return _project(found) if found else None

    async def delete_project(self, gid: str) -> bool:
        return await self._delete(f"/projects/{gid}")

    async def create_task(
        self, project_gid: str, name: str, notes: str, due_on: dt.date, *, marker: str
    ) -> TaskRef:
        async def create() -> TaskRef:
            body = _task_body(name, notes, due_on, marker) | {"projects": [project_gid]}
            return _task(await self._data("POST", "/tasks", body))

        return await self.http.create_once(create, lambda: self.find_task(project_gid, marker=marker))

    async def update_task(self, gid: str, name: str, notes: str, due_on: dt.date, *, marker: str) -> TaskRef:
        return _task(await self._data("PUT", f"/tasks/{gid}", _task_body(name, notes, due_on, marker)))

    async def list_tasks(self, project_gid: str) -> list[TaskRef]:
        return [_task(record) async for record in self._tasks(project_gid)]

    async def find_task(self, project_gid: str, *, marker: str) -> TaskRef | None:
        found = await _first_marked(self._tasks(project_gid), marker)
        return _task(found) if found else None

    async def delete_task(self, gid: str) -> bool:
        return await self._delete(f"/tasks/{gid}")

    # ---- Asana's envelope, pagination and idempotent deletes -------------------
    async def _data(self, method: str, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return (await self.http.json(method, path, json={"data": body}))["data"]

    def _tasks(self, project_gid: str) -> AsyncIterator[dict[str, Any]]:
        return self._pages(f"/projects/{project_gid}/tasks", {"opt_fields": TASK_FIELDS})

    async def _pages(self, path: str, params: Mapping[str, str]) -> AsyncIterator[dict[str, Any]]:
        """Every record of a paginated GET, following ``next_page.offset``."""
        offset: str | None = None
        while True:
            page_params = {**params, "limit": str(self.page_size), **({"offset": offset} if offset else {})}
            page = await self.http.json("GET", path, params=page_params)
            for record in page.get("data") or []:
                yield record
            offset = (page.get("next_page") or {}).get("offset")
            if not offset:
                return

    async def _delete(self, path: str) -> bool:
        """DELETE: True, or False when the object was already gone (404)."""
        try:
            await self.http.request("DELETE", path)
        except PermanentVendorError as error:
            if error.status_code != 404:
                raise
            return False
        return True


async def _first_marked(records: AsyncIterator[dict[str, Any]], marker: str) -> dict[str, Any] | None:
    """The first record whose notes end with the ledger marker (see ``with_marker``)."""
    async for record in records:
        if str(record.get("notes") or "").rstrip().endswith(marker):
            return record
    return None


def _task_body(name: str, notes: str, due_on: dt.date, marker: str) -> dict[str, Any]:
    return {"name": name, "notes": with_marker(notes, marker), "due_on": due_on.isoformat()}


def _project(record: Mapping[str, Any]) -> ProjectRef:
    gid = str(record["gid"])
    url = record.get("permalink_url") or f"https://app.asana.com/0/{gid}/list"
    return ProjectRef(gid, str(record.get("name") or ""), url)


def _task(record: Mapping[str, Any]) -> TaskRef:
    gid = str(record["gid"])
    url = record.get("permalink_url") or f"https://app.asana.com/0/0/{gid}"
    return TaskRef(gid, str(record.get("name") or ""), str(record.get("notes") or ""), record.get("due_on"), url)


class AsanaResource(ServiceResource):
    """The launch plan as an Asana project with one task per milestone."""

    SERVICE: ClassVar[str] = "asana"
    DEFAULT_BASE_URL: ClassVar[str] = "https://app.asana.com/api/1.0"

    workspace_gid: str | None = Field(default=None, description="Asana workspace the projects live in.")
    page_size: int = Field(default=100, ge=1, le=100, description="Records per page when listing (Asana's limit).")

    def local_client(self, out_dir: Path) -> LocalAsana:
        return LocalAsana(out_dir)

    def http_client(self, http: HttpSession) -> HttpAsana:
        if not self.workspace_gid:
            raise ValueError("AsanaResource.workspace_gid is required when api_key is set (the HTTP backend)")
        return HttpAsana(http, self.workspace_gid, self.page_size)
