"""The whole graph through materialize() with the local backends."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
from PIL import Image

from campaign_assets.definitions import build_defs
from campaign_assets.defs.campaign.common import campaigns_partitions
from campaign_assets.ledger import Ledger
from campaign_assets.services.asana import AsanaResource, LocalAsana
from campaign_assets.services.canva import CanvaResource, LocalCanva
from campaign_assets.spec import load_spec

from .conftest import SEED
from campaign_assets_tests.support.dagster import campaign_graph

ASSETS = [
    "campaign_spec", "campaign_brief", "media_plan", "project_tasks", "creatives",
    "content_pieces", "content_library", "landing_page", "dsp_activation", "summary_report", "market_research",
    # Not reviewed for the seed (no review sections): materialized as such, nothing sent.
    "campaign_review", "approval_gate", "email_send", "social_posts", "published_site", "dsp_go_live",
]
SECTIONS = ["brief_inputs", "plan_inputs", "task_inputs", "creative_inputs", "research_inputs", "review_inputs"]


def materialize(env: dict[str, str], partition: str = SEED, **resource_overrides: Any) -> dg.ExecuteInProcessResult:
    defs = build_defs(env)
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("campaigns", [partition])
    resources = dict(defs.resources) | resource_overrides
    campaign_assets = [a for a in defs.assets if getattr(a, "partitions_def", None) == campaigns_partitions]  # not campaign x day
    return dg.materialize(
        campaign_assets, partition_key=partition, resources=resources, instance=instance, raise_on_error=True
    )


def counts(result: dg.ExecuteInProcessResult) -> dict[str, dict[str, int]]:
    out = {}
    for event in result.get_asset_materialization_events():
        meta = event.materialization.metadata
        out[event.materialization.asset_key.to_user_string()] = {
            k.removeprefix("items_"): v.value for k, v in meta.items() if k.startswith("items_")
        }
    return out


def checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def ledger_of(env: dict[str, str]) -> Ledger:
    return Ledger(f"sqlite:///{Path(env['WORKSPACE_DIR']) / 'ledger.sqlite'}")


def test_every_asset_materializes_real_artifacts(project: dict[str, str]) -> None:
    result = materialize(project)
    assert result.success
    assert sorted(counts(result)) == sorted(ASSETS + SECTIONS)
    assert all(c.passed for c in checks(result).values()), checks(result)

    spec = load_spec(Path(project["CAMPAIGNS_DIR"]) / f"{SEED}.yaml")
    out = Path(project["WORKSPACE_DIR"]) / spec.organization / spec.id
    brief = (out / "brief.md").read_text()
    assert brief.startswith("# Q4 Product Launch") and "## Success Metrics" in brief and "IT decision makers" in brief

    plan = result.output_for_node("media_plan")
    assert isinstance(plan, pd.DataFrame) and round(plan["budget"].sum(), 2) == spec.budget.total
    assert pd.read_csv(out / "media_plan.csv")["budget"].sum().round(2) == spec.budget.total

    tasks = pd.read_csv(out / "tasks.csv")
    assert len(tasks) == 13 and set(tasks["status"]) == {"ok"}

    for size in spec.creative_sizes:
        width, height = (int(x) for x in size.split("x"))
        image = Image.open(out / "creatives" / f"{size}.png")
        assert image.size == (width, height)
        r, g, b = image.convert("RGB").resize((1, 1)).getpixel((0, 0))
        assert b > r  # the brand blue dominates

    assert len(list((out / "content").glob("*.md"))) == 9
    assert len(ledger_of(project).library(spec.organization, spec.id)) == 9
    html = (out / "landing_page.html").read_text()
    assert "<img src=\"creatives/300x250.png\"" in html and spec.brand.name in html
    lines = {dsp: [json.loads(p.read_text()) for p in (out / dsp / "line-items").glob("*.json")] for dsp in ("amazon_dsp", "trade_desk")}
    assert {dsp: [line["status"] for line in found] for dsp, found in lines.items()} == {"amazon_dsp": ["paused"], "trade_desk": ["paused"]}
    report = (out / "summary_report.md").read_text()
    assert "## Failures" in report and "None." in report

    # What people click in the UI: vendor URLs, the plan as a table, creative thumbnails, per-service stats.
    meta = {e.asset_key.to_user_string(): e.materialization.metadata for e in result.get_asset_materialization_events()}
    assert isinstance(meta["campaign_brief"]["document_url"], dg.UrlMetadataValue)
    assert meta["media_plan"]["preview"].value.startswith("| channel | DSP | weeks |")
    assert meta["creatives"]["preview"].value.count("data:image/png;base64,") == 4
    assert isinstance(meta["creatives"]["design 300x250"], dg.UrlMetadataValue)
    # One top-level numeric key per service number, so the UI charts each over time.
    tasks = meta["project_tasks"]
    assert isinstance(tasks["asana/calls"], dg.IntMetadataValue) and tasks["asana/calls"].value == 14
    assert isinstance(tasks["asana/wall_seconds"], dg.FloatMetadataValue)
    assert tasks["asana/backend"].value == "local" and "asana/stats" not in tasks
    for name in ("calls", "retries", "failures", "seconds", "max_in_flight"):
        assert isinstance(tasks[f"asana/{name}"], (dg.IntMetadataValue, dg.FloatMetadataValue)), name


def test_second_materialization_reuses_everything_and_adds_no_rows(project: dict[str, str]) -> None:
    materialize(project)
    before = ledger_of(project).counts()
    again = counts(materialize(project))
    assert ledger_of(project).counts() == before
    for asset, c in again.items():
        if c:
            assert c["created"] == c["updated"] == c["failed"] == 0 and c["reused"] > 0, (asset, c)


def test_landing_page_escapes_spec_text(project: dict[str, str]) -> None:
    path = Path(project["CAMPAIGNS_DIR"]) / f"{SEED}.yaml"
    path.write_text(path.read_text().replace("name: Q4 Product Launch", "name: Q4 <script>alert(1)</script> Launch"))
    materialize(project)
    html = next(Path(project["WORKSPACE_DIR"]).rglob("landing_page.html")).read_text()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html


class FlakyAsana(AsanaResource):
    """The local backend, refusing tasks whose name is listed."""

    fail_names: list[str] = []

    def local_client(self, out_dir: Path) -> LocalAsana:
        fail = set(self.fail_names)

        class Refusing(LocalAsana):
            async def create_task(self, project_gid, name, notes, due_on, *, marker):
                if name in fail:
                    raise RuntimeError(f"Asana refused {name!r}")
                return await super().create_task(project_gid, name, notes, due_on, marker=marker)

        return Refusing(out_dir)


class FlakyCanva(CanvaResource):
    """The local backend, refusing uploads of the listed sizes."""

    fail_sizes: list[str] = []

    def local_client(self, out_dir: Path) -> LocalCanva:
        fail = set(self.fail_sizes)

        class Refusing(LocalCanva):
            async def upload_asset(self, name, png, *, marker):
                if any(name.endswith(f"-{s}.png") for s in fail):
                    raise RuntimeError(f"Canva refused {name}")
                return await super().upload_asset(name, png, marker=marker)

        return Refusing(out_dir)


def test_partial_failure_lands_the_rest_warns_and_retries_only_the_failed(project: dict[str, str]) -> None:
    flaky = dict(
        asana=FlakyAsana(fail_names=["Launch", "Wrap-up report"]),
        canva=FlakyCanva(fail_sizes=["728x90"]),
    )
    first = materialize(project, **flaky)
    assert first.success
    c = counts(first)
    assert c["project_tasks"] == {"created": 12, "reused": 0, "updated": 0, "fallback": 0, "failed": 2}
    assert c["creatives"] == {"created": 3, "reused": 0, "updated": 0, "fallback": 0, "failed": 1}
    warned = checks(first)
    for name in ("all_tasks_created", "all_creatives_produced"):
        assert not warned[name].passed and warned[name].severity == dg.AssetCheckSeverity.WARN
    assert warned["media_plan_sums_to_budget"].passed
    report = first.output_for_node("summary_report")["markdown"]
    for failed in ("task:launch", "task:wrap-up-report", "creative:728x90"):
        assert failed in report
    assert "Asana refused 'Launch'" in report

    second = materialize(project)  # the vendors recovered
    c = counts(second)
    assert c["project_tasks"] == {"created": 2, "reused": 12, "updated": 0, "fallback": 0, "failed": 0}  # 11 tasks + project
    assert c["creatives"] == {"created": 1, "reused": 3, "updated": 0, "fallback": 0, "failed": 0}
    assert all(e.passed for e in checks(second).values())
    assert "None." in second.output_for_node("summary_report")["markdown"]


def test_a_changed_spec_updates_only_what_changed(project: dict[str, str]) -> None:
    materialize(project)
    path = Path(project["CAMPAIGNS_DIR"]) / f"{SEED}.yaml"
    path.write_text(path.read_text().replace("creative_sizes: [300x250, 728x90, 160x600, 320x50]",
                                             "creative_sizes: [300x250, 728x90, 160x600, 320x50, 300x600]"))
    c = counts(materialize(project))
    assert c["creatives"] == {"created": 1, "reused": 4, "updated": 0, "fallback": 0, "failed": 0}
    assert c["project_tasks"]["reused"] == 14 and c["content_pieces"]["reused"] == 9
    out = next(Path(project["WORKSPACE_DIR"]).rglob("creatives"))
    assert Image.open(out / "300x600.png").size == (300, 600)


def test_a_spec_with_no_file_fails_the_spec_step_and_calls_nothing(project: dict[str, str]) -> None:
    defs = build_defs(project)
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("campaigns", ["ghost-campaign"])
    result = dg.materialize(
        campaign_graph(defs), partition_key="ghost-campaign", resources=defs.resources, instance=instance, raise_on_error=False
    )
    assert not result.success
    assert not list(Path(project["WORKSPACE_DIR"]).rglob("*.md"))
