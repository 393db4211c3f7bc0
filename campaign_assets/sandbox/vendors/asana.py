"""Asana 1.0: projects and their tasks; every body wrapped in ``{"data": …}``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from starlette.responses import Response

from campaign_assets.sandbox.state import StoredObject
from campaign_assets.sandbox.vendors.base import (
    ApiError,
    Call,
    Endpoint,
    ErrorStyle,
    Vendor,
    decode_offset,
    encode_offset,
    int_param,
    json_response,
)

WRITE_LATENCY_S = 20.0
READ_LATENCY_S = 2.0
_HELP = (
    "For more information on API status codes and how to handle them, "
    "read the docs on errors: https://developers.asana.com/docs/errors"
)
_COMPACT_FIELDS = ("gid", "resource_type", "name")
_EDITABLE_TASK_FIELDS = ("name", "notes", "due_on", "completed")


class AsanaErrors(ErrorStyle):
    """``{"errors": [{"message", "help"}]}``, with Retry-After on 429."""

    default_messages: Mapping[int, str] = {
        401: "Not Authorized",
        404: "Not Found",
        429: "You have made too many requests recently. Please, be chill.",
        500: "Server Error",
        503: "Service Unavailable",
        504: "Request timed out",
    }
    sends_retry_after = True

    def body(self, error: ApiError) -> dict[str, Any]:
        return {"errors": [{"message": self.message(error), "help": _HELP}]}


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _input(call: Call) -> dict[str, Any]:
    data = call.json().get("data")
    if not isinstance(data, dict):
        raise ApiError(400, "data: Missing input")
    return data


def _data(payload: Any, status: int = 200) -> Response:
    return json_response({"data": payload}, status)


def _view(record: dict[str, Any], opt_fields: str | None, *, compact: bool) -> dict[str, Any]:
    """`record` as Asana returns it: only `opt_fields` (plus gid) when given, else compact or full."""
    if opt_fields:
        fields = [name.strip() for name in opt_fields.split(",")]
        return {"gid": record["gid"], **{name: record[name] for name in fields if name in record}}
    return {name: record[name] for name in _COMPACT_FIELDS} if compact else record


def _page(call: Call, records: list[dict[str, Any]]) -> Response:
    """One page of `records`, with Asana's `next_page` (pointing back at the sandbox)."""
    limit = int_param(call.query, "limit", 100, 1, 100, ApiError(400, "limit: Must be between 1 and 100"))
    start = decode_offset(
        call.query.get("offset"), ApiError(400, "offset: Your pagination token is invalid.")
    )
    end = start + limit
    next_page = None
    if end < len(records):
        token = encode_offset(end)
        query = urlencode({**call.query, "limit": limit, "offset": token})
        path = call.request.url.path.removeprefix(call.request.scope.get("root_path", ""))
        next_page = {
            "offset": token,
            "path": f"{path}?{query}",
            "uri": str(call.request.url.replace(query=query)),
        }
    opt_fields = call.query.get("opt_fields")
    return json_response(
        {"data": [_view(r, opt_fields, compact=True) for r in records[start:end]], "next_page": next_page}
    )


def _find(call: Call, kind: str, gid: str) -> StoredObject:
    found = call.store.find(kind, gid)
    if found is None:
        raise ApiError(404, f"Unknown object: {gid}")
    return found


def _compact_ref(gid: str, resource_type: str) -> dict[str, str]:
    return {"gid": gid, "resource_type": resource_type}


def create_project(call: Call) -> Response:
    data = _input(call)
    workspace, team = data.get("workspace"), data.get("team")
    if not workspace and not team:
        raise ApiError(400, "You should specify one of workspace, team")
    gid = call.ids.numeric()
    now = _now()
    project = {
        "gid": gid,
        "resource_type": "project",
        "name": str(data.get("name", "")),
        "notes": str(data.get("notes", "")),
        "archived": False,
        "workspace": _compact_ref(str(workspace), "workspace") if workspace else None,
        "team": _compact_ref(str(team), "team") if team else None,
        "permalink_url": f"https://app.asana.com/0/{gid}/list",
        "created_at": now,
        "modified_at": now,
    }
    call.store.add("project", gid, project)
    return _data(project, 201)


