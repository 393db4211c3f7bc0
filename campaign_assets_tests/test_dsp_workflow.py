"""dsp_activation / read_back / go_live / teardown with the local backends,
and the pure budget logic behind them."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from campaign_assets.core.teardown import TeardownServices, execute_plan, plan_teardown
from campaign_assets.ledger import Ledger, Scope
from campaign_assets.logic.budgets import budget_mismatches, channel_budgets, compare_budgets
from campaign_assets.logic.media_plan import build_media_plan, plan_total_cents
from campaign_assets.services.amazon_dsp import AmazonDSPResource
from campaign_assets.services.dv360 import DV360Resource
from campaign_assets.services.trade_desk import TradeDeskResource
from campaign_assets.spec import load_spec
from campaign_assets.workflows import dsp as wf
from campaign_assets_tests.conftest import EXAMPLES, SEED

DSPS = {"amazon": AmazonDSPResource(), "trade_desk": TradeDeskResource(), "dv360": DV360Resource()}


def setup(tmp_path: Path):
    spec = load_spec(EXAMPLES / f"{SEED}.yaml")
    return spec, build_media_plan(spec), Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}"), tmp_path / "out"


def records(out: Path, service: str, kind: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((out / service / kind).glob("*.json"))]


def test_activate_twice_makes_one_paused_line_item_per_channel_at_the_plan_budget(tmp_path: Path) -> None:
    spec, plan, ledger, out = setup(tmp_path)
    first = asyncio.run(wf.activate_dsps(spec, plan, DSPS, ledger, out))
    second = asyncio.run(wf.activate_dsps(spec, plan, DSPS, ledger, out))
    assert [r.counts["created"] for r in first.reports] == [2, 2]
    assert [r.counts["reused"] for r in second.reports] == [2, 2] and second.value == first.value
    by_channel = {v["channel"]: v for v in first.value}
    assert {c: (v["dsp"], v["status"]) for c, v in by_channel.items()} == {
        "display": ("amazon", "paused"),
        "video": ("trade_desk", "paused"),
    }
    for channel, value in by_channel.items():
        rows = plan[plan["channel"] == channel]
        assert value["budget_cents"] == plan_total_cents(rows)
        assert (value["start"], value["end"]) == (rows["week_start"].min(), rows["week_end"].max())
    assert len(records(out, "amazon_dsp", "line-items")) == 1 and len(records(out, "trade_desk", "orders")) == 1
    rows = ledger.rows(Scope(spec.organization, spec.id, wf.ASSET))
    assert {k: r.service for k, r in rows.items()} == {
        "order:display": "amazon_dsp", "line-item:display": "amazon_dsp",
        "order:video": "trade_desk", "line-item:video": "trade_desk",
    }


def test_go_live_twice_goes_live_once_with_the_fingerprint(tmp_path: Path) -> None:
    spec, plan, ledger, out = setup(tmp_path)
    activation = asyncio.run(wf.activate_dsps(spec, plan, DSPS, ledger, out)).value
    first = asyncio.run(wf.go_live(spec, activation, "fp-1", DSPS, ledger, out))
    second = asyncio.run(wf.go_live(spec, activation, "fp-1", DSPS, ledger, out))
    assert first.reports[0].counts["created"] == 2 and second.reports[0].counts["reused"] == 2
    assert [c.stats.calls for c in second.clients] == [0, 0]  # no vendor call the second time
    assert {(v["status"], v["fingerprint"]) for v in first.value} == {("live", "fp-1")}
    assert [r["status"] for r in records(out, "amazon_dsp", "line-items")] == ["live"]


def test_read_back_sees_a_budget_changed_at_the_vendor(tmp_path: Path) -> None:
    spec, plan, ledger, out = setup(tmp_path)
    activation = asyncio.run(wf.activate_dsps(spec, plan, DSPS, ledger, out)).value
    clean = asyncio.run(wf.read_back(spec, plan, activation, DSPS, out))
    assert budget_mismatches(clean) == [] and {r["difference_cents"] for r in clean} == {0}

    (path,) = (out / "trade_desk" / "line-items").glob("*.json")
    record = json.loads(path.read_text())
    record["budget_cents"] += 1  # someone edited the ad group at the vendor
    path.write_text(json.dumps(record))
    changed = {r["channel"]: r for r in asyncio.run(wf.read_back(spec, plan, activation, DSPS, out))}
    assert changed["video"]["difference_cents"] == 1 and changed["display"]["difference_cents"] == 0
    assert len(budget_mismatches(changed.values())) == 1


def test_teardown_pauses_then_removes_line_items_then_orders(tmp_path: Path) -> None:
    spec, plan, ledger, out = setup(tmp_path)
    activation = asyncio.run(wf.activate_dsps(spec, plan, DSPS, ledger, out)).value
    asyncio.run(wf.go_live(spec, activation, "fp-1", DSPS, ledger, out))
    services = TeardownServices(
        docs=None, sheets=None, asana=None, canva=None, slack=None,  # type: ignore[arg-type]
        amazon_dsp=DSPS["amazon"], trade_desk=DSPS["trade_desk"], dv360=DSPS["dv360"],
        email=None, social=None, pages=None,  # type: ignore[arg-type]
    )
    plan_ = plan_teardown(spec.organization, spec.id, ledger.campaign_rows(spec.organization, spec.id))
    report = asyncio.run(execute_plan(plan_, ledger, services, out))
    assert report.ok
    stages = [(r.stage, r.item_key, r.outcome) for r in report.removals]
    assert [s for s, _, _ in stages] == ["dsp_go_live"] * 2 + ["dsp_activation"] * 2 + ["dsp_orders"] * 2
    assert {o for _, _, o in stages} == {"deleted"}
    assert records(out, "amazon_dsp", "line-items") == [] and records(out, "trade_desk", "orders") == []


@given(st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=5), st.integers(-500, 500))
def test_compare_budgets_reports_vendor_minus_plan(plans: list[int], delta: int) -> None:
    plan_cents = {f"c{i}": cents for i, cents in enumerate(plans)}
    vendor = [
        {"channel": c, "dsp": "dv360", "line_item_id": c, "vendor_cents": cents + delta, "vendor_status": "paused"}
        for c, cents in plan_cents.items()
    ]
    rows = compare_budgets(plan_cents, vendor)
    assert [r["difference_cents"] for r in rows] == [delta] * len(plans)
    assert len(budget_mismatches(rows)) == (len(plans) if delta else 0)
    missing = compare_budgets(plan_cents, [dict(vendor[0], vendor_cents=None, vendor_status=None)])
    assert missing[0]["vendor_status"] == "missing" and budget_mismatches(missing)


def test_channel_budgets_are_the_plan_to_the_cent() -> None:
    plan = pd.DataFrame(
        {"channel": ["a", "a", "b"], "week_start": ["2027-01-04", "2027-01-11", "2027-01-04"],
         "week_end": ["2027-01-10", "2027-01-12", "2027-01-10"], "budget": [0.1, 0.2, 100.05]}
    )
    (a, b) = channel_budgets(plan, {"a": "amazon", "b": "dv360"})
    assert (a.budget_cents, a.start, a.end) == (30, dt.date(2027, 1, 4), dt.date(2027, 1, 12))
    assert b.budget_cents == 10005
