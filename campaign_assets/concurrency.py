"""Concurrency limits per service (DESIGN.md §5).

``SERVICE_CAPS`` caps calls in flight within a step (the resources' default
``max_concurrency``); ``POOL_LIMITS`` caps steps per service across runs.
Dagster keeps per-pool limits in the instance, not in dagster.yaml (which
only holds ``default_limit``), so ``apply_pool_limits`` writes them there;
``campaign-assets launch`` and ``campaign-assets pools`` call it.
"""

from __future__ import annotations

from collections.abc import Mapping

import dagster as dg

SERVICE_CAPS: Mapping[str, int] = {
    "llm": 8,
    "docs": 3,
    "sheets": 3,
    "asana": 5,
    "images": 2,
    "canva": 2,
    "dsp": 4,
    "slack": 1,
}

# Steps per pool across every run of the instance. The calls themselves are
# capped exactly by the slot board (services/slots.py), across processes and
# runs; pools bound how many step processes wait on one service at once. A
# step blocked on a pool is re-polled by Dagster at intervals growing to 15 s,
# so a tight pool leaves the vendor idle while a freed slot goes unnoticed
# (measured: a 70 s tail at the end of a 20-campaign backfill). Hence about
# twice the seed call caps: enough steps to keep every call slot busy.
POOL_LIMITS: Mapping[str, int] = {
    "llm": 16,
    "sheets": 6,
    "asana": 10,
    "images": 8,
    "dsp": 6,
}


def apply_pool_limits(instance: dg.DagsterInstance, limits: Mapping[str, int] = POOL_LIMITS) -> dict[str, int]:
    """Set each pool's limit in the instance (idempotent); returns what changed."""
    storage = instance.event_log_storage
    changed = {}
    current = {key: storage.get_concurrency_info(key).slot_count for key in storage.get_concurrency_keys()}
    for pool, limit in limits.items():
        if current.get(pool) != limit:
            storage.set_concurrency_slots(pool, limit)
            changed[pool] = limit
    return changed
