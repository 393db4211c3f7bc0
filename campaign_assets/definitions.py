"""The code location: ``dagster dev`` and ``dg`` load ``defs`` from here.

Every Dagster object lives under ``campaign_assets/defs/`` (loaded by
``dg.load_from_defs_folder``); this module adds the executor, and
``build_defs(env)`` binds the resources of a given environment (tests, the
CLI's reconstructable ``campaign_job_def``).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path

import dagster as dg

from campaign_assets.executor import threaded_executor
from campaign_assets.resources import build_resources
from campaign_assets.settings import CAMPAIGN_JOB, PERFORMANCE_JOB, REPORT_REFRESH_JOB, SERVICE_TAG

# I/O-bound steps: far more steps than cores can wait on vendors at once, so
# steps run as threads of the run worker (campaign_assets.executor: no step
# process to start); steps that call the same service never run side by side
# within a run (across runs, pools and the slot board hold the caps).
EXECUTOR_CONFIG = {
    "max_concurrent": 16,
    "tag_concurrency_limits": [
        {"key": SERVICE_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1},
    ],
}
executor = threaded_executor.configured(EXECUTOR_CONFIG)
# `campaign-assets launch` runs its runs in its own process, whose stdout is the
# user's terminal (the live progress): not captured there.
terminal_executor = threaded_executor.configured({**EXECUTOR_CONFIG, "capture_logs": False}, name="threads_in_terminal")


PROJECT = Path(__file__).parent


def build_defs(env: Mapping[str, str] | None = None) -> dg.Definitions:
    """Everything under ``defs/`` with the executor. The resources are those
    of ``defs/resources.py`` (``os.environ``), or of ``env`` when given."""
    folder = dg.load_from_defs_folder(path_within_project=PROJECT)
    return dg.Definitions(
        assets=folder.assets,
        asset_checks=folder.asset_checks,
        jobs=folder.jobs,
        sensors=folder.sensors,
        schedules=folder.schedules,
        resources=folder.resources if env is None else build_resources(env),
        executor=executor,
        loggers=folder.loggers,
        metadata=folder.metadata,
        component_tree=folder.component_tree,
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_defs()


def campaign_job_def() -> dg.JobDefinition:
    """Reconstructable entry point for ``execute_job`` (the CLI's launch).

    Every step process calls it, so it builds only what the job needs, from
    the same folder: ``defs/campaign`` and ``defs/resources.py``. The whole
    folder through ``load_from_defs_folder`` would also describe the installed
    component types for the UI: 0.3 CPU-seconds more per step on two cores.
    """
    tree = dg.ComponentTree.for_project(path_within_project=PROJECT)
    with warnings.catch_warnings():  # the folder loader's own module loader is in preview
        warnings.simplefilter("ignore", dg.PreviewWarning)
        parts = [tree.build_defs(path) for path in ("campaign", "resources.py")]
    return dg.Definitions.merge(*parts, dg.Definitions(executor=terminal_executor)).resolve_job_def(CAMPAIGN_JOB)



def _folder_job(name: str, *paths: str) -> dg.JobDefinition:
    tree = dg.ComponentTree.for_project(path_within_project=PROJECT)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        parts = [tree.build_defs(path) for path in (*paths, "resources.py")]
    return dg.Definitions.merge(*parts, dg.Definitions(executor=terminal_executor)).resolve_job_def(name)


def performance_job_def() -> dg.JobDefinition:
    """Reconstructable ``performance_job`` (``campaign-assets performance``)."""
    return _folder_job(PERFORMANCE_JOB, "campaign")


def report_refresh_job_def() -> dg.JobDefinition:
    """Reconstructable ``report_refresh_job`` (the report refresh after ``campaign-assets performance``)."""
    return _folder_job(REPORT_REFRESH_JOB, "campaign", "automation/report_schedule.py")
