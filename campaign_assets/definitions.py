"""The code location: ``dagster dev`` and ``dg dev`` load ``defs`` from here."""

from __future__ import annotations

import os

import dagster as dg

from campaign_assets.assets import campaign as campaign_assets_module
from campaign_assets.assets.common import SERVICE_TAG
from campaign_assets.automation import JOBS, SCHEDULES, SENSORS
from campaign_assets.resources import build_resources

campaign_job = dg.define_asset_job(
    "campaign_job",
    selection=dg.AssetSelection.groups("campaign_inputs", "planning", "creative", "content", "activation", "reporting"),
    description="Materialize every artifact of one campaign, from spec to summary report.",
)

# I/O-bound steps: far more steps than cores can wait on vendors at once.
# forkserver with the code location preloaded keeps the per-step start cheap;
# steps that call the same service never run side by side within a run
# (across runs, pools and the slot board hold the caps).
executor = dg.multiprocess_executor.configured(
    {
        "max_concurrent": 16,
        "start_method": {"forkserver": {"preload_modules": ["campaign_assets.definitions"]}},
        "tag_concurrency_limits": [
            {"key": SERVICE_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1},
        ],
    }
)


def build_defs(env: dict[str, str] | None = None) -> dg.Definitions:
    """The definitions for an environment (``os.environ`` by default):
    services whose token variable is set speak HTTP, the others run locally."""
    return dg.Definitions(
        assets=dg.load_assets_from_modules([campaign_assets_module]),
        asset_checks=dg.load_asset_checks_from_modules([campaign_assets_module]),
        jobs=[campaign_job, *JOBS],
        sensors=SENSORS,
        schedules=SCHEDULES,
        resources=build_resources(os.environ if env is None else env),
        executor=executor,
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_defs()


def campaign_job_def() -> dg.JobDefinition:
    """Reconstructable entry point for ``execute_job`` (the CLI's launch)."""
    return build_defs().resolve_job_def("campaign_job")
