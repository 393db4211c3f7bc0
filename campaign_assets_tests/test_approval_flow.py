"""Review, the approval gate and distribution through materialize() with the local backends.

The issue's path: nothing goes out before approval; after it, each object
exactly once; a relaunch adds nothing; a change to what would go out voids
the approval and sends nothing new.
"""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest
import yaml

from campaign_assets.approvals import Approvals
from campaign_assets.definitions import build_defs
from campaign_assets.core.teardown import CLIENT_SERVICES, TeardownServices, teardown_campaign
from campaign_assets.ledger import Ledger
from campaign_assets.resources import build_resources
from campaign_assets_tests.conftest import SEED
from campaign_assets_tests.test_assets import checks, counts, materialize
from campaign_assets_tests.support.dagster import campaign_graph

CAMPAIGN = "spring-webinar-series"
BEHIND_GATE = ("email_send", "social_posts", "published_site")


def ledger_rows(env: dict[str, str], asset: str) -> list:
    with Ledger(f"sqlite:///{Path(env['WORKSPACE_DIR']) / 'ledger.sqlite'}") as ledger:
        return [r for r in ledger.campaign_rows("acme", CAMPAIGN) if r.scope.asset == asset and r.status != "deleted"]


def approvals(env: dict[str, str]) -> Approvals:
    return Approvals(f"sqlite:///{Path(env['WORKSPACE_DIR']) / 'ledger.sqlite'}")


def metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    events = [e for e in result.get_asset_materialization_events() if e.materialization.asset_key.to_user_string() == asset]
    assert events, f"{asset} was not materialized"
    return {k: v.value for k, v in events[-1].materialization.metadata.items()}


def line_item_records(env: dict[str, str]) -> list[Path]:
    return sorted((Path(env["WORKSPACE_DIR"]) / "acme" / CAMPAIGN).glob("*/line-items/*.json"))


def line_item_statuses(env: dict[str, str]) -> list[str]:
    return [json.loads(p.read_text())["status"] for p in line_item_records(env)]


def order_statuses(env: dict[str, str]) -> list[str]:
    records = sorted((Path(env["WORKSPACE_DIR"]) / "acme" / CAMPAIGN).glob("*/orders/*.json"))
    return [json.loads(p.read_text())["status"] for p in records]


def site_files(env: dict[str, str]) -> list[Path]:
    site = Path(env["WORKSPACE_DIR"]) / "acme" / CAMPAIGN / "site"
    return sorted(p for p in site.rglob("*") if p.is_file()) if site.exists() else []


