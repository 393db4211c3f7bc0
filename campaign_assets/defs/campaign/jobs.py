"""The job that materializes one campaign's whole graph (the sensor and ``campaign-assets launch`` run it)."""

import dagster as dg

from campaign_assets.settings import CAMPAIGN_JOB

campaign_job = dg.define_asset_job(
    CAMPAIGN_JOB,
    selection=dg.AssetSelection.groups("campaign_inputs", "planning", "creative", "content", "activation", "reporting"),
    description="Materialize every artifact of one campaign, from spec to summary report.",
)
