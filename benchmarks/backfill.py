"""Twenty campaigns through one Dagster backfill, against the sandbox's vendor limits.

    python -m benchmarks.backfill --campaigns 20 --scale 0.2

Starts the sandbox (vendor limits on), dagster-webserver and dagster-daemon on
a fresh instance (the project's dagster.yaml: queued runs, pools), registers
the campaigns, launches ONE asset backfill over all of them through GraphQL
(as the UI does), waits for it, then reads the sandbox's call log: per vendor,
the achieved use of each of its limits (requests per window, or average
requests in flight over the concurrency cap) across the backfill, failed
items from the ledger and duplicates in the sandbox. Ends with one JSON line
holding bottleneck_utilization, failed_items and duplicates.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml

from campaign_assets_tests.support.dagster import PROJECT, dagster_processes, graphql, temp_project
from campaign_assets_tests.support.ports import free_port
from campaign_assets_tests.support.sandbox import duplicates, sandbox_process

LAUNCH = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on UnauthorizedError { message }
  }
}
"""
ASSET_KEYS = """{ assetNodes { assetKey { path } } }"""

# Caps sized to the vendors' own published limits, as a team would set them
# for a backfill (the defaults are the seeds'): chat and image generation
# split OpenAI's 16 requests in flight by demand (8 + 8; one shared group,
# LLM_SHARED_SLOTS=IMAGES_SHARED_SLOTS=openai:16, measured 0.71 against 0.75
# for the split); Docs and Sheets 10, Canva 5 and Asana 15 concurrent requests.
CAPS = {
    "LLM_MAX_CONCURRENCY": "8",
    "IMAGES_MAX_CONCURRENCY": "8",
    "GOOGLE_DOCS_MAX_CONCURRENCY": "10",
    "GOOGLE_SHEETS_MAX_CONCURRENCY": "10",
    "CANVA_MAX_CONCURRENCY": "5",
    "ASANA_MAX_CONCURRENCY": "15",
}


