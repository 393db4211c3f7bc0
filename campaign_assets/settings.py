"""Names and defaults written once: partitions, jobs, tags, folders, caps, pools.

Plain values only (and ``scope``, the one way to name an asset's ledger
scope), so anything may import this module without pulling in Dagster or
the ledger's database layer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from campaign_assets.ledger import Scope
    from campaign_assets.spec import CampaignSpec

PARTITIONS = "campaigns"  # the dynamic partitions definition of every campaign asset
CAMPAIGN_JOB = "campaign_job"
REPORT_REFRESH_JOB = "report_refresh_job"
TEARDOWN_JOB = "teardown_job"

PARTITION_TAG = "dagster/partition"  # Dagster's own tag on a partitioned run
PRIORITY_TAG = "dagster/priority"  # Dagster's own op tag: higher starts first among ready steps
SERVICE_TAG = "campaign_assets/service"  # op tag: one step per service at a time within a run
SPEC_HASH_TAG = "campaign_assets/spec_hash"  # run tag: the spec a sensor run was requested for
TRIGGER_TAG = "campaign_assets/trigger"  # run tag: why the sensor requested the run
REPORT_DATE_TAG = "campaign_assets/report_date"  # run tag: the day a report refresh is for
KIND_TAG = "campaign_assets/kind"  # job tag: what kind of job (teardown)
OWNER = "team:campaign-ops"
SENSOR_INTERVAL_S = 30  # the spec sensor and the run-failure sensor

DEFAULT_CAMPAIGNS_DIR = "campaigns"  # CAMPAIGNS_DIR
DEFAULT_WORKSPACE_DIR = "workspace"  # WORKSPACE_DIR
DEFAULT_DAGSTER_HOME = ".dagster"  # DAGSTER_HOME

# Calls in flight within a step, per service (the resources' default
# ``max_concurrency``; DESIGN.md §5).
SERVICE_CAPS: Mapping[str, int] = {
    "llm": 8,
    "docs": 3,
    "sheets": 3,
    "asana": 5,
    "images": 2,
    "canva": 2,
    "amazon_dsp": 4,
    "trade_desk": 4,
    "dv360": 4,
    "slack": 1,
}

# Steps per pool across every run of the instance (``runs.apply_pool_limits``
# writes them there). The calls themselves are capped exactly by the slot
# board (services/slots.py), across processes and runs; pools bound how many
# step processes wait on one service at once. A step blocked on a pool is
# re-polled by Dagster at intervals growing to 15 s, so a tight pool leaves
# the vendor idle while a freed slot goes unnoticed (measured: a 70 s tail at
# the end of a 20-campaign backfill). Hence about twice the seed call caps:
# enough steps to keep every call slot busy.
POOL_LIMITS: Mapping[str, int] = {
    "llm": 16,
    "sheets": 6,
    "asana": 10,
    "images": 8,
    "dsp": 6,
}


def scope(spec: CampaignSpec, asset: str) -> Scope:
    """The ledger scope of ``asset`` for the campaign of ``spec``."""
    from campaign_assets.ledger import Scope  # here, so the CLI validates without the database layer

    return Scope(spec.organization, spec.id, asset)
