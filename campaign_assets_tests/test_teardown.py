"""Teardown: materialize a campaign with the local backends, then delete it all."""

import asyncio
import datetime as dt
import shutil
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from campaign_assets import cli
from campaign_assets.defs.campaign import assets as campaign_module, research as research_module
from campaign_assets.ledger import Ledger, LedgerRow, Scope
from campaign_assets.resources import SERVICE_ENV, LedgerResource, WorkspaceResource, build_resources
from campaign_assets.core.teardown import (
    STAGES,
    TeardownServices,
    build_plan,
    execute_plan,
    is_torn_down,
    plan_teardown,
    teardown_campaign,
)
from campaign_assets.services.asana import LocalAsana
from campaign_assets.services.canva import LocalCanva
from campaign_assets.services.docs import LocalDocs
from campaign_assets.services.dsp import LocalDSP
from campaign_assets.services.http import RetryableVendorError
from campaign_assets.services.sheets import LocalSheets
from campaign_assets.services.slack import LocalSlack

EXAMPLES = Path(__file__).resolve().parents[1] / "campaigns"
CAMPAIGN = "q4-product-launch"
ORG = "acme"


@dataclass
class Env:
    root: Path
    resources: dict[str, Any]

    @property
    def workspace(self) -> WorkspaceResource:
        return self.resources["workspace"]

    @property
    def ledger(self) -> Ledger:
        return self.resources["ledger"].open()

    @property
    def folder(self) -> Path:
        return self.root / "workspace" / ORG / CAMPAIGN

    def services(self) -> TeardownServices:
        return TeardownServices.from_mapping(self.resources)


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as instance:
        yield instance


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Env:
    """Local backends (no token set), temp campaigns folder, workspace and ledger."""
    for _cls, _prefix, token in SERVICE_ENV.values():
        if token:
            monkeypatch.delenv(token, raising=False)
    shutil.copytree(EXAMPLES, tmp_path / "campaigns")
    variables = {"CAMPAIGNS_DIR": str(tmp_path / "campaigns"), "WORKSPACE_DIR": str(tmp_path / "workspace")}
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    resources = build_resources({}) | {
        "workspace": WorkspaceResource(campaigns_dir=variables["CAMPAIGNS_DIR"], root=variables["WORKSPACE_DIR"]),
        "ledger": LedgerResource(sqlite_path=str(tmp_path / "workspace" / "ledger.sqlite")),
    }
    return Env(tmp_path, resources)


@pytest.fixture
def materialized(env: Env, instance: dg.DagsterInstance) -> Env:
    instance.add_dynamic_partitions("campaigns", [CAMPAIGN])
    result = dg.materialize(
        dg.load_assets_from_modules([campaign_module, research_module]), partition_key=CAMPAIGN, instance=instance, resources=env.resources
    )
    assert result.success
    assert (env.folder / "landing_page.html").exists() and (env.folder / "brief.md").exists()
    return env


def files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_teardown_deletes_everything_the_ledger_recorded_and_is_idempotent(materialized: Env) -> None:
    env = materialized
    ledger = env.ledger
    rows = ledger.campaign_rows(ORG, CAMPAIGN)
    assert rows and ledger.library(ORG, CAMPAIGN)

    report = teardown_campaign(CAMPAIGN, workspace=env.workspace, ledger=ledger, services=env.services())

    assert report.ok, report
    assert report.counts["deleted"] == len(rows) + 2  # + landing_page.html and tasks.csv, not ledgered
    assert files(env.folder) == [] and not env.folder.exists()
    assert {r.status for r in ledger.campaign_rows(ORG, CAMPAIGN)} == {"deleted"}
    assert ledger.library(ORG, CAMPAIGN) == []
    deleted = [a for a in ledger.audit(ORG, CAMPAIGN) if a["action"] == "deleted"]
    assert len(deleted) == len(rows)
    # Reverse dependency order: the report first, the brief last, tasks before their project.
    order = [r.stage for r in report.removals]
    assert order == sorted(order, key=STAGES.index)
    assert order[0] == "summary_report" and order[-1] == "campaign_brief"

    assert is_torn_down(ledger, ORG, CAMPAIGN)  # the report schedule leaves it alone now

    again = teardown_campaign(CAMPAIGN, workspace=env.workspace, ledger=ledger, services=env.services())
    assert again.ok and again.removals == ()
    assert len([a for a in ledger.audit(ORG, CAMPAIGN) if a["action"] == "deleted"]) == len(rows)


def test_rematerialize_after_teardown_recreates(materialized: Env, instance: dg.DagsterInstance) -> None:
    env = materialized
    teardown_campaign(CAMPAIGN, workspace=env.workspace, ledger=env.ledger, services=env.services())
    result = dg.materialize(
        dg.load_assets_from_modules([campaign_module, research_module]), partition_key=CAMPAIGN, instance=instance, resources=env.resources
    )
    assert result.success
    assert (env.folder / "brief.md").exists()
    assert {r.status for r in env.ledger.campaign_rows(ORG, CAMPAIGN)} == {"created"}
    assert not is_torn_down(env.ledger, ORG, CAMPAIGN)


