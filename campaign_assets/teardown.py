"""Teardown: delete what the ledger says a campaign created, in reverse order (DESIGN.md §7).

The ledger is the list of everything a campaign made outside Dagster. A
teardown walks it backwards through the graph: the summary report and its
Slack message first, the brief last, so nothing is ever left pointing at
something already gone. Each item is deleted through the same service
resources that created it (local or HTTP), then its ledger row is marked
``deleted`` (which also drops its content-library row and writes an audit
row).

- Idempotent: rows already ``deleted`` are skipped, and a vendor that answers
  404 ("already gone") counts as done, so a second teardown does nothing and
  succeeds.
- An item failure never sinks its siblings in the same stage, but a stage
  with failures stops the teardown before the next (more upstream) stage;
  running it again retries only what is left.
- The plain functions here are what the ``teardown_job`` op and the
  ``campaign-assets teardown`` command both call.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa

from campaign_assets.items import describe_error
from campaign_assets.ledger import Ledger, LedgerRow, Scope, ledger_items
from campaign_assets.resources import WorkspaceResource
from campaign_assets.services.asana import AsanaResource
from campaign_assets.services.canva import CanvaResource
from campaign_assets.services.docs import DocsResource
from campaign_assets.services.dsp import DSPResource
from campaign_assets.services.sheets import SheetsResource
from campaign_assets.services.slack import SlackResource
from campaign_assets.spec import CAMPAIGN_ID_PATTERN, SpecError, find_spec_path, load_spec

Outcome = Literal["deleted", "gone", "skipped", "failed"]

# Reverse dependency order of DESIGN.md §2. Project tasks go before their
# project; the landing page is a local file the ledger does not track.
STAGES: tuple[str, ...] = (
    "summary_report",
    "dsp_activation",
    "content_library",
    "content_pieces",
    "landing_page",
    "creatives",
    "project_tasks:tasks",
    "project_tasks:project",
    "media_plan",
    "campaign_brief",
)
# Local artifacts written beside the ledgered ones (relative to the campaign folder).
STAGE_FILES: Mapping[str, tuple[str, ...]] = {
    "landing_page": ("landing_page.html",),
    "project_tasks:project": ("tasks.csv",),
}
CLIENT_SERVICES: tuple[str, ...] = ("docs", "sheets", "asana", "canva", "dsp", "slack")
GONE_STATUS = frozenset({404, 410})
GONE_CODES = ("message_not_found", "not_found", "notfound")


@dataclass(frozen=True)
class TeardownServices:
    """The service resources a teardown deletes through."""

    docs: DocsResource
    sheets: SheetsResource
    asana: AsanaResource
    canva: CanvaResource
    dsp: DSPResource
    slack: SlackResource

    @classmethod
    def from_mapping(cls, resources: Mapping[str, Any]) -> TeardownServices:
        return cls(**{name: resources[name] for name in CLIENT_SERVICES})


@dataclass(frozen=True)
class Removal:
    """What happened to one ledger item (or local file)."""

    stage: str
    asset: str
    item_key: str
    service: str
    outcome: Outcome
    detail: str = ""


@dataclass(frozen=True)
class TeardownReport:
    organization: str | None
    campaign: str
    removals: tuple[Removal, ...] = ()
    stopped_at: str | None = None  # the stage whose failures stopped the teardown

    @property
    def counts(self) -> dict[str, int]:
        counter = Counter(r.outcome for r in self.removals)
        return {k: counter.get(k, 0) for k in ("deleted", "gone", "skipped", "failed")}

    @property
    def failures(self) -> list[Removal]:
        return [r for r in self.removals if r.outcome == "failed"]

    @property
    def ok(self) -> bool:
        return self.stopped_at is None and not self.failures

    def by_asset(self) -> dict[str, dict[str, int]]:
        table: dict[str, Counter[str]] = {}
        for r in self.removals:
            table.setdefault(r.asset, Counter())[r.outcome] += 1
        return {asset: dict(c) for asset, c in table.items()}


@dataclass(frozen=True)
class Stage:
    name: str
    rows: tuple[LedgerRow, ...]
    files: tuple[str, ...] = ()


@dataclass(frozen=True)
class TeardownPlan:
    organization: str | None
    campaign: str
    stages: tuple[Stage, ...]
    unknown: tuple[LedgerRow, ...] = field(default=())  # rows of assets with no teardown rule

    @property
    def rows(self) -> list[LedgerRow]:
        return [r for s in self.stages for r in s.rows]


# ---- planning (pure) ----------------------------------------------------------
def stage_of(row: LedgerRow) -> str | None:
    asset = row.scope.asset
    if asset == "project_tasks":
        return "project_tasks:tasks" if row.item_key.startswith("task:") else "project_tasks:project"
    return asset if asset in STAGES else None


def plan_teardown(organization: str | None, campaign: str, rows: Iterable[LedgerRow]) -> TeardownPlan:
    """The live rows (not yet ``deleted``) grouped into stages, in teardown order."""
    by_stage: dict[str, list[LedgerRow]] = {name: [] for name in STAGES}
    unknown: list[LedgerRow] = []
    for row in rows:
        if row.status == "deleted":
            continue
        name = stage_of(row)
        if name is None:
            unknown.append(row)
        else:
            by_stage[name].append(row)
    stages = tuple(
        Stage(name, tuple(sorted(by_stage[name], key=lambda r: r.item_key)), STAGE_FILES.get(name, ()))
        for name in STAGES
    )
    return TeardownPlan(organization, campaign, stages, tuple(unknown))


def resolve_organization(
    campaign: str, ledger: Ledger, campaigns_dir: str | os.PathLike[str], explicit: str | None = None
) -> str | None:
    """The tenant of a campaign: given, else the spec's, else the only one the
    ledger knows (``None`` when the ledger has nothing for the campaign)."""
    if explicit:
        return explicit
    try:
        return load_spec(find_spec_path(campaigns_dir, campaign)).organization
    except (FileNotFoundError, SpecError):
        pass
    t = ledger_items
    with ledger.engine.connect() as conn:
        found = sorted(
            conn.execute(sa.select(t.c.organization).where(t.c.campaign == campaign).distinct()).scalars()
        )
    if len(found) > 1:
        raise ValueError(f"campaign {campaign!r} exists for several organizations ({', '.join(found)}): name one")
    return found[0] if found else None


def is_torn_down(ledger: Ledger, organization: str, campaign: str) -> bool:
    """A teardown ran (and nothing re-created the campaign since): the
    summary report, the first thing a teardown deletes, is marked deleted."""
    report = ledger.rows(Scope(organization, campaign, "summary_report")).get("report")
    return report is not None and report.status == "deleted"


def campaign_folder(workspace: WorkspaceResource, organization: str, campaign: str) -> Path:
    """Where the campaign's local artifacts live (without creating it)."""
    return Path(workspace.root).resolve() / organization / campaign