@pytest.mark.slow
def test_nothing_goes_out_before_approval_then_each_object_once(project: dict[str, str]) -> None:
    first = materialize(project, CAMPAIGN)
    assert first.success
    review = metadata(first, "campaign_review")
    fingerprint = review["fingerprint"]
    assert review["goes_out/emails"] == 1 and review["goes_out/posts"] == 2 and review["goes_out/files"] == 3
    gate = metadata(first, "approval_gate")
    assert gate["status"] == "awaiting approval" and "Dana Whitfield" in gate["detail"]
    assert not checks(first)["approved_for_current_content"].passed
    for asset in BEHIND_GATE:
        meta = metadata(first, asset)
        assert meta["sent"] is False and meta["status"].startswith("not sent: awaiting approval")
        assert ledger_rows(project, asset) == []  # no row written
    assert site_files(project) == []
    assert len(ledger_rows(project, "campaign_review")) == 2  # the voice review and the one Slack message
    assert metadata(first, "dsp_go_live")["live"] is False and ledger_rows(project, "dsp_go_live") == []
    assert line_item_statuses(project) == ["paused"] and order_statuses(project) == ["paused"]  # before approval

    store = approvals(project)
    store.decide("acme", CAMPAIGN, "approved", by="tester", note="looks right")
    second = materialize(project, CAMPAIGN)
    assert metadata(second, "campaign_review")["fingerprint"] == fingerprint  # same content, same round
    assert metadata(second, "approval_gate")["status"] == "approved"
    made = counts(second)
    assert made["email_send"]["created"] == 1 and made["social_posts"]["created"] == 2 and made["published_site"]["created"] == 3
    assert [p.name for p in site_files(project)] == ["1200x628.png", "300x250.png", "index.html"]
    rows = {a: len(ledger_rows(project, a)) for a in BEHIND_GATE}
    assert rows == {"email_send": 1, "social_posts": 2, "published_site": 3}
    assert len(ledger_rows(project, "campaign_review")) == 2  # no second Slack message for the same round
    assert metadata(second, "dsp_go_live")["live"] is True and checks(second)["budgets_at_vendor_match_plan"].passed
    assert line_item_statuses(project) == ["live"] and order_statuses(project) == ["live"]
    assert sorted(r.item_key for r in ledger_rows(project, "dsp_go_live")) == ["live-order:display", "live:display"]

    third = materialize(project, CAMPAIGN)
    again = counts(third)
    assert all(again[a]["created"] == 0 and again[a]["updated"] == 0 for a in (*BEHIND_GATE, "dsp_go_live"))
    assert {a: len(ledger_rows(project, a)) for a in BEHIND_GATE} == rows

    # A new name and audience: new content, so the approval no longer applies.
    path = Path(project["CAMPAIGNS_DIR"]) / f"{CAMPAIGN}.yaml"
    data = yaml.safe_load(path.read_text())
    data["name"], data["audience"] = "Spring Webinar Series, Second Run", "Site reliability engineers at scale-ups"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    fourth = materialize(project, CAMPAIGN)
    assert metadata(fourth, "campaign_review")["fingerprint"] != fingerprint
    assert metadata(fourth, "approval_gate")["status"] == "awaiting approval"
    for asset in BEHIND_GATE:
        assert metadata(fourth, asset)["sent"] is False
    assert {a: len(ledger_rows(project, a)) for a in BEHIND_GATE} == rows  # nothing new went out
    assert len(ledger_rows(project, "campaign_review")) == 4  # a new round: asked again, once
    assert store.state("acme", CAMPAIGN).phase == "awaiting approval"
    assert metadata(fourth, "dsp_go_live")["live"] is False
    assert line_item_statuses(project) == ["live"]  # what went live stays live until a person decides
    store.dispose()

    # Teardown undoes distribution in reverse: files removed, posts deleted, sends cancelled and deleted.
    resources = build_resources(project)
    with dg.build_resources(resources) as built, Ledger(f"sqlite:///{Path(project['WORKSPACE_DIR']) / 'ledger.sqlite'}") as ledger:
        services = TeardownServices.from_mapping({name: getattr(built, name) for name in CLIENT_SERVICES})
        report = teardown_campaign(CAMPAIGN, workspace=built.workspace, ledger=ledger, services=services)
    assert report.ok, report
    removed = report.by_asset()
    assert {a: removed[a]["deleted"] for a in BEHIND_GATE} == rows
    assert site_files(project) == []
    assert all(ledger_rows(project, a) == [] for a in BEHIND_GATE)


def test_a_campaign_without_review_sections_is_not_reviewed_and_sends_nothing(project: dict[str, str]) -> None:
    """Materialized with everything else (so a backfill over all campaigns stays
    green), but not reviewed: no checks, no Slack message, nothing sent."""
    result = materialize(project, SEED)
    assert metadata(result, "campaign_review")["status"].startswith("not reviewed")
    assert metadata(result, "approval_gate")["status"].startswith("not reviewed")
    for asset in BEHIND_GATE:
        assert metadata(result, asset)["status"].startswith("not configured")
    evaluated = {e.asset_key.to_user_string() for e in result.get_asset_check_evaluations()}
    assert not evaluated & {"campaign_review", "approval_gate"}
    with Ledger(f"sqlite:///{Path(project['WORKSPACE_DIR']) / 'ledger.sqlite'}") as ledger:
        assets = {r.scope.asset for r in ledger.campaign_rows("acme", SEED)}
    assert not assets & {"campaign_review", *BEHIND_GATE}


