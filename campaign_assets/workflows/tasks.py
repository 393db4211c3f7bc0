"""project_tasks: the launch plan as an Asana project with one task per milestone.

Made: ledger items ``project`` and ``task:<key>`` (asana), and tasks.csv in
the campaign folder. Torn down in two stages: the tasks first (each by its
recorded gid, else found by marker in its project), then the project (by
gid, else by marker) and tasks.csv. Rows made locally go through the local
backend.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from campaign_assets.core.items import Attempt, Item, ItemReport, ItemResult, VendorRef, locate, run_items
from campaign_assets.ledger import Ledger, LedgerRow
from campaign_assets.logic.csv_safe import dict_csv_text
from campaign_assets.services.asana import AsanaResource
from campaign_assets.services.local import write_text
from campaign_assets.services.protocols import Asana
from campaign_assets.spec import CampaignSpec
from campaign_assets.workflows.common import Context, Outcome, Rule, Stage, clients, deleted_by_id, scope_of

ASSET = "project_tasks"
TASK_PREFIX = "task:"
TASKS_CSV = "tasks.csv"


async def make_project(spec: CampaignSpec, asana: AsanaResource, ledger: Ledger, out: Path) -> Outcome:
    scope = scope_of(spec, ASSET)
    notes = f"Launch plan for {spec.name} ({spec.flight.start} to {spec.flight.end}). Managed by campaign_assets."
    planned = spec.launch_tasks()
    by_key = {f"{TASK_PREFIX}{t.key}": t for t in planned}

    def project_creator(client: Asana) -> Callable[[Item, Attempt], Awaitable[VendorRef]]:
        async def create(item: Item, attempt: Attempt) -> VendorRef:
            project = await attempt.adopt_or_create(
                lambda marker: client.find_project(marker=marker),
                lambda marker: client.create_project(spec.name, notes, marker=marker),
            )
            return VendorRef(project.gid, project.url, {"name": project.name})

        return create

    def task_creator(client: Asana, project_gid: str) -> Callable[[Item, Attempt], Awaitable[VendorRef]]:
        async def create(item: Item, attempt: Attempt) -> VendorRef:
            t = by_key[item.key]
            task = await attempt.adopt_or_create(
                lambda marker: client.find_task(project_gid, marker=marker),
                lambda marker: client.create_task(project_gid, t.name, t.notes, t.due_on, marker=marker),
            )
            return VendorRef(task.gid, task.url, {"name": task.name, "due_on": task.due_on})

        return create

    async with clients(out, asana) as (live, local):
        (client,) = live
        project_report = await run_items(
            ledger, scope, "asana", [Item("project", {"name": spec.name, "notes": notes})],
            create=project_creator(client), fallback=local and project_creator(*local),
        )
        project = project_report.ref("project")
        if project is None:
            skipped = tuple(ItemResult(key, "failed", error="project was not created") for key in by_key)
            return Outcome(None, [project_report, ItemReport("asana", skipped)], live)
        # Tasks live where their project lives: a project made locally while
        # Asana was down gets local tasks, and both move to Asana next time.
        project_is_local = project_report.results[0].action == "fallback"
        tasks_client = local[0] if project_is_local and local else client

        async def update_task(item: Item, ref: VendorRef, attempt: Attempt) -> VendorRef:
            t = by_key[item.key]
            task = await tasks_client.update_task(ref.vendor_id, t.name, t.notes, t.due_on, marker=attempt.marker)
            return VendorRef(task.gid, task.url, {"name": task.name, "due_on": task.due_on})

        task_report = await run_items(
            ledger, scope, "asana",
            [Item(key, {"name": t.name, "notes": t.notes, "due_on": t.due_on, "project": project.vendor_id})
             for key, t in by_key.items()],
            create=task_creator(tasks_client, project.vendor_id),
            update=update_task,
            fallback=None if project_is_local or not local else task_creator(local[0], project.vendor_id),
        )
    tasks = [
        {
            "key": r.key,
            "name": by_key[r.key].name,
            "due_on": by_key[r.key].due_on.isoformat(),
            "status": {"failed": "failed", "fallback": "local"}.get(r.action, "ok"),
            "gid": r.ref.vendor_id if r.ref else "",
            "url": (r.ref.url if r.ref else "") or "",
            "error": r.error or "",
        }
        for r in task_report.results
    ]
    # Task names and notes come from the spec, errors from vendors: one writer
    # neutralizes formula-looking text (see campaign_assets.logic.csv_safe).
    write_text(out / TASKS_CSV, dict_csv_text(tasks))
    value: dict[str, Any] = {"project": {"gid": project.vendor_id, "url": project.url, "name": spec.name}, "tasks": tasks}
    return Outcome(value, [project_report, task_report], live, {"project_url": project.url})


async def _delete_project(asana: Asana, row: LedgerRow, ctx: Context) -> bool:
    gid = await locate(row, lambda marker: _gid(asana.find_project(marker=marker)))
    return await deleted_by_id(asana.delete_project, gid)


async def _delete_task(asana: Asana, row: LedgerRow, ctx: Context) -> bool:
    project_gid = ctx.vendor_id(ASSET, "project")

    async def find(marker: str) -> str | None:
        return await _gid(asana.find_task(project_gid, marker=marker)) if project_gid else None

    return await deleted_by_id(asana.delete_task, await locate(row, find))


async def _gid(found: Awaitable[Any]) -> str | None:
    return getattr(await found, "gid", None)


# Made in this order (the project, then its tasks); torn down in reverse.
STAGES = (
    Stage(f"{ASSET}:project", ASSET, (Rule("asana", _delete_project, "project"),), files=(TASKS_CSV,)),
    Stage(f"{ASSET}:tasks", ASSET, (Rule("asana", _delete_task, TASK_PREFIX),)),
)
