"""How long one tick of ``campaign_specs_sensor`` takes over 1,000 spec files.

    .venv/bin/python -m benchmarks.sensor_tick [--specs 1000] [--profile]

Writes N valid specs (distinct ids, budgets and flights) into a temp folder,
evaluates the sensor against a temp SQLite instance exactly as the daemon
would (cursor in, ``SensorResult`` out), applies the partition requests, then
ticks again with nothing changed. Goal: each tick <= 2 s.
"""

import argparse
import cProfile
import datetime as dt
import pstats
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg
import yaml

from campaign_assets.defs.automation.spec_sensor import campaign_specs_sensor
from campaign_assets.resources import WorkspaceResource
from campaign_assets.settings import PARTITIONS

GOAL_S = 2.0
SEED = Path(__file__).resolve().parents[1] / "campaigns" / "q4-product-launch.yaml"


def write_specs(folder: Path, count: int) -> None:
    base = yaml.safe_load(SEED.read_text())
    for i in range(count):
        start = dt.date(2027, 1, 4) + dt.timedelta(days=i % 300)
        spec = dict(
            base,
            id=f"bench-campaign-{i:04d}",
            name=f"Bench Campaign {i}",
            organization=f"org-{i % 7}",
            budget={"total": 10_000 + i, "currency": "USD"},
            flight={"start": start.isoformat(), "end": (start + dt.timedelta(days=60)).isoformat()},
        )
        (folder / f"{spec['id']}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))


def tick(instance: dg.DagsterInstance, folder: Path, cursor: str | None) -> tuple[float, dg.SensorResult]:
    with dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"workspace": WorkspaceResource(campaigns_dir=str(folder))}
    ) as context:
        started = time.perf_counter()
        result = campaign_specs_sensor(context)
        return time.perf_counter() - started, result


def apply(instance: dg.DagsterInstance, result: dg.SensorResult) -> None:
    """What the daemon does with the partition requests."""
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(PARTITIONS, list(request.partition_keys))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--specs", type=int, default=1000)
    parser.add_argument("--profile", action="store_true", help="print the top of a cProfile of the first tick")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, dg.instance_for_test(temp_dir=tmp) as instance:
        folder = Path(tmp) / "campaigns"
        folder.mkdir()
        write_specs(folder, args.specs)
        profiler = cProfile.Profile() if args.profile else None
        if profiler:
            profiler.enable()
        first_s, first = tick(instance, folder, None)
        if profiler:
            profiler.disable()
        apply(instance, first)
        added = sum(len(r.partition_keys) for r in first.dynamic_partitions_requests or [])
        second_s, second = tick(instance, folder, first.cursor)
        print(f"specs: {args.specs}  cursor: {len(first.cursor or '') / 1024:.0f} KiB")
        print(
            f"tick 1 (all new):       {first_s:6.3f} s  run requests {len(first.run_requests or [])}"
            f"  partitions added {added}"
        )
        print(f"tick 2 (all unchanged): {second_s:6.3f} s  run requests {len(second.run_requests or [])}")
        if profiler:
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(20)
        ok = max(first_s, second_s) <= GOAL_S and len(second.run_requests or []) == 0
        print(f"goal <= {GOAL_S:.1f} s per tick: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