def write_specs(folder: Path, count: int) -> list[str]:
    seed = yaml.safe_load((PROJECT / "campaigns" / "q4-product-launch.yaml").read_text())
    ids = []
    for i in range(1, count + 1):
        campaign = f"launch-wave-{i:02d}"
        spec = seed | {"id": campaign, "name": f"Launch Wave {i:02d}"}
        (folder / f"{campaign}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
        ids.append(campaign)
    return ids


def utilization(state: dict[str, Any], window: tuple[float, float]) -> dict[str, dict[str, float]]:
    """Per vendor and limit rule: achieved use over the limit during ``window``."""
    start, end = window
    span = max(end - start, 1e-9)
    scale = state["config"]["scale"]
    calls_by_vendor: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for call in state["calls"]:
        calls_by_vendor[call["vendor"]].append(call)
    result: dict[str, dict[str, float]] = {}
    for vendor, rules in state["config"]["limits"].items():
        calls = calls_by_vendor.get(vendor)
        if not calls:
            continue
        result[vendor] = {}
        for rule in rules:
            matching = [
                c for c in calls
                if (rule.get("methods") is None or c["method"] in rule["methods"])
                and (rule.get("endpoints") is None or c["endpoint"] in rule["endpoints"])
                and not c.get("rate_limited")
            ]
            if rule.get("max_concurrency"):
                busy = sum(max(0.0, min(c["end"], end) - max(c["start"], start)) for c in matching)
                result[vendor][f"{rule['name']} (in flight / {rule['max_concurrency']})"] = busy / span / rule["max_concurrency"]
            if rule.get("max_requests"):
                per_second = rule["max_requests"] / (rule["window_s"] * scale)
                result[vendor][f"{rule['name']} (requests / {rule['max_requests']} per {rule['window_s']:g}s)"] = (
                    len(matching) / span / per_second
                )
    return result


def timeline(state: dict[str, Any], vendor: str, window: tuple[float, float], bins: int = 20) -> list[str]:
    """Average requests in flight at ``vendor`` per slice of the window, by endpoint."""
    start, end = window
    width = (end - start) / bins
    rows = []
    for i in range(bins):
        lo, hi = start + i * width, start + (i + 1) * width
        busy: dict[str, float] = defaultdict(float)
        for c in state["calls"]:
            if c["vendor"] == vendor and not c.get("rate_limited"):
                busy[c["endpoint"]] += max(0.0, min(c["end"], hi) - max(c["start"], lo)) / width
        rows.append(f"  {lo - start:7.1f}s " + "  ".join(f"{k}: {v:4.1f}" for k, v in sorted(busy.items())))
    return rows


def run_spans(instance: Any, runs: list[Any]) -> list[tuple[float, float, dict[str, float]]]:
    """Per run: start, end and each step's start (epoch seconds), for the timeline."""
    spans = []
    for run in runs:
        steps: dict[str, float] = {}
        start = end = None
        for entry in instance.all_logs(run.run_id):
            event = entry.dagster_event
            if event is None:
                continue
            name = event.event_type.name
            if name == "RUN_START":
                start = entry.timestamp
            elif name in ("RUN_SUCCESS", "RUN_FAILURE"):
                end = entry.timestamp
            elif name == "STEP_START" and entry.step_key:
                steps[entry.step_key] = entry.timestamp
        if start and end:
            spans.append((start, end, steps))
    return sorted(spans)


def failed_items(ledger_url: str) -> int:
    import sqlalchemy as sa

    engine = sa.create_engine(ledger_url)
    with engine.connect() as conn:
        count = conn.execute(sa.text("select count(*) from ledger_items where status in ('failed', 'pending')")).scalar_one()
    engine.dispose()
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--campaigns", type=int, default=20)
    parser.add_argument("--scale", type=float, default=0.2)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to wait for the backfill")
    args = parser.parse_args(argv)

    import dagster as dg

    with sandbox_process(args.scale) as sandbox, temp_project() as project:
        ids = write_specs(Path(project["CAMPAIGNS_DIR"]), args.campaigns)
        env = sandbox.env | project | CAPS
        os.environ.update(env)
        subprocess.run([sys.executable, "-m", "campaign_assets.cli", "pools"], env=os.environ, check=True,
                       stdout=subprocess.DEVNULL)
        instance = dg.DagsterInstance.get()
        instance.add_dynamic_partitions("campaigns", ids)
        with dagster_processes(env, free_port()) as url:
            keys = [node["assetKey"] for node in graphql(url, ASSET_KEYS)["assetNodes"]]
            started = time.time()
            launched = graphql(url, LAUNCH, {"params": {"assetSelection": keys, "partitionNames": ids}})
            result = launched["launchPartitionBackfill"]
            if result["__typename"] != "LaunchBackfillSuccess":
                raise RuntimeError(result)
            backfill_id = result["backfillId"]
            print(f"backfill {backfill_id}: {len(ids)} campaigns x {len(keys)} assets at scale {args.scale}", flush=True)
            while True:
                backfill = instance.get_backfill(backfill_id)
                runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
                finished = [r for r in runs if r.is_finished]
                if backfill.status.value != "REQUESTED" and len(finished) == len(runs):
                    break
                if time.time() - started > args.timeout:
                    raise TimeoutError(f"backfill not done after {args.timeout}s: {backfill.status}")
                time.sleep(2)
            elapsed = time.time() - started
            succeeded = sum(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
            spans = run_spans(instance, runs)
        state = sandbox.state()
        failed = failed_items(f"sqlite:///{Path(project['WORKSPACE_DIR']) / 'ledger.sqlite'}")

    calls = state["calls"]
    window = (min(c["start"] for c in calls), max(c["end"] for c in calls))
    use = utilization(state, window)
    rate_limited = defaultdict(int)
    for call in calls:
        rate_limited[call["vendor"]] += bool(call.get("rate_limited"))
    dupes = duplicates(state)
    print(f"backfill {backfill.status.value}: {succeeded}/{len(runs)} runs succeeded in {elapsed:.1f}s "
          f"(vendor calls over {window[1] - window[0]:.1f}s)")
    bottleneck = ("", "", 0.0)
    for vendor, rules in sorted(use.items()):
        print(f"  {vendor:14} " + "; ".join(f"{name}: {value:.2f}" for name, value in rules.items())
              + f"; 429s: {rate_limited[vendor]}")
        for name, value in rules.items():
            if value > bottleneck[2]:
                bottleneck = (vendor, name, value)
    print("runs (seconds from the first vendor call): start, creatives, summary_report, end")
    for start, end, steps in spans:
        marks = [start, steps.get("creatives", start), steps.get("summary_report", end), end]
        print("  " + "  ".join(f"{t - window[0]:6.1f}" for t in marks))
    print(f"{bottleneck[0]} requests in flight over the backfill:")
    print("\n".join(timeline(state, bottleneck[0], window)))
    print(f"bottleneck: {bottleneck[0]} {bottleneck[1]} at {bottleneck[2]:.2f} of its limit; "
          f"failed items: {failed}; duplicates: {len(dupes)}")
    figures = {
        "campaigns": len(ids),
        "scale": args.scale,
        "runs": len(runs),
        "runs_succeeded": succeeded,
        "backfill_s": round(elapsed, 1),
        "bottleneck_vendor": bottleneck[0],
        "bottleneck_limit": bottleneck[1],
        "bottleneck_utilization": round(bottleneck[2], 3),
        "failed_items": failed,
        "duplicates": len(dupes),
        "rate_limited": dict(rate_limited),
    }
    print(json.dumps(figures))
    return 0 if succeeded == len(runs) and not failed and not dupes else 1


if __name__ == "__main__":
    sys.exit(main())