def test_teardown_job_runs_from_the_definitions(materialized: Env, instance: dg.DagsterInstance) -> None:
    from campaign_assets.definitions import build_defs

    job = build_defs({}).resolve_job_def("teardown_job")
    result = job.execute_in_process(instance=instance, partition_key=CAMPAIGN, resources=materialized.resources)
    assert result.success
    output = result.output_for_node("teardown_campaign")
    assert output["counts"]["failed"] == 0 and output["counts"]["deleted"] > 0
    observed = instance.fetch_observations(dg.AssetKey("summary_report"), limit=1).records
    assert observed and observed[0].partition_key == CAMPAIGN
    assert files(materialized.folder) == []
    again = job.execute_in_process(instance=instance, partition_key=CAMPAIGN, resources=materialized.resources)
    assert again.success and again.output_for_node("teardown_campaign")["counts"]["deleted"] == 0


def test_cli_teardown(materialized: Env, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["teardown", CAMPAIGN, "--dry-run"]) == 0
    listing = capsys.readouterr().out
    assert "would be deleted" in listing and "summary_report/notification" in listing
    assert files(materialized.folder)  # a dry run deletes nothing
    assert cli.main(["teardown", CAMPAIGN]) == 0
    assert "deleted" in capsys.readouterr().out
    assert files(materialized.folder) == []
    assert cli.main(["teardown", CAMPAIGN]) == 0
    assert "0 deleted" in capsys.readouterr().out
    assert cli.main(["teardown", "../etc"]) == 2


def test_organization_comes_from_the_ledger_when_the_spec_is_gone(materialized: Env) -> None:
    (materialized.root / "campaigns" / f"{CAMPAIGN}.yaml").unlink()
    plan = build_plan(CAMPAIGN, workspace=materialized.workspace, ledger=materialized.ledger)
    assert plan.organization == ORG and plan.rows
    assert build_plan("never-launched", workspace=materialized.workspace, ledger=materialized.ledger).organization is None


# ---- planning and failures, without a materialization ----------------------------
def row(asset: str, key: str, service: str, vendor_id: str | None = "v", status: str = "created") -> LedgerRow:
    scope = Scope(ORG, CAMPAIGN, asset)
    return LedgerRow(scope, key, service, status, vendor_id, None, scope.marker(key), "h", {})


def test_plan_orders_stages_and_skips_deleted_rows() -> None:
    rows = [
        row("campaign_brief", "brief", "docs"),
        row("project_tasks", "project", "asana"),
        row("project_tasks", "task:kickoff", "asana"),
        row("summary_report", "report", "docs"),
        row("media_plan", "spreadsheet", "sheets", status="deleted"),
        row("research", "x", "llm"),
    ]
    plan = plan_teardown(ORG, CAMPAIGN, rows)
    order = [(s.name, r.item_key) for s in plan.stages for r in s.rows]
    assert order == [
        ("summary_report", "report"),
        ("project_tasks:tasks", "task:kickoff"),
        ("project_tasks:project", "project"),
        ("campaign_brief", "brief"),
    ]
    assert [r.scope.asset for r in plan.unknown] == ["research"]


class FakeClient:
    """Records deletes. Like the real clients, a delete returns True, or False
    when the object is already gone; it raises only what they raise (the
    HTTP layer's errors once retries are exhausted)."""

    def __init__(self, log: list[str], gone: set[str], errors: dict[str, Exception], local: bool):
        self.log, self.gone, self.errors, self.local = log, gone, errors, local

    def __getattr__(self, name: str) -> Any:
        async def call(*args: Any, **kwargs: Any) -> bool | None:
            self.log.append(f"{'local:' if self.local else ''}{name}:{args[0] if args else ''}")
            if args and args[0] in self.errors:
                raise self.errors[args[0]]
            if name.startswith("find_"):
                return None
            return not (args and args[0] in self.gone)

        return call


class FakeResource:
    backend = "http"

    def __init__(self, log: list[str], gone: set[str], errors: dict[str, Exception]):
        self.live = FakeClient(log, gone, errors, local=False)
        self.local = FakeClient(log, gone, errors, local=True)

    @asynccontextmanager
    async def session(self, out_dir: Path, *, local: bool = False) -> AsyncIterator[FakeClient]:
        yield self.local if local else self.live


def fake_services(log: list[str], errors: dict[str, Exception], gone: set[str] | None = None) -> TeardownServices:
    fake = FakeResource(log, gone or set(), errors)
    return TeardownServices(  # type: ignore[arg-type]
        docs=fake, sheets=fake, asana=fake, canva=fake, amazon_dsp=fake, trade_desk=fake, dv360=fake, slack=fake,
        email=fake, social=fake, pages=fake,
    )


def seed(ledger: Ledger, *rows: LedgerRow) -> None:
    for r in rows:
        ledger.record_success(
            r.scope, r.item_key, r.service, action="created", vendor_id=r.vendor_id or "", url=None, content_hash="h", payload={}
        )


