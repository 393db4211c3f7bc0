"""The seed workload three ways, in one invocation (DESIGN.md §10).

    python -m benchmarks.seed_workload --scale 0.25 [--caps vendor|seed]

1. sequential: every call of the workload one at a time through the same
   HTTP clients against the sandbox (the seeds' "before");
2. as users run it: a real Dagster run of campaign_job with the configured
   executor (RUN_START to RUN_SUCCESS, and end-to-end wall);
3. ideal: a zero-overhead simulation of the same calls under the same caps.

``--caps`` picks the caps profile (``CAMPAIGN_CAPS_PROFILE`` for every client
and run this starts, and the ideal's caps): ``vendor`` (the default: each
vendor's published limit, chat and images sharing OpenAI's) or ``seed`` (the
seeds' own caps). The sandbox enforces the vendors' published limits either
way; the share of calls it answered 429 is reported.

Prints the figures, then one JSON line with caps, sequential_s, run_s, wall_s,
ideal_s, ratio, speedup, rate_limited_share and the per-step start overhead.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from campaign_assets_tests.support.dagster import temp_project
from campaign_assets_tests.support.in_flight import max_concurrency, peak_in_flight, vendor_of
from campaign_assets_tests.support.sandbox import duplicates, sandbox_process
from benchmarks.ideal import profile_slots, seed_workload, sequential_seconds, simulate
from campaign_assets.settings import CAPS_PROFILE_ENV, CAPS_PROFILES, DEFAULT_CAPS_PROFILE, CapsProfile, caps_profile

SEED = "q4-product-launch"


# ---- 1. sequential ------------------------------------------------------------
async def _sequential_calls(spec: Any, resources: Any, out: Path) -> None:
    from campaign_assets.logic.media_plan import build_media_plan, plan_values
    from campaign_assets.logic.prompts import brief_request, content_request, headline, summary_request
    from campaign_assets.logic.render import compose_creative
    from campaign_assets.services.sheets import a1_range_for
    from campaign_assets.spec import parse_size
    from campaign_assets.workflows import image_prompt

    def marker(key: str) -> str:
        return f"[ca:bench/sequential/{key}]"

    r = resources
    async with (
        r.llm.session(out) as llm,
        r.docs.session(out) as docs,
        r.sheets.session(out) as sheets,
        r.asana.session(out) as asana,
        r.images.session(out) as images,
        r.canva.session(out) as canva,
        r.slack.session(out) as slack,
    ):
        brief = (await llm.complete(brief_request(spec))).text
        doc = await docs.create_document(f"Brief {marker('brief')}", name="brief")
        await docs.write_text(doc, brief, fresh=True)
        values = plan_values(build_media_plan(spec))
        sheet = await sheets.create_spreadsheet(f"Plan {marker('plan')}", name="media_plan")
        await sheets.update_values(sheet, a1_range_for(values), values)
        project = await asana.create_project(spec.name, "notes", marker=marker("project"))
        for task in spec.launch_tasks():
            await asana.create_task(project.gid, task.name, task.notes, task.due_on, marker=marker(task.key))
        for size in spec.creative_sizes:
            width, height = parse_size(size)
            background = await images.generate(image_prompt(spec), color=spec.brand.primary_color)
            png = compose_creative(background, (width, height), spec.brand.primary_color, headline(spec), spec.brand.name)
            asset = await canva.upload_asset(f"{spec.id}-{size}.png", png, marker=marker(size))
            await canva.create_design(f"{size} {marker(size)}", width, height, asset.asset_id, marker=marker(size))
        for vector, content_type in spec.content_matrix():
            await llm.complete(content_request(spec, vector, content_type, brief))
        summary = (await llm.complete(summary_request(spec, {"status_phrase": "ready", "produced_phrase": "",
                                                             "channel_count": 4, "dsp_count": 2, "failure_count": 0}))).text
        report = await docs.create_document(f"Report {marker('report')}", name="summary_report")
        await docs.write_text(report, summary, fresh=True)
        await slack.post_message(f"Report ready {marker('slack')}", marker=marker("slack"))


def run_sequential(env: dict[str, str]) -> float:
    import dagster as dg

    from campaign_assets.resources import build_resources
    from campaign_assets.spec import load_spec

    spec = load_spec(Path(env["CAMPAIGNS_DIR"]) / f"{SEED}.yaml")
    with dg.build_resources(build_resources(os.environ)) as resources:
        started = time.monotonic()
        asyncio.run(_sequential_calls(spec, resources, Path(env["WORKSPACE_DIR"]) / "sequential"))
        return time.monotonic() - started


# ---- 2. a real Dagster run ----------------------------------------------------------
def run_dagster(campaign: str) -> dict[str, Any]:
    import dagster as dg

    from campaign_assets.runs import apply_pool_limits
    from campaign_assets.definitions import campaign_job_def
    from campaign_assets.defs.campaign.jobs import drafting_selection
    from campaign_assets.launch import QUIET

    instance = dg.DagsterInstance.get()
    apply_pool_limits(instance)
    instance.add_dynamic_partitions("campaigns", [campaign])
    # As `campaign-assets launch` runs it: the seed spec has no review sections, so
    # its run is the drafting graph (no review, approval or distribution steps).
    selection = drafting_selection(campaign_job_def())
    started = time.time()
    with dg.execute_job(
        dg.reconstructable(campaign_job_def), instance=instance, run_config=QUIET, tags={"dagster/partition": campaign},
        asset_selection=selection,
    ) as result:
        wall = time.time() - started
        run_id, success = result.run_id, result.success
    return {"wall_s": wall, "success": success, **step_timings(instance, run_id)}


def step_timings(instance: Any, run_id: str) -> dict[str, Any]:
    """RUN_START to RUN_SUCCESS, and how long each step waited, once its
    inputs were ready, before its code started (process start, load)."""
    from campaign_assets.definitions import build_defs

    logs = instance.all_logs(run_id)
    at: dict[tuple[str, str | None], float] = {}
    for entry in logs:
        if entry.dagster_event is None:
            continue
        at.setdefault((entry.dagster_event.event_type.name, entry.step_key), entry.timestamp)
    run_start = at[("RUN_START", None)]
    run_end = at.get(("RUN_SUCCESS", None)) or at.get(("RUN_FAILURE", None))
    graph = build_defs({}).resolve_asset_graph()
    op_of = {}
    for key in graph.get_all_asset_keys():
        op_of[key] = graph.get(key).assets_def.op.name
    deps: dict[str, set[str]] = {}
    for key in graph.get_all_asset_keys():
        step = op_of[key]
        deps.setdefault(step, set()).update(op_of[p] for p in graph.get(key).parent_keys if op_of[p] != step)
    overhead = {}
    # Where a step's start goes: waiting for the executor (slots, pools) until its
    # worker is asked for, the worker process starting (fork, job reconstruction),
    # resource set-up, and the rest (instance, events) until STEP_START.
    phases: dict[str, list[float]] = {"queue": [], "worker": [], "resources": [], "rest": []}
    for step, parents in deps.items():
        if ("STEP_START", step) not in at:
            continue
        ready = max([at[("STEP_SUCCESS", p)] for p in parents if ("STEP_SUCCESS", p) in at] or [run_start])
        overhead[step] = at[("STEP_START", step)] - ready
        marks = [at.get((kind, step)) for kind in ("STEP_WORKER_STARTING", "STEP_WORKER_STARTED",
                                                   "RESOURCE_INIT_STARTED", "RESOURCE_INIT_SUCCESS")]
        if all(m is not None for m in marks):
            asked, started, init_from, init_to = marks  # type: ignore[misc]
            phases["queue"].append(max(0.0, asked - ready))
            phases["worker"].append(started - asked)
            phases["resources"].append(init_to - init_from)
            phases["rest"].append(at[("STEP_START", step)] - started - (init_to - init_from))
    return {
        "step_start_phases_mean_s": {k: round(statistics.mean(v), 3) for k, v in phases.items() if v},
        "run_s": run_end - run_start,
        "step_start_overhead_s": {k: round(v, 3) for k, v in sorted(overhead.items())},
        "step_start_overhead_mean_s": statistics.mean(overhead.values()),
        "step_start_overhead_max_s": max(overhead.values()),
    }


def caps_exceeded(calls: list[dict[str, Any]], profile: CapsProfile) -> dict[str, int]:
    """Slot keys (a service, or a shared group such as openai) whose answered
    calls were ever more in flight at once than the profile's cap: key -> peak."""
    spans: dict[str, list[tuple[float, float]]] = {}
    for call in calls:
        service = vendor_of(call)
        if service in profile.caps and not call.get("rate_limited"):
            spans.setdefault(profile.slot_key(service)[0], []).append((call["start"], call["end"]))
    caps = {profile.slot_key(service)[0]: profile.slot_key(service)[1] for service in profile.caps}
    peaks = {key: peak_in_flight(intervals) for key, intervals in spans.items()}
    return {key: peak for key, peak in peaks.items() if peak > caps[key]}


