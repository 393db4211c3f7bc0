"""``teardown_job``: delete what the ledger says one campaign created, in
reverse dependency order, idempotently. The op is thin: what to delete and
how lives in ``campaign_assets.core.teardown`` (the CLI's ``teardown`` uses it too).
"""

from typing import Any

import dagster as dg
from pydantic import Field

from campaign_assets.defs.campaign.common import campaigns_partitions
from campaign_assets.resources import LedgerResource, WorkspaceResource
from campaign_assets.services.asana import AsanaResource
from campaign_assets.services.buffer import SocialResource
from campaign_assets.services.canva import CanvaResource
from campaign_assets.services.docs import DocsResource
from campaign_assets.services.github_pages import PagesResource
from campaign_assets.services.sendgrid import EmailResource
from campaign_assets.services.amazon_dsp import AmazonDSPResource
from campaign_assets.services.dv360 import DV360Resource
from campaign_assets.services.trade_desk import TradeDeskResource
from campaign_assets.services.sheets import SheetsResource
from campaign_assets.services.slack import SlackResource
from campaign_assets.settings import KIND_TAG, SERVICE_TAG, TEARDOWN_JOB
from campaign_assets.core.teardown import TeardownReport, TeardownServices, summarize, teardown_campaign


class TeardownConfig(dg.Config):
    organization: str | None = Field(
        default=None, description="The campaign's tenant; by default its spec's, else the only one in the ledger."
    )


def teardown_metadata(report: TeardownReport) -> dict[str, Any]:
    return {
        **{k: dg.MetadataValue.int(v) for k, v in report.counts.items()},
        "by_asset": dg.MetadataValue.json(report.by_asset()),
        "summary": dg.MetadataValue.md("```\n" + "\n".join(summarize(report)) + "\n```"),
    }


@dg.op(
    name="teardown_campaign",
    tags={SERVICE_TAG: "teardown"},
    description="Delete what the ledger says this campaign created, in reverse dependency order; idempotent.",
)
def teardown_campaign_op(
    context: dg.OpExecutionContext,
    config: TeardownConfig,
    workspace: WorkspaceResource,
    ledger: LedgerResource,
    docs: DocsResource,
    sheets: SheetsResource,
    asana: AsanaResource,
    canva: CanvaResource,
    amazon_dsp: AmazonDSPResource,
    trade_desk: TradeDeskResource,
    dv360: DV360Resource,
    slack: SlackResource,
    email: EmailResource,
    social: SocialResource,
    pages: PagesResource,
) -> dg.Output[dict[str, Any]]:
    campaign = context.partition_key
    services = TeardownServices(
        docs=docs, sheets=sheets, asana=asana, canva=canva,
        amazon_dsp=amazon_dsp, trade_desk=trade_desk, dv360=dv360, slack=slack,
        email=email, social=social, pages=pages,
    )
    report = teardown_campaign(
        campaign, workspace=workspace, ledger=ledger.open(), services=services, organization=config.organization
    )
    for line in summarize(report):
        context.log.info(line)
    for asset, counts in report.by_asset().items():
        context.log_event(
            dg.AssetObservation(
                asset_key=asset, partition=campaign, metadata={"teardown": dg.MetadataValue.json(counts)}
            )
        )
    if not report.ok:
        raise dg.Failure(
            f"teardown of {campaign} left {len(report.failures)} item(s)", metadata=teardown_metadata(report)
        )
    return dg.Output({"counts": report.counts, "by_asset": report.by_asset()}, metadata=teardown_metadata(report))


@dg.job(
    name=TEARDOWN_JOB,
    partitions_def=campaigns_partitions,
    tags={KIND_TAG: "teardown"},
    description="Delete everything one campaign created outside Dagster (ledger-driven, reverse order, idempotent).",
)
def teardown_job() -> None:
    teardown_campaign_op()