def test_404_is_already_gone_and_a_failure_stops_before_upstream_stages(tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    seed(
        ledger,
        row("summary_report", "notification", "slack", "ts-1"),
        row("summary_report", "report", "docs", "doc-report"),
        row("dsp_activation", "line-item:display", "amazon_dsp", "li-1"),
        row("campaign_brief", "brief", "docs", "doc-brief"),
    )
    log: list[str] = []
    errors: dict[str, Exception] = {
        "li-1": RetryableVendorError("dsp", "Service Unavailable", status_code=503, attempts=6),
    }
    gone = {"ts-1", "doc-report"}  # the clients' delete_* answer False: already gone
    plan = plan_teardown(ORG, CAMPAIGN, ledger.campaign_rows(ORG, CAMPAIGN))
    report = asyncio.run(execute_plan(plan, ledger, fake_services(log, errors, gone), tmp_path / "out"))
    assert [(r.item_key, r.outcome) for r in report.removals] == [
        ("notification", "gone"),
        ("report", "gone"),
        ("line-item:display", "failed"),
    ]
    assert report.stopped_at == "dsp_activation" and not report.ok
    assert "delete_document:doc-brief" not in log  # nothing upstream of a failure is touched
    status = {r.item_key: r.status for r in ledger.campaign_rows(ORG, CAMPAIGN)}
    assert status == {"notification": "deleted", "report": "deleted", "line-item:display": "created", "brief": "created"}

    # The vendor is back: a second teardown retries only what is left.
    log.clear()
    errors.clear()
    plan = plan_teardown(ORG, CAMPAIGN, ledger.campaign_rows(ORG, CAMPAIGN))
    report = asyncio.run(execute_plan(plan, ledger, fake_services(log, errors), tmp_path / "out"))
    assert report.ok and log == ["delete_line_item:li-1", "delete_document:doc-brief"]


def test_a_fallback_row_is_deleted_through_the_local_client_with_its_file(tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    scope = Scope(ORG, CAMPAIGN, "creatives")
    ledger.record_success(
        scope, "creative:300x250", "canva", action="fallback", vendor_id="DA1", url=None, content_hash="h",
        payload={"size": "300x250", "asset_id": "MA1"}, fallback_reason="canva down",
    )
    seed(ledger, row("campaign_brief", "brief", "docs", "doc-brief"))
    folder = tmp_path / "out"
    png = folder / "creatives" / "300x250.png"
    png.parent.mkdir(parents=True)
    png.write_bytes(b"png")
    log: list[str] = []
    plan = plan_teardown(ORG, CAMPAIGN, ledger.campaign_rows(ORG, CAMPAIGN))
    report = asyncio.run(execute_plan(plan, ledger, fake_services(log, {}), folder))
    assert report.ok
    assert log == ["local:delete_asset:MA1", "delete_document:doc-brief"]
    assert not png.exists()
    assert [(r.item_key, r.outcome) for r in report.removals] == [("creative:300x250", "deleted"), ("brief", "deleted")]


def test_local_clients_tell_deleted_from_already_gone(tmp_path: Path) -> None:
    async def go() -> None:
        docs = LocalDocs(tmp_path)
        doc = await docs.create_document("Brief", name="brief")
        assert await docs.delete_document(doc.document_id) is True
        assert await docs.delete_document(doc.document_id) is False
        sheets = LocalSheets(tmp_path)
        sheet = await sheets.create_spreadsheet("Plan", name="media_plan")
        assert await sheets.delete_spreadsheet(sheet.spreadsheet_id) is True
        assert await sheets.delete_spreadsheet(sheet.spreadsheet_id) is False
        asana = LocalAsana(tmp_path)
        project = await asana.create_project("P", "notes", marker="[m1]")
        task = await asana.create_task(project.gid, "T", "notes", dt.date(2027, 1, 4), marker="[m2]")
        assert [await asana.delete_task(task.gid), await asana.delete_task(task.gid)] == [True, False]
        assert [await asana.delete_project(project.gid), await asana.delete_project(project.gid)] == [True, False]
        canva = LocalCanva(tmp_path)
        asset = await canva.upload_asset("a.png", b"png", marker="[m3]")
        assert [await canva.delete_asset(asset.asset_id), await canva.delete_asset(asset.asset_id)] == [True, False]
        dsp = LocalDSP("amazon_dsp", tmp_path)
        day = dt.date(2027, 1, 4)
        order = await dsp.create_order("O", 100, "USD", day, day, marker="[m4o]")
        line = await dsp.create_line_item(order.order_id, "L", 100, "USD", day, day, marker="[m4]")
        assert [await dsp.delete_line_item(line.line_item_id), await dsp.delete_line_item(line.line_item_id)] == [True, False]
        assert [await dsp.delete_order(order.order_id), await dsp.delete_order(order.order_id)] == [True, False]
        slack = LocalSlack(tmp_path, "#c")
        message = await slack.post_message("hi", marker="[m5]")
        assert [await slack.delete_message(message.ts), await slack.delete_message(message.ts)] == [True, False]

    asyncio.run(go())
