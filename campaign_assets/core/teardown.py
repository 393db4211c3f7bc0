"""Teardown: delete what the ledger says a campaign created, in reverse order (DESIGN.md §7).

The ledger is the list of everything a campaign made outside Dagster. This
driver holds no rule of its own: each workflow module says how its rows and
files are torn down (its ``STAGES``, in ``campaign_assets/workflows/``), and
the driver walks them in reverse of ``workflows.WORKFLOWS`` (the order the
graph makes them): the summary report and its Slack message first, the brief
last, so nothing is ever left pointing at something already gone. Each item
is deleted through the service that made it: a row made by the local backend
(``fallback``, or a ``file:`` URL) through the local client, the others
through the configured one. Then its ledger row is marked ``deleted`` (which
also drops its content-library row and writes an audit row).

- Idempotent: rows already ``deleted`` are skipped, and a delete that finds
  the object already gone (the clients' ``delete_*`` return False) is
  reported ``gone``, so a second teardown does nothing and succeeds.
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

from campaign_assets.core.items import describe_error
from campaign_assets.ledger import Ledger, LedgerRow, Scope
from campaign_assets.resources import WorkspaceResource
from campaign_assets.services.asana import AsanaResource
from campaign_assets.services.buffer import SocialResource
from campaign_assets.services.canva import CanvaResource
from campaign_assets.services.docs import DocsResource
from campaign_assets.services.github_pages import PagesResource
from campaign_assets.services.amazon_dsp import AmazonDSPResource
from campaign_assets.services.dv360 import DV360Resource
from campaign_assets.services.trade_desk import TradeDeskResource
from campaign_assets.services.local import inside, unlink
from campaign_assets.services.sendgrid import EmailResource
from campaign_assets.services.sheets import SheetsResource
from campaign_assets.services.slack import SlackResource
from campaign_assets.spec import CAMPAIGN_ID_PATTERN, SpecError, find_spec_path, load_spec
from campaign_assets.workflows import WORKFLOWS
from campaign_assets.workflows.common import Context, Stage, Unverifiable

Outcome = Literal["deleted", "gone", "skipped", "failed"]

# The workflows' own stages, in teardown order (the reverse of the order the graph makes them).
TEARDOWN: tuple[Stage, ...] = tuple(reversed([stage for module in WORKFLOWS for stage in module.STAGES]))
STAGES: tuple[str, ...] = tuple(stage.name for stage in TEARDOWN)
CLIENT_SERVICES: tuple[str, ...] = (
    "docs", "sheets", "asana", "canva", "amazon_dsp", "trade_desk", "dv360", "slack", "email", "social", "pages",
)


@dataclass(frozen=True)
class TeardownServices:
    """The service resources a teardown deletes through."""

    docs: DocsResource
    sheets: SheetsResource
    asana: AsanaResource
    canva: CanvaResource
    amazon_dsp: AmazonDSPResource
    trade_desk: TradeDeskResource
    dv360: DV360Resource
    slack: SlackResource
    email: EmailResource
    social: SocialResource
    pages: PagesResource

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
class PlannedStage:
    """A workflow's stage with the live rows it will delete."""

    stage: Stage
    rows: tuple[LedgerRow, ...]

    @property
    def name(self) -> str:
        return self.stage.name


@dataclass(frozen=True)
class TeardownPlan:
    organization: str | None
    campaign: str
    stages: tuple[PlannedStage, ...]
    unknown: tuple[LedgerRow, ...] = field(default=())  # rows of assets with no teardown rule

    @property
    def rows(self) -> list[LedgerRow]:
        return [r for s in self.stages for r in s.rows]


# ---- planning (pure) ----------------------------------------------------------
def stage_of(row: LedgerRow) -> Stage | None:
    """The workflow stage whose rules match ``row`` (None: no workflow tears it down)."""
    return next((stage for stage in TEARDOWN if stage.rule_for(row) is not None), None)


def plan_teardown(organization: str | None, campaign: str, rows: Iterable[LedgerRow]) -> TeardownPlan:
    """The live rows (not yet ``deleted``) grouped into stages, in teardown order."""
    by_stage: dict[str, list[LedgerRow]] = {stage.name: [] for stage in TEARDOWN}
    unknown: list[LedgerRow] = []
    for row in rows:
        if row.status == "deleted":
            continue
        stage = stage_of(row)
        if stage is None:
            unknown.append(row)
        else:
            by_stage[stage.name].append(row)
    stages = tuple(
        PlannedStage(stage, tuple(sorted(by_stage[stage.name], key=lambda r: r.item_key))) for stage in TEARDOWN
    )
    return TeardownPlan(organization, campaign, stages, tuple(unknown))


