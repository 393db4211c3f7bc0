"""Where a campaign stands: its last run, what the ledger holds, and dead runs swept.

``campaign-assets status [ID ...] [--json]`` prints this; the pure part
(``campaign_status``) reads the instance and the ledger and returns one plain
dict per campaign, the same dict ``--json`` prints.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

import dagster as dg

from campaign_assets.approvals import Approvals
from campaign_assets.ledger import Ledger
from campaign_assets.settings import CAMPAIGN_JOB, PARTITION_TAG
from campaign_assets.spec import CampaignSpec, spec_hash


def _when(ts: float | None) -> str | None:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat(timespec="seconds") if ts else None


def last_run(instance: dg.DagsterInstance, campaign: str) -> dict[str, Any] | None:
    records = instance.get_run_records(
        filters=dg.RunsFilter(tags={PARTITION_TAG: campaign}, job_name=CAMPAIGN_JOB), limit=1
    )
    if not records:
        return None
    record = records[0]
    run = record.dagster_run
    start, end = record.start_time, record.end_time
    elapsed = None
    if start:
        elapsed = round((end or dt.datetime.now(dt.timezone.utc).timestamp()) - start, 1)
    return {
        "run_id": run.run_id,
        "status": run.status.value,
        "started_at": _when(start),
        "ended_at": _when(end),
        "elapsed_s": elapsed,
    }


def ledger_summary(ledger: Ledger, spec: CampaignSpec) -> dict[str, Any]:
    rows = [r for r in ledger.campaign_rows(spec.organization, spec.id) if r.status != "deleted"]
    by_status = Counter(r.status for r in rows)
    return {
        "items": dict(sorted(by_status.items())),
        "failed": [{"asset": r.scope.asset, "item": r.item_key, "error": r.error or ""}
                   for r in rows if r.status == "failed"],
        "fallback": [{"asset": r.scope.asset, "item": r.item_key, "reason": r.error or ""}
                     for r in rows if r.status == "fallback"],
    }


# The assets behind the approval gate, and what each sends.
DISTRIBUTION_ASSETS = {"email_send": "email", "social_posts": "social", "published_site": "web", "dsp_go_live": "DSP spend"}


def approval_status(approvals: Approvals, ledger: Ledger, spec: CampaignSpec) -> dict[str, Any]:
    """Where a reviewed campaign stands: drafting (never reviewed), awaiting
    approval (since when, who was asked), approved (by whom, when), rejected
    (why), distributed (what went out where)."""
    state = approvals.state(spec.organization, spec.id)
    rows = [r for r in ledger.campaign_rows(spec.organization, spec.id)
            if r.scope.asset in DISTRIBUTION_ASSETS and r.status == "created"]
    out = [{"asset": r.scope.asset, "channel": DISTRIBUTION_ASSETS[r.scope.asset], "item": r.item_key,
            "vendor_id": r.vendor_id, "url": r.url} for r in rows]
    if state is None:
        return {"phase": "drafting", "detail": "not reviewed yet: the next launch drafts and asks the reviewers",
                "fingerprint": None, "distributed": out}
    phase = state.phase
    current = [o for o, r in zip(out, rows) if r.payload.get("fingerprint") in (None, state.fingerprint)]
    if state.approved and current:
        phase = "distributed"
    result: dict[str, Any] = {"phase": phase, "detail": state.describe(), "fingerprint": state.fingerprint, "distributed": out}
    if state.round and state.round.spec_hash != spec_hash(spec):
        result["stale"] = "the spec changed since this review: the next launch reviews the new content"
    live = [o for o in out if o["asset"] == "dsp_go_live" and o["item"].startswith("live:")]
    if live and not state.approved:
        result["live_unapproved"] = (f"{len(live)} DSP line item(s) are live from an earlier approval and stay live "
                                     "until a person decides (approve the new content, or pause them)")
    return result


def campaign_status(
    instance: dg.DagsterInstance, ledger: Ledger, spec: CampaignSpec, approvals: Approvals | None = None
) -> dict[str, Any]:
    run = last_run(instance, spec.id)
    items = ledger_summary(ledger, spec)
    if run is None:
        phase = "not launched"
    elif run["status"] in ("QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING"):
        phase = "running"
    elif run["status"] == "SUCCESS":
        phase = "partial" if items["failed"] else "drafted"
    else:
        phase = "failed"
    status = {"campaign": spec.id, "organization": spec.organization, "phase": phase, "last_run": run, **items,
              **run_progress_status(instance, spec, run)}
    if spec.reviewed and approvals is not None:
        status["approval"] = approval_status(approvals, ledger, spec)
        if phase not in ("running", "failed"):
            status["phase"] = status["approval"]["phase"]
    return status


def run_progress_status(instance: dg.DagsterInstance, spec: CampaignSpec, run: dict[str, Any] | None) -> dict[str, Any]:
    """The last run's progress from its event log: ``progress_pct`` (items
    done out of the items the spec expects, 0..100), steps running now
    (``running``) and steps done out of total (``steps``)."""
    from campaign_assets.progress import run_progress

    if run is None:
        return {"progress_pct": 0.0, "items_done": 0, "items_expected": 0, "running": [], "steps": None}
    return run_progress(instance, run["run_id"], spec, run["status"])


def describe(status: dict[str, Any]) -> list[str]:
    run = status["last_run"]
    lines = [f"{status['organization']}/{status['campaign']}: {status['phase']}"]
    if run:
        lines.append(
            f"  last run {run['run_id'][:8]} {run['status']} started {run['started_at'] or '-'}"
            + (f", {run['elapsed_s']}s" if run["elapsed_s"] is not None else "")
        )
    if run and "progress_pct" in status:
        lines.append(f"  progress {status['progress_pct']:g}% of items ({status['items_done']}/{status['items_expected']})"
                     + (f", steps {status['steps']['done']}/{status['steps']['total']}" if status.get("steps") else ""))
        for step in status.get("running") or []:
            of = f" {step['items_done']}/{step['items_total']} items" if "items_total" in step else ""
            lines.append(f"  running  {step['step']}{of}")
    approval = status.get("approval")
    if approval:
        lines.append(f"  approval: {approval['detail']}" + (f" (content {approval['fingerprint'][:12]})" if approval["fingerprint"] else ""))
        for key in ("stale", "live_unapproved"):
            if approval.get(key):
                lines.append(f"  note: {approval[key]}")
        for o in approval["distributed"]:
            lines.append(f"  sent     {o['channel']:<9} {o['item']}: {o['url'] or o['vendor_id']}")
    counts = "  ".join(f"{k} {v}" for k, v in status["items"].items()) or "none"
    lines.append(f"  ledger items: {counts}")
    lines += [f"  failed   {f['asset']}/{f['item']}: {f['error']}" for f in status["failed"]]
    lines += [f"  fallback {f['asset']}/{f['item']}: {f['reason']}" for f in status["fallback"]]
    return lines
