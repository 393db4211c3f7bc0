"""dsp_activation and dsp_go_live: money is spent once, and only after approval.

Made by ``activate_dsps`` (asset ``dsp_activation``): per DSP channel of the
plan an order (ledger item ``order:<channel>``: an Amazon DSP order, a TTD
campaign, a DV360 insertion order) and one line item under it
(``line-item:<channel>``), created **paused** (draft), with the channel's
plan total to the cent and the plan's flight. ``read_back`` reads each line
item back from the vendor and compares it with the plan (the blocking check
before go-live). ``go_live`` (asset ``dsp_go_live``, downstream of the
approval gate) sets each line item live, exactly once (item ``live:<channel>``,
the approved fingerprint in its payload).

Each item is recorded under its DSP's own service (``amazon_dsp``,
``trade_desk``, ``dv360``), so a teardown deletes it through that client.
Torn down in reverse: live line items paused (stage ``dsp_go_live``), then
line items archived or deleted (``dsp_activation``), then orders
(``dsp_orders``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pandas as pd

from campaign_assets.core.items import Attempt, Item, ItemReport, ItemResult, VendorRef, locate, run_items
from campaign_assets.ledger import Ledger, LedgerRow
from campaign_assets.logic.budgets import ChannelBudget, channel_budgets, compare_budgets
from campaign_assets.services.base import ServiceResource
from campaign_assets.services.protocols import DSP
from campaign_assets.spec import CampaignSpec
from campaign_assets.workflows.common import Context, Outcome, Rule, Stage, deleted_by_id, scope_of

ASSET = "dsp_activation"
GO_LIVE = "dsp_go_live"
ORDER = "order:"
LINE = "line-item:"
LIVE = "live:"
REPORT_SERVICE = "dsp"  # the combined reports' label (items are recorded per DSP service)


def dsp_channels(spec: CampaignSpec) -> dict[str, str]:
    """Channel name -> DSP name (``amazon``, ``trade_desk``, ``dv360``), in spec order."""
    return {c.name: str(c.dsp) for c in spec.dsp_channels}


async def _sessions(stack: AsyncExitStack, dsps: Mapping[str, ServiceResource], names: Iterable[str], out: Path) -> dict[str, Any]:
    clients: dict[str, Any] = {}
    for name in sorted(set(names)):
        if name not in dsps:
            raise KeyError(f"no resource for DSP {name!r} (have: {', '.join(sorted(dsps))})")
        clients[name] = await stack.enter_async_context(dsps[name].session(out))
    return clients


def _by_dsp(lines: Iterable[Any], dsp_of: Callable[[Any], str]) -> dict[str, list[Any]]:
    groups: dict[str, list[Any]] = {}
    for line in lines:
        groups.setdefault(dsp_of(line), []).append(line)
    return groups


def _combined(reports: Iterable[ItemReport]) -> ItemReport:
    return ItemReport(REPORT_SERVICE, tuple(r for report in reports for r in report.results))


# ---- activation ----------------------------------------------------------------------
async def activate_dsps(
    spec: CampaignSpec, plan: pd.DataFrame, dsps: Mapping[str, ServiceResource], ledger: Ledger, out: Path
) -> Outcome:
    """Per DSP channel an order and a paused line item (see the module doc).
    Value: one dict per line item {channel, dsp, order_id, line_item_id,
    budget_cents, currency, start, end, status, url}."""
    budgets = channel_budgets(plan, dsp_channels(spec))
    currency = spec.budget.currency
    scope = scope_of(spec, ASSET)

    async def one_dsp(dsp: str, client: DSP, lines: list[ChannelBudget]) -> tuple[ItemReport, ItemReport]:
        service = dsps[dsp].SERVICE
        by_channel = {b.channel: b for b in lines}

        def content(b: ChannelBudget) -> dict[str, Any]:
            return {"dsp": b.dsp, "budget_cents": b.budget_cents, "currency": currency,
                    "start": b.start.isoformat(), "end": b.end.isoformat()}

        def title(b: ChannelBudget) -> str:
            return f"{spec.name} — {b.channel}"

        async def create_order(item: Item, attempt: Attempt) -> VendorRef:
            b = by_channel[item.key.removeprefix(ORDER)]
            order = await attempt.adopt_or_create(
                lambda marker: client.find_order(marker=marker),
                lambda marker: client.create_order(title(b), b.budget_cents, currency, b.start, b.end, marker=marker),
            )
            return VendorRef(order.order_id, order.url, {"channel": b.channel, "dsp": dsp, "order_id": order.order_id})

        orders = await run_items(
            ledger, scope, service, [Item(f"{ORDER}{b.channel}", content(b)) for b in lines], create=create_order
        )

        async def create_line(item: Item, attempt: Attempt) -> VendorRef:
            b = by_channel[item.key.removeprefix(LINE)]
            order_ref = orders.ref(f"{ORDER}{b.channel}")
            assert order_ref is not None
            order_id = order_ref.vendor_id
            line = await attempt.adopt_or_create(
                lambda marker: client.find_line_item(order_id, marker=marker),
                lambda marker: client.create_line_item(
                    order_id, title(b), b.budget_cents, currency, b.start, b.end, marker=marker
                ),
            )
            data = {
                "channel": b.channel, "dsp": dsp, "order_id": order_id, "line_item_id": line.line_item_id,
                "budget_cents": line.budget_cents, "currency": currency, "start": line.start.isoformat(),
                "end": line.end.isoformat(), "status": line.status,
            }
            return VendorRef(line.line_item_id, line.url, data)

        ready = [b for b in lines if orders.ref(f"{ORDER}{b.channel}") is not None]
        made = await run_items(
            ledger, scope, service, [Item(f"{LINE}{b.channel}", content(b)) for b in ready], create=create_line
        )
        blocked = tuple(
            ItemResult(f"{LINE}{b.channel}", "failed", error=f"its order failed: {dict(orders.failures).get(f'{ORDER}{b.channel}')}")
            for b in lines
            if b not in ready
        )
        return ItemReport(service, made.results + blocked), orders

    async with AsyncExitStack() as stack:
        clients = await _sessions(stack, dsps, (b.dsp for b in budgets), out)
        groups = _by_dsp(budgets, lambda b: b.dsp)
        done = await asyncio.gather(*(one_dsp(dsp, clients[dsp], lines) for dsp, lines in groups.items()))
    line_report = _combined(lines for lines, _ in done)
    order_report = _combined(orders for _, orders in done)
    order_of = {b.channel: i for i, b in enumerate(budgets)}
    value = sorted(
        (dict(r.ref.data, url=r.ref.url) for r in line_report.succeeded if r.ref),
        key=lambda d: order_of[d["channel"]],
    )
    return Outcome(value, [line_report, order_report], list(clients.values()))


# ---- the read-back before go-live -----------------------------------------------------
async def read_back(
    spec: CampaignSpec,
    plan: pd.DataFrame,
    activation: list[dict[str, Any]],
    dsps: Mapping[str, ServiceResource],
    out: Path,
) -> list[dict[str, Any]]:
    """Each activated line item's budget and status as the *vendor* has them,
    against the plan: {channel, dsp, line_item_id, plan_cents, vendor_cents,
    difference_cents, vendor_status} (vendor_cents None: not found)."""
    plan_cents = {b.channel: b.budget_cents for b in channel_budgets(plan, dsp_channels(spec))}
    async with AsyncExitStack() as stack:
        clients = await _sessions(stack, dsps, (a["dsp"] for a in activation), out)

        async def one(entry: Mapping[str, Any]) -> dict[str, Any]:
            line = await clients[entry["dsp"]].get_line_item(entry["line_item_id"])
            return {
                "channel": entry["channel"],
                "dsp": entry["dsp"],
                "line_item_id": entry["line_item_id"],
                "vendor_cents": line.budget_cents if line else None,
                "vendor_status": line.status if line else None,
            }

        vendor = await asyncio.gather(*(one(a) for a in activation))
    return compare_budgets(plan_cents, vendor)


# ---- go-live ---------------------------------------------------------------------------
async def go_live(
    spec: CampaignSpec,
    activation: list[dict[str, Any]],
    fingerprint: str,
    dsps: Mapping[str, ServiceResource],
    ledger: Ledger,
    out: Path,
) -> Outcome:
    """Set every activated line item live, exactly once (ledger items
    ``live:<channel>`` of asset ``dsp_go_live``; a second call reuses them).
    Only the caller knows the approval: it passes the approved ``fingerprint``,
    which each item's payload keeps. Value: [{channel, dsp, line_item_id,
    status, fingerprint}]."""
    if not fingerprint:
        raise ValueError("go_live needs the approved fingerprint")
    scope = scope_of(spec, GO_LIVE)
    async with AsyncExitStack() as stack:
        clients = await _sessions(stack, dsps, (a["dsp"] for a in activation), out)

        async def one_dsp(dsp: str, entries: list[dict[str, Any]]) -> ItemReport:
            by_key = {f"{LIVE}{e['channel']}": e for e in entries}

            async def create(item: Item, attempt: Attempt) -> VendorRef:
                entry = by_key[item.key]
                line = await clients[dsp].set_status(entry["line_item_id"], "live")  # idempotent
                data = {"channel": entry["channel"], "dsp": dsp, "line_item_id": line.line_item_id,
                        "status": line.status, "fingerprint": fingerprint}
                return VendorRef(line.line_item_id, line.url, data)

            items = [Item(key, {"line_item_id": e["line_item_id"], "fingerprint": fingerprint}) for key, e in by_key.items()]
            return await run_items(ledger, scope, dsps[dsp].SERVICE, items, create=create)

        groups = _by_dsp(activation, lambda a: a["dsp"])
        reports = await asyncio.gather(*(one_dsp(dsp, entries) for dsp, entries in groups.items()))
    report = _combined(reports)
    order_of = {a["channel"]: i for i, a in enumerate(activation)}
    value = sorted((dict(r.ref.data) for r in report.succeeded if r.ref), key=lambda d: order_of[d["channel"]])
    return Outcome(value, [report], list(clients.values()))


# ---- teardown ----------------------------------------------------------------------------
async def _pause(dsp: DSP, row: LedgerRow, ctx: Context) -> bool:
    """A live line item back to paused; False when it is not live (or gone)."""
    if not row.vendor_id:
        return False
    line = await dsp.get_line_item(row.vendor_id)
    if line is None or line.status != "live":
        return False
    await dsp.set_status(row.vendor_id, "paused")
    return True


async def _remove_line_item(dsp: DSP, row: LedgerRow, ctx: Context) -> bool:
    order_id = ctx.vendor_id(ASSET, f"{ORDER}{row.item_key.removeprefix(LINE)}")

    async def by_marker(marker: str) -> str | None:
        if not order_id:
            return None
        return getattr(await dsp.find_line_item(order_id, marker=marker), "line_item_id", None)

    return await deleted_by_id(dsp.delete_line_item, await locate(row, by_marker))


async def _remove_order(dsp: DSP, row: LedgerRow, ctx: Context) -> bool:
    async def by_marker(marker: str) -> str | None:
        return getattr(await dsp.find_order(marker=marker), "order_id", None)

    return await deleted_by_id(dsp.delete_order, await locate(row, by_marker))


def _rule(delete: Callable[[DSP, LedgerRow, Context], Awaitable[bool]], prefix: str) -> Rule:
    # by_row: each row is deleted through its own DSP's client (the row's service).
    return Rule("dsp", delete, prefix, by_row=True)


# In the order the graph makes them; the teardown walks them in reverse.
STAGES = (
    Stage("dsp_orders", ASSET, (_rule(_remove_order, ORDER),)),
    Stage(ASSET, ASSET, (_rule(_remove_line_item, LINE),)),
    Stage(GO_LIVE, GO_LIVE, (_rule(_pause, LIVE),)),
)
