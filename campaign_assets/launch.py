"""Run campaign partitions with the configured executor and summarize them.

A launch ends in one of three ways, told apart in the summary and the exit
status of ``campaign-assets launch``:

- ``SUCCESS`` (exit 0): every run completed and no item failed; items made
  locally while their vendor refused (``fallback``) are flagged successes;
- ``PARTIAL`` (exit 2): every run completed, some items failed (the next
  launch retries only those);
- ``FAILURE`` (exit 1): a run failed (a step raised, a blocking check failed).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from campaign_assets.core.items import ACTIONS
from campaign_assets.runs import LAUNCHER_TAG, campaign_turn, launcher_token
from campaign_assets.settings import PARTITION_TAG
from campaign_assets.spec import CampaignSpec

# The console shows warnings and errors; the event log keeps every event.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass
class CampaignOutcome:
    campaign: str
    run_id: str
    success: bool
    seconds: float
    assets: dict[str, dict[str, int]] = field(default_factory=dict)
    checks: list[tuple[str, str, bool, str]] = field(default_factory=list)  # asset, check, passed, severity
    failed_steps: list[str] = field(default_factory=list)

    @property
    def failed_items(self) -> int:
        return sum(counts.get("failed", 0) for counts in self.assets.values())

    @property
    def status(self) -> str:
        if not self.success:
            return "FAILURE"
        return "PARTIAL" if self.failed_items else "SUCCESS"


EXIT_CODES = {"SUCCESS": 0, "PARTIAL": 2, "FAILURE": 1}


def exit_code(outcomes: Sequence[CampaignOutcome]) -> int:
    """1 when a run failed, else 2 when items failed, else 0."""
    statuses = {o.status for o in outcomes}
    return next((EXIT_CODES[s] for s in ("FAILURE", "PARTIAL") if s in statuses), 0)


def run_campaign(
    instance: dg.DagsterInstance,
    job: dg.ReconstructableJob,
    campaign: str,
    home: Path | None = None,
    selection: Sequence[dg.AssetKey] | None = None,
) -> CampaignOutcome:
    """One run of ``campaign``'s partition: the whole job, or ``selection`` of its assets."""
    if home is not None:
        with campaign_turn(instance, home, campaign):
            return run_campaign(instance, job, campaign, selection=selection)
    started = time.monotonic()
    tags = {PARTITION_TAG: campaign, LAUNCHER_TAG: launcher_token()}
    with dg.execute_job(
        job, instance=instance, run_config=QUIET, tags=tags, raise_on_error=False,
        asset_selection=list(selection) if selection is not None else None,
    ) as result:
        return outcome_from_events(campaign, result.run_id, result.success, time.monotonic() - started, result.all_events)


def outcome_from_events(
    campaign: str, run_id: str, success: bool, seconds: float, events: Iterable[dg.DagsterEvent]
) -> CampaignOutcome:
    """A run's outcome from its events, however it ran (in this process, or
    through the run queue, read back from the instance's event log): items per
    asset from the materializations' ``items_*`` metadata, the checks'
    evaluations, the failed steps."""
    outcome = CampaignOutcome(campaign, run_id, success, seconds)
    for event in events:
        if event.is_step_materialization:
            mat = event.materialization
            meta = mat.metadata
            outcome.assets[mat.asset_key.to_user_string()] = {
                k: int(meta[f"items_{k}"].value) for k in ACTIONS if f"items_{k}" in meta
            }
        elif event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluation = event.asset_check_evaluation_data
            outcome.checks.append(
                (
                    evaluation.asset_key.to_user_string(),
                    evaluation.check_name,
                    evaluation.passed,
                    evaluation.severity.value,
                )
            )
        elif event.is_step_failure and event.step_key:
            outcome.failed_steps.append(event.step_key)
    return outcome


def launch_campaigns(
    instance: dg.DagsterInstance,
    job: dg.ReconstructableJob,
    campaigns: Sequence[str],
    parallel: int = 1,
    home: Path | None = None,
    show_progress: bool = False,
    selections: Mapping[str, Sequence[dg.AssetKey] | None] | None = None,
) -> list[CampaignOutcome]:
    """One run per campaign; ``parallel`` runs at once (each run's steps run
    side by side as threads: ``campaign_assets.executor``). With ``home`` each run
    first takes its campaign's turn (``runs.campaign_turn``). With
    ``show_progress`` a side thread follows the runs' event logs and shows
    their progress on stdout (``campaign_assets.progress``). ``selections``:
    per campaign, the assets to run (None or absent: the whole job)."""
    if show_progress:
        from campaign_assets.progress import following

        with following(instance, campaigns):
            return launch_campaigns(instance, job, campaigns, parallel, home, selections=selections)
    chosen = dict(selections or {})
    if parallel <= 1:
        return [run_campaign(instance, job, c, home, chosen.get(c)) for c in campaigns]
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        return list(pool.map(lambda c: run_campaign(instance, job, c, home, chosen.get(c)), campaigns))


def print_summary(
    outcomes: Sequence[CampaignOutcome], specs: Sequence[CampaignSpec], artifacts: Callable[[str, str], str]
) -> int:
    """Print each campaign's outcome; returns the exit status (``exit_code``).
    ``artifacts(organization, campaign)``: where its files are (a folder or a bucket URL)."""
    by_id = {s.id: s for s in specs}
    for o in outcomes:
        detail = f", {o.failed_items} item(s) failed" if o.status == "PARTIAL" else ""
        print(f"\n{o.campaign}: {o.status} in {o.seconds:.1f}s (run {o.run_id[:8]}{detail})")
        for asset, counts in o.assets.items():
            detail = "  ".join(f"{k} {counts[k]}" for k in ACTIONS if k in counts) or "materialized"
            print(f"  {asset:<18} {detail}")
        for step in o.failed_steps:
            print(f"  {step:<18} FAILED")
        warned = [f"{a}:{c}" for a, c, passed, _ in o.checks if not passed]
        print(f"  checks: {len(o.checks) - len(warned)} passed, {len(warned)} failed{': ' + ', '.join(warned) if warned else ''}")
        spec = by_id.get(o.campaign)
        if spec:
            print(f"  artifacts: {artifacts(spec.organization, spec.id)}")
    return exit_code(outcomes)


def print_approvals(specs: Sequence[CampaignSpec]) -> None:
    """Where each reviewed campaign's approval stands after the launch: waiting
    for a person is a state, not an error (the exit status stays 0)."""
    if not specs:
        return
    import os

    from campaign_assets.resources import build_resources

    with dg.build_resources({"ledger": build_resources(os.environ)["ledger"]}) as resources:
        approvals, ledger = resources.ledger.approvals(), resources.ledger.open()
        try:
            from campaign_assets.status import approval_status

            for spec in specs:
                status = approval_status(approvals, ledger, spec)
                print(f"{spec.id}: {status['phase']} — {status['detail']}")
                if status["phase"] == "awaiting approval":
                    print(f"  approve with: campaign-assets approve {spec.id} --by NAME")
        finally:
            approvals.dispose()
            ledger.dispose()
