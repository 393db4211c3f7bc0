"""The code location: ``dagster dev`` and ``dg dev`` load ``defs`` from here."""

from __future__ import annotations

import os

import dagster as dg

from campaign_assets.assets import campaign as campaign_assets_module
from campaign_assets.assets.common import campaigns_partitions
from campaign_assets.resources import build_resources

ALL_CAMPAIGN_ASSETS = dg.AssetSelection.assets(*dg.load_assets_from_modules([campaign_assets_module]))

campaign_job = dg.define_asset_job(
    "campaign_job",
    selection=dg.AssetSelection.groups("campaign_inputs", "planning", "creative", "content", "activation", "reporting"),
    partitions_def=campaigns_partitions,
    description="Materialize every artifact of one campaign, from spec to summary report.",
)

# I/O-bound steps: far more steps than cores can wait on vendors at once.
# forkserver with the code location preloaded keeps the per-step start cheap.
executor = dg.multiprocess_executor.configured(
    {
        "max_concurrent": 16,
        "start_method": {"forkserver": {"preload_modules": ["campaign_assets.definitions"]}},
    }
)


def build_defs(env: dict[str, str] | None = None) -> dg.Definitions:
    """The definitions for an environment (``os.environ`` by default):
    services whose token variable is set speak HTTP, the others run locally."""
    return dg.Definitions(
        assets=dg.load_assets_from_modules([campaign_assets_module]),
        asset_checks=dg.load_asset_checks_from_modules([campaign_assets_module]),
        jobs=[campaign_job],
        resources=build_resources(os.environ if env is None else env),
        executor=executor,
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_defs()


def campaign_job_def() -> dg.JobDefinition:
    """Reconstructable entry point for ``execute_job`` (the CLI's launch)."""
    return build_defs().resolve_job_def("campaign_job")
