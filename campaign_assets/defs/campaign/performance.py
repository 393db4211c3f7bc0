"""campaign_performance (issue #16): a campaign's delivery, one past day at a time.

Partitioned by campaign x day: a ``MultiPartitionsDefinition`` of the ``campaigns`` dynamic
partitions and a daily dimension, so the UI shows a campaign's days as a grid and a date range of
one campaign can be backfilled. Its inputs are campaign-partitioned (the plan's spec fields and the
media plan), mapped with ``MultiToSingleDimensionPartitionMapping`` on the ``campaign`` dimension;
the assets whose vendor objects it reports on (line items, sends, posts) are dependencies with the
same mapping, read from the ledger rather than loaded (a campaign without distribution has no
sends, and that is fine).

Not part of ``campaign_job`` (other partitions): ``performance_job`` runs it; the daily schedule
(``defs/automation/performance_schedule.py``) and ``campaign-assets performance ID --date D``
launch it.
"""


import asyncio
import datetime as dt
import warnings
from typing import Any

import dagster as dg
import pandas as pd

from campaign_assets.defs.campaign.common import campaigns_partitions, service_metadata
from campaign_assets.logic.performance import money
from campaign_assets.logic.render import thumbnail_uri
from campaign_assets.resources import LedgerResource, WorkspaceResource
from campaign_assets.services.buffer import SocialResource
from campaign_assets.services.dsp_reporting import (
    AmazonReportingResource,
    DV360ReportingResource,
    TradeDeskReportingResource,
)
from campaign_assets.services.sendgrid import EmailResource
from campaign_assets.settings import OWNER, PERFORMANCE_GROUP, PERFORMANCE_JOB
from campaign_assets.spec import CampaignSpec
from campaign_assets.workflows import performance as wf

CAMPAIGN_DIM, DAY_DIM = "campaign", "day"
PERFORMANCE_START = "2025-01-01"  # the first day the grid offers; a flight before it is not reported

performance_partitions = dg.MultiPartitionsDefinition(
    {CAMPAIGN_DIM: campaigns_partitions, DAY_DIM: dg.DailyPartitionsDefinition(start_date=PERFORMANCE_START)}
)
# The mapping the issue asks for is beta in Dagster 1.13: its warning is Dagster's, about its own
# API, not about how we use it (check-defs would otherwise flag this file).
with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.BetaWarning)
    BY_CAMPAIGN = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name=CAMPAIGN_DIM)

PACING_CHECK = "pacing_within_15_percent"
SPEND_CHECK = "spend_within_plan_total"


def partition_key(campaign: str, day: dt.date) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({CAMPAIGN_DIM: campaign, DAY_DIM: day.isoformat()})


def _day(context: dg.AssetExecutionContext) -> dt.date:
    keys = context.partition_key.keys_by_dimension  # type: ignore[attr-defined]
    return dt.date.fromisoformat(keys[DAY_DIM])


def pacing_check(analysis: wf.Analysis, currency: str) -> dg.AssetCheckResult:
    table = analysis.pacing
    measured = table[table["measured"]]
    return dg.AssetCheckResult(
        check_name=PACING_CHECK,
        passed=not analysis.problems,
        severity=dg.AssetCheckSeverity.WARN,
        description="; ".join(analysis.problems) or f"every measured channel within ±15% of plan through {analysis.day}",
        metadata={
            "pacing": dg.MetadataValue.md(wf.pacing_markdown(table, currency)),
            "channels_measured": len(measured),
            "channels_outside": len(analysis.problems),
            **{f"pacing/{r.channel}": float(r.pacing) for r in measured.itertuples() if not pd.isna(r.pacing)},
        },
    )


def spend_check(analysis: wf.Analysis, plan: pd.DataFrame, currency: str) -> dg.AssetCheckResult:
    over = analysis.overspend
    spent = int(analysis.pacing["spent_to_date_cents"].sum())
    total = int(analysis.pacing["plan_total_cents"].sum())
    return dg.AssetCheckResult(
        check_name=SPEND_CHECK,
        passed=not over,
        severity=dg.AssetCheckSeverity.ERROR,
        description="; ".join(o.describe(currency) for o in over)
        or f"spent {money(spent, currency)} of the plan's {money(total, currency)}",
        metadata={"spent_cents": spent, "plan_total_cents": total, "over": dg.MetadataValue.json([o.channel for o in over])},
    )