def resolve_organization(
    campaign: str, ledger: Ledger, campaigns_dir: str | os.PathLike[str] | Any, explicit: str | None = None
) -> str | None:
    """The tenant of a campaign: given, else the spec's, else the only one the
    ledger knows (``None`` when the ledger has nothing for the campaign)."""
    if explicit:
        return explicit
    try:
        return load_spec(find_spec_path(campaigns_dir, campaign)).organization
    except (FileNotFoundError, SpecError):
        pass
    found = ledger.organizations(campaign)
    if len(found) > 1:
        raise ValueError(f"campaign {campaign!r} exists for several organizations ({', '.join(found)}): name one")
    return found[0] if found else None


def is_torn_down(ledger: Ledger, organization: str, campaign: str) -> bool:
    """A teardown ran (and nothing re-created the campaign since): the
    summary report, the first thing a teardown deletes, is marked deleted."""
    report = ledger.rows(Scope(organization, campaign, "summary_report")).get("report")
    return report is not None and report.status == "deleted"


def campaign_folder(workspace: WorkspaceResource, organization: str, campaign: str) -> Path:
    """Where the campaign's local artifacts live (without creating a local
    root's folder). A URL root's campaign is pulled into the cache first, so
    the teardown sees (and deletes) what any host made."""
    if workspace.mirrored:
        return workspace.campaign_dir(organization, campaign)
    return Path(workspace.root).resolve() / organization / campaign


# ---- execution ----------------------------------------------------------------
def made_locally(row: LedgerRow) -> bool:
    """Made by the local backend: while the vendor was down (``fallback``), or
    as a record of a local client (its URL is a file)."""
    return row.status == "fallback" or (row.url or "").startswith("file:")


class _Clients:
    """The sessions a teardown deletes through, opened on first use: the
    configured backend, and the local one for rows it made."""

    def __init__(self, services: TeardownServices, folder: Path, stack: AsyncExitStack):
        self.services, self.folder, self.stack = services, folder, stack
        self.open: dict[tuple[str, bool], Any] = {}

    async def get(self, service: str, row: LedgerRow) -> Any:
        resource = getattr(self.services, service)
        local = made_locally(row) and resource.backend != "local"
        if (service, local) not in self.open:
            session = resource.session(self.folder, local=True) if local else resource.session(self.folder)
            self.open[service, local] = await self.stack.enter_async_context(session)
        return self.open[service, local]


async def _run_stage(planned: PlannedStage, clients: _Clients, ctx: Context, ledger: Ledger) -> list[Removal]:
    stage = planned.stage

    async def one(row: LedgerRow) -> Removal:
        asset, key = row.scope.asset, row.item_key
        rule = stage.rule_for(row)
        assert rule is not None  # planned by it
        try:
            service = rule.service_for(row)
            client = await clients.get(service, row) if service else None
            deleted = await rule.delete(client, row, ctx)
        except Unverifiable as exc:
            return Removal(stage.name, asset, key, row.service, "skipped", str(exc))
        except Exception as exc:  # an item failure never sinks its siblings
            return Removal(stage.name, asset, key, row.service, "failed", describe_error(exc))
        ledger.mark_deleted(row)
        return Removal(stage.name, asset, key, row.service, "deleted" if deleted else "gone", row.vendor_id or "")

    removals = list(await asyncio.gather(*(one(r) for r in planned.rows)))
    for name in stage.files:
        if unlink(inside(ctx.folder, name)):
            removals.append(Removal(stage.name, stage.asset, name, "local", "deleted", "local file"))
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
    removals: list[Removal] = [
        Removal("unknown", r.scope.asset, r.item_key, r.service, "skipped", "no teardown rule for this asset")
        for r in plan.unknown
    ]
    stopped_at: str | None = None
    ctx = Context(folder, tuple(plan.rows))
    async with AsyncExitStack() as stack:
        clients = _Clients(services, folder, stack)
        for planned in plan.stages:
            if not planned.rows and not any((folder / f).exists() for f in planned.stage.files):
                continue
            done = await _run_stage(planned, clients, ctx, ledger)
            removals += done
            if any(r.outcome == "failed" for r in done):
                stopped_at = planned.name
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
    report = asyncio.run(execute_plan(plan, ledger, services, folder))
    if workspace.mirrored:
        workspace.push(prune=True)  # the files it deleted go from the bucket too
    return report


def build_plan(
    campaign: str, *, workspace: WorkspaceResource, ledger: Ledger, organization: str | None = None
) -> TeardownPlan:
    if not re.fullmatch(CAMPAIGN_ID_PATTERN, campaign):
        raise ValueError(f"{campaign!r} is not a campaign id")
    org = resolve_organization(campaign, ledger, workspace.specs_folder(), organization)
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

