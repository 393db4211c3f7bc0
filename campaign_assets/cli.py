"""``campaign-assets``: what a person types outside the UI (DESIGN.md §8).

- ``validate SPEC...``: field-named errors, non-zero exit on any invalid spec;
- ``launch [SPEC|ID ...]``: validate everything first (nothing happens if one
  spec is invalid), register the campaign partitions, materialize the whole
  graph with the configured executor, print a per-asset summary; with
  ``--queue`` the runs go through the instance's run queue (``queued.py``);
- ``status [ID ...]``: the last run and the ledger's items of each campaign;
  runs left STARTED by a launch that is gone are marked failed here;
- ``approve ID --by NAME [--note TEXT]`` / ``reject ID --by NAME --note TEXT``:
  a person's decision on exactly what the campaign's latest review showed;
- ``teardown ID``: delete what the ledger says the campaign created, in
  reverse order (``--dry-run`` lists it first);
- ``performance ID --date YYYY-MM-DD``: fetch one past day of the campaign's delivery
  (``campaign_performance``), refresh its summary report, print the pacing table;
- ``pools``: show and apply the per-service pool limits to the instance;
- ``sandbox``: start the vendor sandbox.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from campaign_assets.settings import (
    DEFAULT_CAMPAIGNS_DIR, DEFAULT_DAGSTER_HOME, DEFAULT_WORKSPACE_DIR, DEFAULT_WORKSPACE_FILE,
)
from campaign_assets.spec import CampaignSpec, SpecError, find_spec_path, load_spec, scan_campaigns
from campaign_assets.storage import ENDPOINT_ENV, is_url, location, shown


@dataclass(frozen=True)
class Target:
    path: Path
    spec: CampaignSpec


def _print_error(exc: SpecError) -> None:
    print(str(exc), file=sys.stderr)


def cmd_validate(args: argparse.Namespace) -> int:
    bad = 0
    for name in args.specs:
        try:
            spec = load_spec(name)
        except SpecError as exc:
            _print_error(exc)
            bad += 1
        else:
            print(f"{name}: ok ({spec.id}: {len(spec.launch_tasks())} tasks, {len(spec.content_matrix())} content pieces, "
                  f"{len(spec.creative_sizes)} creatives)")
    return 1 if bad else 0


def specs_folder() -> Path:
    """CAMPAIGNS_DIR: a folder, or a URL (``s3://bucket/specs``) on AWS_ENDPOINT_URL's S3 when set."""
    return location(os.environ.get("CAMPAIGNS_DIR", DEFAULT_CAMPAIGNS_DIR), os.environ.get(ENDPOINT_ENV))


def workspace_shown(organization: str, campaign: str) -> str:
    """Where a campaign's artifacts are, for a person: the bucket URL or the local folder."""
    root = os.environ.get("WORKSPACE_DIR", DEFAULT_WORKSPACE_DIR)
    return f"{root.rstrip('/')}/{organization}/{campaign}" if is_url(root) else shown(Path(root) / organization / campaign)


def resolve_targets(names: Sequence[str], campaigns_dir: Path) -> tuple[list[Target], list[SpecError]]:
    """Specs named by path or id (all of CAMPAIGNS_DIR when none), validated."""
    targets, errors = [], []
    if not names:
        for found in scan_campaigns(campaigns_dir):
            if found.error:
                errors.append(found.error)
            else:
                targets.append(Target(found.path, found.spec))
        return targets, errors
    for name in names:
        try:
            path = Path(name) if Path(name).suffix in (".yaml", ".yml") else find_spec_path(campaigns_dir, name)
            targets.append(Target(path, load_spec(path)))
        except SpecError as exc:
            errors.append(exc)
        except FileNotFoundError as exc:
            errors.append(SpecError(name, [("", str(exc))]))
    ids = [t.spec.id for t in targets]
    for dup in {i for i in ids if ids.count(i) > 1}:
        errors.append(SpecError(dup, [("id", "named more than once")]))
    return targets, errors


def register_spec(target: Target, campaigns_dir: Path, replace: bool) -> Path:
    """A spec launched from elsewhere joins the campaigns folder (the
    registry the asset and the sensor read); a different spec under the same
    id is refused unless ``replace``."""
    home = campaigns_dir / f"{target.spec.id}{target.path.suffix}"
    if shown(home) == shown(target.path):
        return home
    content = target.path.read_bytes()
    if home.exists() and home.read_bytes() != content and not replace:
        raise SpecError(
            str(target.path), [("id", f"campaign {target.spec.id!r} already exists as {home}; use --replace")]
        )
    if not is_url(campaigns_dir):  # a bucket has no folders to make
        campaigns_dir.mkdir(parents=True, exist_ok=True)
    home.write_bytes(content)
    return home


def ensure_dagster_home() -> Path:
    """DAGSTER_HOME, defaulting to ./.dagster with the project's dagster.yaml."""
    home = Path(os.environ.get("DAGSTER_HOME") or DEFAULT_DAGSTER_HOME).resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    project_config = Path("dagster.yaml").resolve()
    if not config.exists() and project_config.is_file():
        try:
            config.symlink_to(project_config)
        except FileExistsError:  # another launch linked it first
            pass
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def cmd_launch(args: argparse.Namespace) -> int:
    campaigns_dir = specs_folder()
    targets, errors = resolve_targets(args.targets, campaigns_dir)
    if not targets and not errors:
        errors.append(SpecError(str(campaigns_dir), [("", "no campaign specs found")]))
    if not errors:
        for target in targets:
            try:
                register_spec(target, campaigns_dir, args.replace)
            except SpecError as exc:
                errors.append(exc)
    if errors:
        for exc in errors:
            _print_error(exc)
        print(f"launch refused: {len(errors)} invalid spec(s); nothing was run", file=sys.stderr)
        return 2

    # Dagster is imported only now: validation stays instant.
    import dagster as dg

    from campaign_assets.definitions import campaign_job_def
    from campaign_assets.defs.campaign.jobs import drafting_selection
    from campaign_assets.launch import launch_campaigns, print_approvals, print_summary

    home = ensure_dagster_home()
    ids = [t.spec.id for t in targets]
    from campaign_assets.runs import open_instance

    instance = open_instance(home, ids)
    print(f"DAGSTER_HOME={home}; launching {len(ids)} campaign(s): {', '.join(ids)}")
    started = time.monotonic()
    # A campaign without review sections runs exactly the drafting graph.
    drafting = drafting_selection(campaign_job_def())
    selections = {t.spec.id: None if t.spec.reviewed else drafting for t in targets}
    show_progress = os.environ.get("CAMPAIGN_PROGRESS", "on") != "off"
    if args.queue:  # the instance's run queue and dagster-daemon run them (queued.py)
        from campaign_assets.queued import QueueError, launch_queued

        try:
            _, outcomes = launch_queued(instance, Path(args.workspace), ids, selections, show_progress, not args.no_wait)
        except QueueError as exc:
            print(f"launch --queue refused: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("\nstopped waiting; the runs go on in the queue (campaign-assets status)", file=sys.stderr)
            return 130
        if args.no_wait:
            return 0
    else:
        outcomes = launch_campaigns(
            instance, dg.reconstructable(campaign_job_def), ids, parallel=args.parallel, home=home,
            show_progress=show_progress, selections=selections,
        )
    code = print_summary(outcomes, [t.spec for t in targets], workspace_shown)
    print_approvals([t.spec for t in targets if t.spec.reviewed])
    counts = {s: sum(o.status == s for o in outcomes) for s in ("SUCCESS", "PARTIAL", "FAILURE")}
    print(f"done in {time.monotonic() - started:.1f}s: " + ", ".join(f"{n} {s.lower()}" for s, n in counts.items()))
    return code


def cmd_status(args: argparse.Namespace) -> int:
    import json

    import dagster as dg

    from campaign_assets.resources import build_resources
    from campaign_assets.status import campaign_status, describe

    campaigns_dir = specs_folder()
    targets, errors = resolve_targets(args.campaigns, campaigns_dir)
    for exc in errors:
        _print_error(exc)
    home = ensure_dagster_home()
    from campaign_assets.runs import open_instance

    instance = open_instance(home)
    with dg.build_resources({"ledger": build_resources(os.environ)["ledger"]}) as resources:
        ledger, approvals = resources.ledger.open(), resources.ledger.approvals()
        try:
            statuses = [campaign_status(instance, ledger, t.spec, approvals) for t in targets]
        finally:
            ledger.dispose()
            approvals.dispose()
    if args.json:
        print(json.dumps(statuses[0] if len(statuses) == 1 and args.campaigns else statuses, indent=2))
    else:
        for status in statuses:
            print("\n".join(describe(status)))
    return 1 if errors else 0


def cmd_decide(args: argparse.Namespace) -> int:
    """``approve ID --by NAME [--note]`` / ``reject ID --by NAME --note``: a
    person's decision on exactly what the campaign's latest review showed."""
    import dagster as dg

    from campaign_assets.approvals import NoReview
    from campaign_assets.resources import build_resources

    campaigns_dir = specs_folder()
    targets, errors = resolve_targets([args.campaign], campaigns_dir)
    if errors:
        for exc in errors:
            _print_error(exc)
        return 2
    spec = targets[0].spec
    decision = "approved" if args.command == "approve" else "rejected"
    with dg.build_resources({"ledger": build_resources(os.environ)["ledger"]}) as resources:
        approvals = resources.ledger.approvals()
        try:
            record = approvals.decide(spec.organization, spec.id, decision, by=args.by, note=args.note or "", via="cli")
            state = approvals.state(spec.organization, spec.id)
        except (NoReview, ValueError) as exc:
            print(f"{args.command} refused: {exc}", file=sys.stderr)
            return 2
        finally:
            approvals.dispose()
    print(f"{spec.organization}/{spec.id}: {decision} by {record.decided_by} (content {record.fingerprint[:12]})")
    if state and state.round:
        print(f"  review requested {state.round.requested_at:%Y-%m-%d %H:%M} UTC; packet: {state.round.packet or '-'}")
    if decision == "approved":
        print(f"  distribution runs with `campaign-assets launch {spec.id}` (under `dagster dev`, at once)")
    return 0


def cmd_pools(args: argparse.Namespace) -> int:
    import dagster as dg

    from campaign_assets.runs import apply_pool_limits, pool_limits

    ensure_dagster_home()
    instance = dg.DagsterInstance.get()
    limits = pool_limits()
    changed = apply_pool_limits(instance, limits)
    for pool, limit in limits.items():
        print(f"{pool:8} {limit}{'  (set)' if pool in changed else ''}")
    return 0


def cmd_teardown(args: argparse.Namespace) -> int:
    import dagster as dg

    from campaign_assets.resources import build_resources
    from campaign_assets.core.teardown import (
        CLIENT_SERVICES,
        TeardownServices,
        build_plan,
        describe_plan,
        summarize,
        teardown_campaign,
    )

    # Resolve EnvVar-configured resources exactly as a run would.
    with dg.build_resources(build_resources(os.environ)) as resources:
        ledger = resources.ledger.open()
        where = dict(workspace=resources.workspace, ledger=ledger, organization=args.organization)
        try:
            if args.dry_run:
                plan = build_plan(args.campaign, **where)
                lines = describe_plan(plan)
                print(f"{plan.organization or '?'}/{args.campaign}: {len(plan.rows)} item(s) would be deleted, in order:")
                print("\n".join(lines) if lines else "(nothing)")
                return 0
            services = TeardownServices.from_mapping({name: getattr(resources, name) for name in CLIENT_SERVICES})
            report = teardown_campaign(args.campaign, services=services, **where)
        except ValueError as exc:
            print(f"teardown refused: {exc}", file=sys.stderr)
            return 2
        finally:
            ledger.dispose()
    print("\n".join(summarize(report)))
    return 0 if report.ok else 1


def cmd_performance(args: argparse.Namespace) -> int:
    """One campaign's day: ``performance_job`` on its (campaign, day) partition, then the report
    refresh, both with ``execute_job`` like a launch (the campaign's turn held), then the pacing."""
    import datetime as dt

    campaigns_dir = specs_folder()
    try:
        day = dt.date.fromisoformat(args.date)
        spec = load_spec(find_spec_path(campaigns_dir, args.campaign))
    except ValueError as exc:
        print(f"performance refused: --date {args.date!r}: {exc}", file=sys.stderr)
        return 2
    except (SpecError, FileNotFoundError) as exc:
        print(f"performance refused: {exc}", file=sys.stderr)
        return 2
    if day >= dt.datetime.now(dt.timezone.utc).date():
        print(f"performance refused: {day} is not over yet (a past day only)", file=sys.stderr)
        return 2

    import dagster as dg

    from campaign_assets.definitions import performance_job_def, report_refresh_job_def
    from campaign_assets.defs.campaign.performance import partition_key
    from campaign_assets.launch import QUIET, run_campaign
    from campaign_assets.runs import LAUNCHER_TAG, campaign_turn, launcher_token
    from campaign_assets.settings import PARTITION_TAG

    home = ensure_dagster_home()
    from campaign_assets.runs import open_instance

    instance = open_instance(home, [spec.id])
    key = partition_key(spec.id, day)
    tags = {PARTITION_TAG: str(key), LAUNCHER_TAG: launcher_token(),
            **{f"{PARTITION_TAG}/{dim}": value for dim, value in key.keys_by_dimension.items()}}
    job = dg.reconstructable(performance_job_def)
    with campaign_turn(instance, home, spec.id), dg.execute_job(
        job, instance=instance, run_config=QUIET, tags=tags, raise_on_error=False
    ) as result:
        ok = result.success
        meta = {}
        for event in result.get_asset_materialization_events():
            meta = {k: v.value for k, v in event.materialization.metadata.items()}
        checks = [(e.check_name, e.passed, e.severity.value, e.description) for e in result.get_asset_check_evaluations()]
        run_id = result.run_id
    print(f"{spec.id} {day}: campaign_performance run {run_id[:8]} {'succeeded' if ok else 'FAILED'}")
    if not ok:
        return 1
    report = run_campaign(instance, dg.reconstructable(report_refresh_job_def), spec.id, home)
    print(f"{spec.id}: summary_report refreshed (run {report.run_id[:8]}, {'ok' if report.success else 'FAILED'})")
    print()
    print(meta.get("pacing", "(no pacing table)"))
    print(f"\n{meta.get('days_reported', 0)} of {meta.get('days_to_date', 0)} flight days to date reported")
    for name, passed, severity, description in checks:
        print(f"check {name}: {'passed' if passed else severity} — {description or ''}")
    for name, value in sorted(meta.items()):
        if name.startswith("chart/"):
            print(f"chart: {value}")
    if meta.get("sources_failed"):
        print(meta.get("failures", ""))
    return 0 if report.success and not meta.get("sources_failed") else 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="campaign-assets", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("validate", help="check spec files; exit 1 if any is invalid")
    p.add_argument("specs", nargs="+", metavar="SPEC")
    p.set_defaults(func=cmd_validate)
    p = sub.add_parser("launch", help="materialize the whole graph of campaigns (all in CAMPAIGNS_DIR by default)")
    p.add_argument("targets", nargs="*", metavar="SPEC|ID")
    p.add_argument("--replace", action="store_true", help="replace a registered spec with the same id")
    p.add_argument("--parallel", type=int, default=1, help="campaign runs at once (default 1; not with --queue)")
    p.add_argument("--queue", action="store_true",
                   help="submit the runs to the instance's run queue (dagster-daemon runs them within its limits)")
    p.add_argument("-w", "--workspace", default=DEFAULT_WORKSPACE_FILE, metavar="PATH",
                   help=f"with --queue: the workspace file the code location is loaded from (default {DEFAULT_WORKSPACE_FILE})")
    p.add_argument("--no-wait", action="store_true", help="with --queue: print the run ids and exit")
    p.set_defaults(func=cmd_launch)
    p = sub.add_parser("status", help="where each campaign stands: last run, ledger items; sweeps dead runs")
    p.add_argument("campaigns", nargs="*", metavar="ID")
    p.add_argument("--json", action="store_true", help="one JSON document (an object for one ID, else a list)")
    p.set_defaults(func=cmd_status)
    for name, helptext in (
        ("approve", "approve what the campaign's latest review showed; distribution may then go out"),
        ("reject", "reject what the campaign's latest review showed (a note says why)"),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("campaign", metavar="ID")
        p.add_argument("--by", required=True, metavar="NAME", help="who decides (recorded)")
        p.add_argument("--note", required=name == "reject", default="", help="why" + (" (required)" if name == "reject" else ""))
        p.set_defaults(func=cmd_decide)
    p = sub.add_parser("performance", help="fetch one past day of a campaign's delivery, then refresh its report")
    p.add_argument("campaign", metavar="ID")
    p.add_argument("--date", required=True, metavar="YYYY-MM-DD", help="the day (a past one)")
    p.set_defaults(func=cmd_performance)
    p = sub.add_parser("pools", help="apply the per-service pool limits to the Dagster instance")
    p.set_defaults(func=cmd_pools)
    p = sub.add_parser("teardown", help="delete what the ledger says a campaign created (reverse order, idempotent)")
    p.add_argument("campaign", metavar="ID")
    p.add_argument("--organization", help="the campaign's tenant (default: from its spec, else from the ledger)")
    p.add_argument("--dry-run", action="store_true", help="list what would be deleted, delete nothing")
    p.set_defaults(func=cmd_teardown)
    # Listed for --help; main() hands its arguments to the sandbox's parser.
    sub.add_parser("sandbox", help="start the vendor sandbox (campaign-assets sandbox --help)", add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["sandbox"]:  # its options belong to the sandbox's own parser
        from campaign_assets.sandbox.server import main as sandbox_main

        return sandbox_main(argv[1:])
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