def _deps() -> list[dg.AssetDep]:
    return [dg.AssetDep(name, partition_mapping=BY_CAMPAIGN) for name in (wf.LINE_ITEMS, wf.EMAILS, wf.POSTS)]


@dg.asset(
    partitions_def=performance_partitions,
    group_name=PERFORMANCE_GROUP,
    owners=[OWNER],
    code_version="1",
    kinds={"pandas", "matplotlib"},
    ins={
        "plan_inputs": dg.AssetIn(partition_mapping=BY_CAMPAIGN),
        "media_plan": dg.AssetIn(partition_mapping=BY_CAMPAIGN),
    },
    deps=_deps(),
    check_specs=[
        dg.AssetCheckSpec(PACING_CHECK, asset="campaign_performance",
                          description="Spend per channel within ±15% of the media plan to date (WARN)."),
        dg.AssetCheckSpec(SPEND_CHECK, asset="campaign_performance",
                          description="Spend never above the plan's total, per channel or in all (ERROR)."),
    ],
    retry_policy=dg.RetryPolicy(max_retries=2, delay=5.0, backoff=dg.Backoff.EXPONENTIAL),
    description="One day's delivery of one campaign from every source it uses (each DSP's reporting API, "
    "SendGrid stats, Buffer statistics), stored in performance_daily; pacing against the plan, charts.",
)
def campaign_performance(
    context: dg.AssetExecutionContext,
    plan_inputs: CampaignSpec,
    media_plan: pd.DataFrame,
    amazon_reporting: AmazonReportingResource,
    ttd_reporting: TradeDeskReportingResource,
    dv360_reporting: DV360ReportingResource,
    email: EmailResource,
    social: SocialResource,
    ledger: LedgerResource,
    workspace: WorkspaceResource,
):
    spec, day = plan_inputs, _day(context)
    out = workspace.campaign_dir(spec.organization, spec.id)
    store = ledger.open()
    reporting = {"amazon_reporting": amazon_reporting, "ttd_reporting": ttd_reporting, "dv360_reporting": dv360_reporting}
    fetched = asyncio.run(
        wf.fetch_day(spec, media_plan, day, store, out, reporting=reporting, email=email, social=social)
    )
    for source, reason in fetched.failures:
        context.log.warning(f"{spec.id} {day}: {source} not reported: {reason}")
    analysis = wf.analyse(spec, media_plan, store, day, out)
    currency = spec.budget.currency
    charts = "\n\n".join(
        f"**{name}**\n\n![{name}]({thumbnail_uri(path.read_bytes(), max_side=480)})" for name, path in analysis.charts.items()
    )
    meta: dict[str, Any] = {
        "day": day.isoformat(),
        "dagster/row_count": len(fetched.rows),
        "days_reported": analysis.days_reported,
        "days_to_date": analysis.days_to_date,
        "pacing": dg.MetadataValue.md(wf.pacing_markdown(analysis.pacing, currency)),
        "charts": dg.MetadataValue.md(charts or "(no charts)"),
        **{f"chart/{name}": dg.MetadataValue.path(workspace.shown(path)) for name, path in analysis.charts.items()},
        **{f"objects/{source}": n for source, n in fetched.sources.items()},
        "spend_cents": int(fetched.rows["spend_cents"].sum()) if not fetched.rows.empty else 0,
        "clicks": int(fetched.rows["clicks"].sum()) if not fetched.rows.empty else 0,
        "sources_failed": len(fetched.failures),
    }
    if fetched.failures:
        meta["failures"] = dg.MetadataValue.md("\n".join(f"- `{s}`: {r}" for s, r in fetched.failures))
    meta |= service_metadata(fetched.clients)
    return dg.MaterializeResult(
        value=fetched.rows,
        metadata=meta,
        check_results=[pacing_check(analysis, currency), spend_check(analysis, media_plan, currency)],
    )


performance_job = dg.define_asset_job(
    PERFORMANCE_JOB,
    selection=dg.AssetSelection.assets(campaign_performance),
    description="Fetch one campaign's delivery for one day (a campaign x day partition).",
)
