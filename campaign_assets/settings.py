"""Names and defaults written once: partitions, jobs, tags, folders."""

from __future__ import annotations

PARTITIONS = "campaigns"  # the dynamic partitions definition of every campaign asset
CAMPAIGN_JOB = "campaign_job"
REPORT_REFRESH_JOB = "report_refresh_job"
TEARDOWN_JOB = "teardown_job"

PARTITION_TAG = "dagster/partition"  # Dagster's own tag on a partitioned run
SERVICE_TAG = "campaign_assets/service"

DEFAULT_CAMPAIGNS_DIR = "campaigns"
DEFAULT_WORKSPACE_DIR = "workspace"
DEFAULT_DAGSTER_HOME = ".dagster"