def rate_limited(calls: list[dict[str, Any]]) -> dict[str, int]:
    """Calls the sandbox answered 429, per vendor (its call log's ``rate_limited``)."""
    counts: dict[str, int] = {}
    for call in calls:
        if call.get("rate_limited"):
            counts[call["vendor"]] = counts.get(call["vendor"], 0) + 1
    return counts


# ---- main -------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=0.25, help="latency scale (0.25 = 4x faster than the seeds)")
    parser.add_argument(
        "--sequential", choices=("measure", "compute"), default="measure",
        help="measure the sequential baseline against the sandbox, or compute it from the latencies",
    )
    parser.add_argument(
        "--caps", choices=sorted(CAPS_PROFILES), default=DEFAULT_CAPS_PROFILE,
        help="caps profile for the clients and the run (CAMPAIGN_CAPS_PROFILE) and for the ideal",
    )
    args = parser.parse_args(argv)

    profile = caps_profile({CAPS_PROFILE_ENV: args.caps})
    calls = seed_workload(scale=args.scale)
    ideal = simulate(calls, *profile_slots(profile)).makespan
    computed_sequential = sequential_seconds(calls)
    with sandbox_process(args.scale) as sandbox, temp_project([SEED]) as project:
        # Time in the sandbox runs 1/scale times faster: so does Canva's job polling.
        os.environ.update(sandbox.env | project | {
            "CANVA_POLL_INTERVAL_S": str(round(max(0.05, args.scale), 3)),
            CAPS_PROFILE_ENV: profile.name,  # read by build_resources and apply_pool_limits, here and in the run
        })
        print(f"sandbox at {sandbox.url}, scale {args.scale}, caps {profile.name}; ideal {ideal:.1f}s, "
              f"sequential (sum of latencies) {computed_sequential:.1f}s", flush=True)
        if args.sequential == "measure":
            sequential = run_sequential(project)
            print(f"sequential: {sequential:.1f}s measured", flush=True)
            sandbox.reset()
        else:
            sequential = computed_sequential
        run = run_dagster(SEED)
        state = sandbox.state()
    peaks = max_concurrency(state["calls"])
    dupes = duplicates(state)
    limited = rate_limited(state["calls"])
    over = caps_exceeded(state["calls"], profile)
    share = sum(limited.values()) / max(1, len(state["calls"]))
    ratio = run["run_s"] / ideal
    speedup = sequential / run["run_s"]
    print(f"dagster run: {run['run_s']:.1f}s (RUN_START→RUN_SUCCESS), wall {run['wall_s']:.1f}s, "
          f"success={run['success']}")
    print(f"ideal: {ideal:.1f}s   ratio run/ideal: {ratio:.3f}   speedup over sequential: {speedup:.2f}x")
    print(f"step start overhead: mean {run['step_start_overhead_mean_s']:.2f}s, max "
          f"{run['step_start_overhead_max_s']:.2f}s; per step {run['step_start_overhead_s']}")
    print(f"step start phases (mean s): {run['step_start_phases_mean_s']}")
    print(f"calls in flight at most: {peaks} (caps {profile.name}: {dict(profile.caps)}, shared "
          f"{ {g: c for g, c in profile.group_caps.items()} }); caps held: {'yes' if not over else over}; "
          f"duplicates: {dupes or 'none'}")
    print(f"answered 429: {sum(limited.values())} of {len(state['calls'])} calls ({share:.2%}); "
          f"by vendor {dict(limited) or 'none'}")
    figures = {
        "caps": profile.name,
        "scale": args.scale,
        "sequential_s": round(sequential, 2),
        "sequential_method": args.sequential,
        "run_s": round(run["run_s"], 2),
        "wall_s": round(run["wall_s"], 2),
        "ideal_s": round(ideal, 2),
        "ratio": round(ratio, 4),
        "speedup": round(speedup, 2),
        "step_start_overhead_mean_s": round(run["step_start_overhead_mean_s"], 3),
        "step_start_overhead_max_s": round(run["step_start_overhead_max_s"], 3),
        "step_start_phases_mean_s": run["step_start_phases_mean_s"],
        "success": run["success"],
        "duplicates": len(dupes),
        "max_in_flight": peaks,
        "caps_held": not over,
        "calls": len(state["calls"]),
        "rate_limited": sum(limited.values()),
        "rate_limited_share": round(share, 4),
    }
    print(json.dumps(figures))
    return 0 if run["success"] and not dupes and not over else 1


if __name__ == "__main__":
    sys.exit(main())
