"""One snapshot of every asset key, group, kind, owner, pool and service tag.

It catches naming drift the moment it happens. After an intended change,
regenerate with: UPDATE_SNAPSHOT=1 pytest campaign_assets_tests/test_definitions.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import dagster as dg

from campaign_assets.assets.common import SERVICE_TAG
from campaign_assets.definitions import build_defs, defs

SNAPSHOT = Path(__file__).with_name("definitions_snapshot.json")


def describe(d: dg.Definitions) -> dict:
    graph = d.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        op = d.resolve_assets_def(key).op
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "kinds": sorted(node.kinds),
            "owners": list(node.owners),
            "pool": op.pool,
            "service_tag": (op.tags or {}).get(SERVICE_TAG),
            "deps": sorted(p.to_user_string() for p in node.parent_keys),
            "partitioned": node.partitions_def is not None,
            "has_description": bool(node.description),
            "checks": sorted(c.name for c in node.check_keys),
        }
    return {
        "assets": assets,
        "jobs": sorted(j.name for j in d.resolve_all_job_defs() if not j.name.startswith("__")),
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


def test_every_asset_is_described_owned_and_grouped() -> None:
    for name, asset in describe(build_defs({}))["assets"].items():
        assert asset["has_description"] and asset["owners"] and asset["group"] != "default", name
        assert asset["partitioned"], name
