"""Asana: projects and tasks (create, list, update, delete)."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from campaign_assets.services.base import LocalClient, ServiceResource


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

    async def delete_project(self, gid: str) -> None:
        async with self.call("DELETE /projects/{gid}"):
            self.remove("projects", gid)

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

    async def delete_task(self, gid: str) -> None:
        async with self.call("DELETE /tasks/{gid}"):
            self.remove("tasks", gid)

    def _url(self, kind: str, gid: str) -> str:
        return self._object_path(kind, gid).resolve().as_uri()


class AsanaResource(ServiceResource):
    """The launch plan as an Asana project with one task per milestone."""

    SERVICE: ClassVar[str] = "asana"
    DEFAULT_BASE_URL: ClassVar[str] = "https://app.asana.com/api/1.0"
    DEFAULT_CAP: ClassVar[int] = 5

    workspace_gid: str | None = Field(default=None, description="Asana workspace the projects live in.")

    def local_client(self, out_dir: Path) -> LocalAsana:
        return LocalAsana(out_dir)