@pytest.mark.slow
def test_a_budget_changed_at_the_dsp_stops_go_live_with_the_numbers(project: dict[str, str]) -> None:
    assert materialize(project, CAMPAIGN).success
    (record,) = line_item_records(project)
    data = json.loads(record.read_text())
    data["budget_cents"] += 100_00  # someone added 100.00 in the DSP's own UI
    record.write_text(json.dumps(data))
    with approvals(project) as store:
        store.decide("acme", CAMPAIGN, "approved", by="tester")
    defs = build_defs(project)
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("campaigns", [CAMPAIGN])
    result = dg.materialize(
        campaign_graph(defs), partition_key=CAMPAIGN, resources=defs.resources, instance=instance, raise_on_error=False
    )
    assert not result.success  # the failed blocking check fails the go-live step: a person must look
    assert [e.step_key for e in result.get_step_failure_events()] == ["dsp_go_live"]
    check = checks(result)["budgets_at_vendor_match_plan"]
    assert not check.passed and "display (dv360)" in check.description and "cents" in check.description
    assert metadata(result, "dsp_go_live")["live"] is False
    assert line_item_statuses(project) == ["paused"] and ledger_rows(project, "dsp_go_live") == []
    assert order_statuses(project) == ["paused"]  # no budget applied, no order set live
    assert metadata(result, "email_send")["sent"] is True  # the rest of the approved content went out


@pytest.mark.slow
def test_a_new_budget_after_go_live_is_held_then_applied_once_approved(project: dict[str, str]) -> None:
    """Issue #14 follow-up: a plan change never changes live spend before a
    person approves it; after the approval, go-live brings the line item to
    the approved plan before the read-back compares."""
    assert materialize(project, CAMPAIGN).success
    store = approvals(project)
    store.decide("acme", CAMPAIGN, "approved", by="tester")
    assert metadata(materialize(project, CAMPAIGN), "dsp_go_live")["live"] is True
    (record,) = line_item_records(project)
    before = json.loads(record.read_text())["budget_cents"]

    path = Path(project["CAMPAIGNS_DIR"]) / f"{CAMPAIGN}.yaml"
    data = yaml.safe_load(path.read_text())
    data["budget"]["total"] = 52000  # was 48000
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    held = materialize(project, CAMPAIGN)
    assert metadata(held, "approval_gate")["status"] == "awaiting approval"  # spend is part of what is approved
    assert counts(held)["dsp_activation"]["failed"] == 1 and "HeldLive" in metadata(held, "dsp_activation")["failures"]
    assert not checks(held)["all_line_items_created"].passed
    assert metadata(held, "dsp_go_live")["live"] is False
    assert json.loads(record.read_text())["budget_cents"] == before and line_item_statuses(project) == ["live"]

    store.decide("acme", CAMPAIGN, "approved", by="tester")
    applied = materialize(project, CAMPAIGN)
    assert metadata(applied, "dsp_go_live")["live"] is True and checks(applied)["budgets_at_vendor_match_plan"].passed
    after = json.loads(record.read_text())["budget_cents"]
    assert after > before and line_item_statuses(project) == ["live"]
    keys = sorted(r.item_key for r in ledger_rows(project, "dsp_go_live"))
    assert keys == ["budget:display", "live-order:display", "live:display"]

    settled = materialize(project, CAMPAIGN)  # activation finds the line item at the plan: no longer held
    assert counts(settled)["dsp_activation"]["failed"] == 0 and checks(settled)["all_line_items_created"].passed
    assert counts(settled)["dsp_go_live"]["created"] == 0 and json.loads(record.read_text())["budget_cents"] == after
    store.dispose()
