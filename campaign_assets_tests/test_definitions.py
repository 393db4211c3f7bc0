"""One snapshot of the whole code location: every asset (key, group, kind,
owner, pool, service tag, priority, code version, retry policy), every check
(and whether it blocks), job (selection, tags, partitions), sensor (job,
default status, interval), schedule (cron, timezone, job, default status)
and resource.

It catches naming drift the moment it happens. After an intended change,
regenerate with: UPDATE_SNAPSHOT=1 pytest campaign_assets_tests/test_definitions.py
and read the diff of definitions_snapshot.json.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import dagster as dg

from campaign_assets.definitions import build_defs, defs
from campaign_assets.settings import CAMPAIGN_JOB, PRIORITY_TAG, SERVICE_TAG

SNAPSHOT = Path(__file__).with_name("definitions_snapshot.json")


def _retry(policy: dg.RetryPolicy | None) -> dict[str, Any] | None:
    if policy is None:
        return None
    return {
        "max_retries": policy.max_retries,
        "delay": policy.delay,
        "backoff": policy.backoff.value if policy.backoff else None,
        "jitter": policy.jitter.value if policy.jitter else None,
    }


def _partitions(partitions_def: dg.PartitionsDefinition | None) -> str | None:
    if partitions_def is None:
        return None
    return getattr(partitions_def, "name", None) or type(partitions_def).__name__


def _status(status: Any) -> str:
    return status.value if hasattr(status, "value") else str(status)


def describe(d: dg.Definitions) -> dict:
    graph = d.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets_def = d.resolve_assets_def(key)
        op = assets_def.op
        tags = op.tags or {}
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "kinds": sorted(node.kinds),
            "owners": list(node.owners),
            "pool": op.pool,
            "service_tag": tags.get(SERVICE_TAG),
            "priority": tags.get(PRIORITY_TAG),
            "op": op.name,
            "code_version": node.code_version,
            "retry_policy": _retry(op.retry_policy),
            "deps": sorted(p.to_user_string() for p in node.parent_keys),
            "partitioned": node.partitions_def is not None,
            "partitions": _partitions(node.partitions_def),
            "has_description": bool(node.description),
            "checks": sorted(c.name for c in node.check_keys),
        }
    checks = {}
    for assets_def in graph.assets_defs:
        for spec in assets_def.check_specs:
            checks[f"{spec.asset_key.to_user_string()}:{spec.name}"] = {
                "blocking": spec.blocking,
                "has_description": bool(spec.description),
            }
    jobs = {}
    for job in d.resolve_all_job_defs():
        if job.name.startswith("__"):
            continue
        keys = job.asset_layer.executable_asset_keys
        jobs[job.name] = {
            "assets": sorted(k.to_user_string() for k in keys),
            # Op jobs: each op with its tags (service, priority) and retry policy.
            "ops": None if keys else {
                node.name: {"tags": dict(sorted(node.definition.tags.items())), "retry_policy": _retry(node.definition.retry_policy)}
                for node in job.nodes
            },
            "tags": dict(sorted((job.tags or {}).items())),
            "partitions": _partitions(job.partitions_def),
            "has_description": bool(job.description),
        }
    sensors = {}
    for sensor in d.sensors or []:
        resolved = d.resolve_sensor_def(sensor.name)
        sensors[sensor.name] = {
            "type": resolved.sensor_type.value,
            "jobs": sorted(target.job_name for target in resolved.targets),
            "default_status": _status(resolved.default_status),
            "minimum_interval_seconds": resolved.minimum_interval_seconds,
            "has_description": bool(resolved.description),
        }
    schedules = {}
    for schedule in d.schedules or []:
        resolved = d.resolve_schedule_def(schedule.name)
        schedules[schedule.name] = {
            "cron": resolved.cron_schedule,
            "timezone": resolved.execution_timezone,
            "job": resolved.job_name,
            "default_status": _status(resolved.default_status),
            "has_description": bool(resolved.description),
        }
    return {
        "assets": assets,
        "checks": dict(sorted(checks.items())),
        "jobs": dict(sorted(jobs.items())),
        "sensors": dict(sorted(sensors.items())),
        "schedules": dict(sorted(schedules.items())),
        "resources": sorted(d.resources),
    }


def test_definitions_match_the_snapshot() -> None:
    current = describe(build_defs({}))
    if os.environ.get("UPDATE_SNAPSHOT"):
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    assert current == json.loads(SNAPSHOT.read_text())


def test_the_code_location_loads_lazily() -> None:
    loaded = defs()
    assert isinstance(loaded, dg.Definitions)
    dg.Definitions.validate_loadable(loaded)
    assert describe(loaded) == describe(build_defs({})) | {"resources": describe(loaded)["resources"]}


def test_every_asset_is_described_owned_and_grouped() -> None:
    for name, asset in describe(build_defs({}))["assets"].items():
        assert asset["has_description"] and asset["owners"] and asset["group"] != "default", name
        assert asset["partitioned"], name
        assert asset["code_version"], name


def test_every_job_sensor_and_schedule_is_described() -> None:
    current = describe(build_defs({}))
    for kind in ("jobs", "sensors", "schedules"):
        assert current[kind], kind
        for name, entry in current[kind].items():
            assert entry["has_description"], f"{kind}: {name}"


def test_the_launch_job_is_the_code_location_job() -> None:
    """``campaign_job_def`` (a CLI launch) builds only the campaign domain;
    the job must be the one the code location serves, run by the same
    executor but for the capture of stdout (the launch's terminal)."""
    from campaign_assets.definitions import campaign_job_def, executor, terminal_executor

    served = build_defs().resolve_job_def(CAMPAIGN_JOB)
    launched = campaign_job_def()
    assert sorted(op.name for op in launched.graph.node_defs) == sorted(op.name for op in served.graph.node_defs)
    assert launched.asset_layer.asset_graph.toposorted_asset_keys == served.asset_layer.asset_graph.toposorted_asset_keys
    assert (launched.executor_def, served.executor_def) == (terminal_executor, executor)
    assert sorted(launched.resource_defs) == sorted(served.resource_defs)