def is_gone(exc: BaseException) -> bool:
    """A delete that failed because the object no longer exists."""
    if getattr(exc, "status_code", None) in GONE_STATUS:
        return True
    text = f"{getattr(exc, 'kind', '')} {getattr(exc, 'message', '')}".lower()
    return any(code in text for code in GONE_CODES)


# ---- execution ----------------------------------------------------------------
def _inside(folder: Path, *parts: str) -> Path:
    path = folder.joinpath(*parts).resolve()
    if not path.is_relative_to(folder.resolve()):
        raise ValueError(f"refusing to delete {path}: outside the campaign folder {folder}")
    return path


def _unlink(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


class _Remover:
    """Deletes one ledger item through the right client; returns whether
    something was deleted (False: it was already gone)."""

    def __init__(self, clients: Mapping[str, Any], folder: Path, project_gid: str | None):
        self.clients = clients
        self.folder = folder
        self.project_gid = project_gid

    async def remove(self, row: LedgerRow) -> bool:
        asset, key, vid = row.scope.asset, row.item_key, row.vendor_id
        if asset == "content_library":
            return True  # the vault row goes with Ledger.mark_deleted
        if asset == "content_pieces":
            return _unlink(_inside(self.folder, "content", f"{key}.md"))
        if asset == "creatives":
            return await self._creative(row)
        if asset == "summary_report" and key == "notification":
            slack = self.clients["slack"]
            ts = vid or getattr(await slack.find_message(marker=row.marker), "ts", None)
            return await self._call(slack.delete_message, ts)
        if asset == "dsp_activation":
            dsp = self.clients["dsp"]
            vid = vid or getattr(await dsp.find_line_item(marker=row.marker), "line_item_id", None)
            return await self._call(dsp.delete_line_item, vid)
        if asset == "project_tasks":
            asana = self.clients["asana"]
            if key == "project":
                vid = vid or getattr(await asana.find_project(marker=row.marker), "gid", None)
                return await self._call(asana.delete_project, vid)
            if not vid and self.project_gid:
                vid = getattr(await asana.find_task(self.project_gid, marker=row.marker), "gid", None)
            return await self._call(asana.delete_task, vid)
        if asset in ("summary_report", "campaign_brief"):
            return await self._required(row, self.clients["docs"].delete_document)
        if asset == "media_plan":
            return await self._required(row, self.clients["sheets"].delete_spreadsheet)
        raise ValueError(f"no teardown rule for {asset}/{key}")

    async def _creative(self, row: LedgerRow) -> bool:
        canva = self.clients["canva"]
        asset_id = row.payload.get("asset_id") or getattr(await canva.find_asset(marker=row.marker), "asset_id", None)
        deleted = await self._call(canva.delete_asset, asset_id)
        size = row.payload.get("size") or row.item_key.removeprefix("creative:")
        return _unlink(_inside(self.folder, "creatives", f"{size}.png")) or deleted

    @staticmethod
    async def _call(delete: Any, vendor_id: str | None) -> bool:
        if not vendor_id:
            return False  # nothing recorded and nothing found by marker
        try:
            await delete(vendor_id)
        except Exception as exc:
            if is_gone(exc):
                return False
            raise
        return True

    async def _required(self, row: LedgerRow, delete: Any) -> bool:
        if not row.vendor_id:
            # No id and no marker lookup for documents: leave the row for a person.
            raise _Unverifiable(f"no vendor id recorded; look for marker {row.marker}")
        return await self._call(delete, row.vendor_id)


class _Unverifiable(Exception):
    pass


async def _run_stage(stage: Stage, remover: _Remover, ledger: Ledger) -> list[Removal]:
    async def one(row: LedgerRow) -> Removal:
        asset, key = row.scope.asset, row.item_key
        try:
            deleted = await remover.remove(row)
        except _Unverifiable as exc:
            return Removal(stage.name, asset, key, row.service, "skipped", str(exc))
        except Exception as exc:  # an item failure never sinks its siblings
            return Removal(stage.name, asset, key, row.service, "failed", describe_error(exc))
        ledger.mark_deleted(row)
        return Removal(stage.name, asset, key, row.service, "deleted" if deleted else "gone", row.vendor_id or "")

    removals = list(await asyncio.gather(*(one(r) for r in stage.rows)))
    asset = stage.name.split(":")[0]
    for name in stage.files:
        if _unlink(_inside(remover.folder, name)):
            removals.append(Removal(stage.name, asset, name, "local", "deleted", "local file"))
    return removals


def _prune_empty_dirs(folder: Path) -> None:
    if not folder.is_dir():
        return
    for root, _dirs, _files in sorted(os.walk(folder), key=lambda w: len(w[0]), reverse=True):
        try:
            Path(root).rmdir()  # only succeeds when empty
        except OSError:
            pass


async def execute_plan(
    plan: TeardownPlan, ledger: Ledger, services: TeardownServices, folder: Path
) -> TeardownReport:
    """Run the stages in order; stop after a stage with failures."""
    if plan.organization is None:
        return TeardownReport(None, plan.campaign)
    needed = {r.service for r in plan.rows} & set(CLIENT_SERVICES)
    removals: list[Removal] = [
        Removal("unknown", r.scope.asset, r.item_key, r.service, "skipped", "no teardown rule for this asset")
        for r in plan.unknown
    ]
    stopped_at: str | None = None
    project = next((r for r in plan.rows if r.scope.asset == "project_tasks" and r.item_key == "project"), None)
    async with AsyncExitStack() as stack:
        clients = {
            name: await stack.enter_async_context(getattr(services, name).session(folder)) for name in sorted(needed)
        }
        remover = _Remover(clients, folder, project.vendor_id if project else None)
        for stage in plan.stages:
            if not stage.rows and not any((folder / f).exists() for f in stage.files):
                continue
            done = await _run_stage(stage, remover, ledger)
            removals += done
            if any(r.outcome == "failed" for r in done):
                stopped_at = stage.name
                break
    if stopped_at is None:
        _prune_empty_dirs(folder)
    return TeardownReport(plan.organization, plan.campaign, tuple(removals), stopped_at)


def teardown_campaign(
    campaign: str,
    *,
    workspace: WorkspaceResource,
    ledger: Ledger,
    services: TeardownServices,
    organization: str | None = None,
) -> TeardownReport:
    """Delete everything the ledger says ``campaign`` created (see the module doc)."""
    plan = build_plan(campaign, workspace=workspace, ledger=ledger, organization=organization)
    if plan.organization is None:
        return TeardownReport(None, campaign)
    folder = campaign_folder(workspace, plan.organization, campaign)
    return asyncio.run(execute_plan(plan, ledger, services, folder))


def build_plan(
    campaign: str, *, workspace: WorkspaceResource, ledger: Ledger, organization: str | None = None
) -> TeardownPlan:
    if not re.fullmatch(CAMPAIGN_ID_PATTERN, campaign):
        raise ValueError(f"{campaign!r} is not a campaign id")
    org = resolve_organization(campaign, ledger, workspace.campaigns_dir, organization)
    rows = ledger.campaign_rows(org, campaign) if org else []
    return plan_teardown(org, campaign, rows)


def describe_plan(plan: TeardownPlan) -> list[str]:
    """One line per item a teardown would delete, in order (for --dry-run)."""
    lines = [
        f"{stage.name:<22} {row.scope.asset}/{row.item_key} ({row.service}, {row.status}) {row.vendor_id or '-'}"
        for stage in plan.stages
        for row in stage.rows
    ]
    lines += [f"{'unknown':<22} {r.scope.asset}/{r.item_key}: no teardown rule, left as is" for r in plan.unknown]
    return lines


def summarize(report: TeardownReport) -> list[str]:
    """A few lines for a person: counts per asset, failures, where it stopped."""
    if report.organization is None:
        return [f"{report.campaign}: nothing in the ledger; nothing to delete"]
    counts = report.counts
    head = (
        f"{report.organization}/{report.campaign}: {counts['deleted']} deleted, {counts['gone']} already gone, "
        f"{counts['skipped']} skipped, {counts['failed']} failed"
    )
    lines = [head]
    for asset, outcome in report.by_asset().items():
        lines.append(f"  {asset:<18} " + "  ".join(f"{k} {v}" for k, v in sorted(outcome.items())))
    lines += [f"  FAILED {r.asset}/{r.item_key}: {r.detail}" for r in report.failures]
    lines += [f"  skipped {r.asset}/{r.item_key}: {r.detail}" for r in report.removals if r.outcome == "skipped"]
    if report.stopped_at:
        lines.append(f"  stopped after stage {report.stopped_at}: run the teardown again to retry what is left")
    return lines