def list_projects(call: Call) -> Response:
    workspace, team = call.query.get("workspace"), call.query.get("team")
    projects = [
        p.data
        for p in call.store.live("project")
        if (workspace is None or (p.data["workspace"] or {}).get("gid") == workspace)
        and (team is None or (p.data["team"] or {}).get("gid") == team)
    ]
    return _page(call, projects)


def get_project(call: Call) -> Response:
    project = _find(call, "project", call.params["projectGid"])
    return _data(_view(project.data, call.query.get("opt_fields"), compact=False))


def delete_project(call: Call) -> Response:
    _find(call, "project", call.params["projectGid"]).deleted = True
    return _data({})


def _due_on(value: Any) -> str | None:
    """A ``YYYY-MM-DD`` date (or null); a 400 otherwise."""
    if value is None:
        return None
    text = str(value)
    try:
        if len(text) == 10:
            return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        pass
    raise ApiError(400, f"due_on: Invalid date value: {value}")


def create_task(call: Call) -> Response:
    data = _input(call)
    project_gids = [str(gid) for gid in data.get("projects") or []]
    workspace = data.get("workspace")
    if not project_gids and not workspace:
        raise ApiError(400, "You should specify one of workspace, parent, projects")
    projects = [_find(call, "project", gid) for gid in project_gids]
    if not workspace and projects:
        workspace = (projects[0].data["workspace"] or {}).get("gid")
    gid = call.ids.numeric()
    now = _now()
    task = {
        "gid": gid,
        "resource_type": "task",
        "name": str(data.get("name", "")),
        "notes": str(data.get("notes", "")),
        "due_on": _due_on(data.get("due_on")),
        "completed": bool(data.get("completed", False)),
        "projects": [{**_compact_ref(p.id, "project"), "name": p.data["name"]} for p in projects],
        "workspace": _compact_ref(str(workspace), "workspace") if workspace else None,
        "permalink_url": f"https://app.asana.com/0/{project_gids[0] if project_gids else 0}/{gid}",
        "created_at": now,
        "modified_at": now,
    }
    call.store.add("task", gid, task)
    return _data(task, 201)


def list_project_tasks(call: Call) -> Response:
    project_gid = _find(call, "project", call.params["projectGid"]).id
    tasks = [
        t.data for t in call.store.live("task") if any(p["gid"] == project_gid for p in t.data["projects"])
    ]
    return _page(call, tasks)


def get_task(call: Call) -> Response:
    task = _find(call, "task", call.params["taskGid"])
    return _data(_view(task.data, call.query.get("opt_fields"), compact=False))


def update_task(call: Call) -> Response:
    task = _find(call, "task", call.params["taskGid"])
    changes = {name: value for name, value in _input(call).items() if name in _EDITABLE_TASK_FIELDS}
    if "due_on" in changes:
        changes["due_on"] = _due_on(changes["due_on"])
    task.data.update(changes, modified_at=_now())
    return _data(task.data)


def delete_task(call: Call) -> Response:
    _find(call, "task", call.params["taskGid"]).deleted = True
    return _data({})


ASANA = Vendor(
    name="asana",
    mount="/asana/api/1.0",
    errors=AsanaErrors(),
    endpoints=(
        Endpoint("POST", "/projects", create_project, WRITE_LATENCY_S),
        Endpoint("GET", "/projects", list_projects, READ_LATENCY_S),
        Endpoint("GET", "/projects/{projectGid}", get_project, READ_LATENCY_S),
        Endpoint("DELETE", "/projects/{projectGid}", delete_project, WRITE_LATENCY_S),
        Endpoint("GET", "/projects/{projectGid}/tasks", list_project_tasks, READ_LATENCY_S),
        Endpoint("POST", "/tasks", create_task, WRITE_LATENCY_S),
        Endpoint("GET", "/tasks/{taskGid}", get_task, READ_LATENCY_S),
        Endpoint("PUT", "/tasks/{taskGid}", update_task, WRITE_LATENCY_S),
        Endpoint("DELETE", "/tasks/{taskGid}", delete_task, WRITE_LATENCY_S),
    ),
)
