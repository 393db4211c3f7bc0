"""dsp_activation and dsp_go_live: money is spent once, and only after approval.

Made by ``activate_dsps`` (asset ``dsp_activation``): per DSP channel of the
plan an order (ledger item ``order:<channel>``: an Amazon DSP order, a TTD
campaign, a DV360 insertion order) and one line item under it
(``line-item:<channel>``), created **paused** (draft), with the channel's
plan total to the cent and the plan's flight. ``read_back`` reads each line
item back from the vendor and compares it with the plan (the blocking check
before go-live). ``go_live`` (asset ``dsp_go_live``, downstream of the
approval gate) sets each order live and then its line item, exactly once each
(items ``live-order:<channel>`` then ``live:<channel>``, the approved
fingerprint in their payloads): a line item under an order that is not live
(a DV360 insertion order still in DRAFT, an inactive Amazon order) does not
serve, and a line item whose order failed to go live is not set live.

A plan change after activation (a new budget or flight for a channel):

- while the line item is **paused**, ``activate_dsps`` updates it at the
  vendor (its order's budget and flight first when the budget grows, last
  when it shrinks): idempotent writes of absolute values, recorded as
  ``updated``. The same happens when a retry adopts (by marker) a paused line
  item that does not match the plan.
- a **live** line item is never changed by activation: that would change
  spend without approval. It is *held*: the item is recorded ``failed`` with
  the reason ``HeldLive: ...`` (the ledger keeps its vendor id and the
  payload of what we last set), the ``all_line_items_created`` check warns,
  and the line item stays in the asset's value (with ``held``: the reason),
  so go-live can still find it. Each activation re-checks it (one read) until
  the vendor matches the plan.

The budget rule at go-live (``apply_approved_budgets``, run by ``dsp_go_live``
after the approval, **before** the blocking read-back): for each activated
line item whose budget or flight at the vendor differs from the approved
plan, the approved plan is applied (``apply_order_budget`` and
``apply_budget``, ledger item ``budget:<channel>`` of ``dsp_go_live``,
exactly once per approved budget and fingerprint) **only when the ledger says
we set the vendor's current values ourselves**: the vendor's (budget, start,
end) equals what the activation item's payload or an earlier ``budget:`` item
recorded for that line item. Then the difference is ours, from an older plan,
and the new approval covers replacing it. Any other difference (someone
changed the budget in the DSP's own UI) is left alone, so the blocking
read-back check sees it and stops go-live with the numbers. Archived or
missing line items are left to the read-back too.

Each item is recorded under its DSP's own service (``amazon_dsp``,
``trade_desk``, ``dv360``), so a teardown deletes it through that client.
Torn down in reverse: live line items paused (stage ``dsp_go_live``; the
``budget:`` rows need no vendor call), then live orders paused
(``dsp_go_live_orders``), then line items archived or deleted
(``dsp_activation``), then orders (``dsp_orders``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pandas as pd

from campaign_assets.core.items import Attempt, Item, ItemReport, ItemResult, VendorRef, locate, run_items
from campaign_assets.ledger import Ledger, LedgerRow
from campaign_assets.logic.budgets import ChannelBudget, channel_budgets, compare_budgets
from campaign_assets.services.base import ServiceResource
from campaign_assets.services.dsp import LineItem
from campaign_assets.services.http import PermanentVendorError
from campaign_assets.services.protocols import DSP
from campaign_assets.spec import CampaignSpec
from campaign_assets.workflows.common import Context, Outcome, Rule, Stage, deleted_by_id, scope_of

ASSET = "dsp_activation"
GO_LIVE = "dsp_go_live"
ORDER = "order:"
LINE = "line-item:"
LIVE = "live:"
LIVE_ORDER = "live-order:"
BUDGET = "budget:"
HELD = "HeldLive:"  # how a held line item's failure reads (describe_error: "<class>: <message>")
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


# ---- budgets, shared by activation and go-live -----------------------------------------
class HeldLive(Exception):
    """A live line item whose plan changed: activation leaves it as it is (a
    change would change spend without approval); go-live applies the plan
    after the next approval."""


def _values(line: LineItem) -> tuple[int, dt.date, dt.date]:
    return (line.budget_cents, line.start, line.end)


def _planned(b: ChannelBudget) -> tuple[int, dt.date, dt.date]:
    return (b.budget_cents, b.start, b.end)


async def _apply(client: DSP, order_id: str, line: LineItem, b: ChannelBudget, currency: str) -> LineItem:
    """The plan's budget and flight on the order and its line item. A growing
    budget goes to the order first (its cap), a shrinking one last, so the line
    item never holds more than its order at any point."""
    grows = b.budget_cents >= line.budget_cents
    if grows:
        await client.apply_order_budget(order_id, b.budget_cents, currency, b.start, b.end)
    applied = await client.apply_budget(line.line_item_id, b.budget_cents, currency, b.start, b.end)
    if not grows:
        await client.apply_order_budget(order_id, b.budget_cents, currency, b.start, b.end)
    return applied


# ---- activation ----------------------------------------------------------------------
async def activate_dsps(
    spec: CampaignSpec, plan: pd.DataFrame, dsps: Mapping[str, ServiceResource], ledger: Ledger, out: Path
) -> Outcome:
    """Per DSP channel an order and a paused line item (see the module doc),
    brought to the current plan while paused, held while live. Value: one dict
    per line item {channel, dsp, order_id, line_item_id, budget_cents,
    currency, start, end, status, url} (plus ``held``: the reason, for a live
    line item the plan no longer matches)."""
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

        # Orders are not updated on their own: a plan change reaches an order
        # through its line item's update (below), under the same paused/live rule.
        orders = await run_items(
            ledger, scope, service, [Item(f"{ORDER}{b.channel}", content(b)) for b in lines], create=create_order
        )

        async def settle(order_id: str, line: LineItem, b: ChannelBudget) -> LineItem:
            """``line`` at the plan: as it is, updated while paused, held while live."""
            if _values(line) == _planned(b):
                return line
            if line.status == "live":
                raise HeldLive(
                    f"line item {line.line_item_id} is live at {line.budget_cents} cents "
                    f"({line.start}..{line.end}); the plan's {b.budget_cents} cents ({b.start}..{b.end}) is held "
                    "until approved: dsp_go_live applies it after the next approval"
                )
            if line.status == "archived":
                raise ValueError(f"line item {line.line_item_id} is archived at the DSP: it cannot take the new plan")
            return await _apply(client, order_id, line, b, currency)

        def line_ref(b: ChannelBudget, order_id: str, line: LineItem) -> VendorRef:
            data = {
                "channel": b.channel, "dsp": dsp, "order_id": order_id, "line_item_id": line.line_item_id,
                "budget_cents": line.budget_cents, "currency": currency, "start": line.start.isoformat(),
                "end": line.end.isoformat(), "status": line.status,
            }
            return VendorRef(line.line_item_id, line.url, data)

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
            return line_ref(b, order_id, await settle(order_id, line, b))  # an adopted line item may predate the plan

        async def update_line(item: Item, ref: VendorRef, attempt: Attempt) -> VendorRef:
            b = by_channel[item.key.removeprefix(LINE)]
            order_id = str(ref.data.get("order_id") or "")
            line = await client.get_line_item(ref.vendor_id)
            if line is None:
                raise LookupError(f"line item {ref.vendor_id} was not found at the DSP")
            return line_ref(b, order_id, await settle(order_id, line, b))

        ready = [b for b in lines if orders.ref(f"{ORDER}{b.channel}") is not None]
        made = await run_items(
            ledger, scope, service, [Item(f"{LINE}{b.channel}", content(b)) for b in ready],
            create=create_line, update=update_line,
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
    rows = await asyncio.to_thread(ledger.rows, scope)
    entries = [dict(r.ref.data, url=r.ref.url) for r in line_report.succeeded if r.ref]
    for result in line_report.results:  # a held line item stays in the value: go-live needs it
        row = rows.get(result.key)
        if result.action == "failed" and (result.error or "").startswith(HELD) and row and row.payload.get("line_item_id"):
            entries.append(dict(row.payload, url=row.url, status="live", held=result.error))
    order_of = {b.channel: i for i, b in enumerate(budgets)}
    value = sorted(entries, key=lambda d: order_of[d["channel"]])
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
def _ours(entry: Mapping[str, Any], *rows: LedgerRow | None) -> set[tuple[int, dt.date, dt.date]]:
    """The (budget, start, end) values the ledger says we set on ``entry``'s line item."""
    found = set()
    for row in rows:
        data = row.payload if row is not None and row.status != "deleted" else {}
        if data.get("line_item_id") == entry["line_item_id"] and data.get("budget_cents") is not None:
            found.add((int(data["budget_cents"]), dt.date.fromisoformat(data["start"]), dt.date.fromisoformat(data["end"])))
    return found


async def apply_approved_budgets(
    spec: CampaignSpec,
    plan: pd.DataFrame,
    activation: list[dict[str, Any]],
    fingerprint: str,
    dsps: Mapping[str, ServiceResource],
    ledger: Ledger,
    out: Path,
) -> Outcome:
    """After an approval, before the read-back: the approved plan's budget and
    flight on each line item (and its order) that differs **only by our own
    earlier values** (the rule is in the module doc), exactly once per approved
    budget (ledger items ``budget:<channel>`` of ``dsp_go_live``). A difference
    the ledger does not explain is left for the blocking read-back check.
    Value: [{channel, dsp, line_item_id, order_id, budget_cents, start, end,
    previous_cents, fingerprint}] of what was applied now or before."""
    if not fingerprint:
        raise ValueError("apply_approved_budgets needs the approved fingerprint")
    budgets = {b.channel: b for b in channel_budgets(plan, dsp_channels(spec))}
    currency = spec.budget.currency
    scope = scope_of(spec, GO_LIVE)
    activated = await asyncio.to_thread(ledger.rows, scope_of(spec, ASSET))
    applied_before = await asyncio.to_thread(ledger.rows, scope)
    async with AsyncExitStack() as stack:
        clients = await _sessions(stack, dsps, (a["dsp"] for a in activation), out)

        async def differs_by_us(entry: dict[str, Any]) -> tuple[dict[str, Any], LineItem] | None:
            b = budgets.get(entry["channel"])
            if b is None:
                return None
            line = await clients[entry["dsp"]].get_line_item(entry["line_item_id"])
            if line is None or line.status == "archived" or _values(line) == _planned(b):
                return None
            ours = _ours(entry, activated.get(f"{LINE}{b.channel}"), applied_before.get(f"{BUDGET}{b.channel}"))
            return (entry, line) if _values(line) in ours else None

        due = [d for d in await asyncio.gather(*(differs_by_us(e) for e in activation)) if d is not None]

        async def one_dsp(dsp: str, pairs: list[tuple[dict[str, Any], LineItem]]) -> ItemReport:
            by_key = {f"{BUDGET}{entry['channel']}": (entry, line) for entry, line in pairs}

            async def apply(item: Item, attempt: Attempt) -> VendorRef:
                entry, line = by_key[item.key]
                b = budgets[entry["channel"]]
                done = await _apply(clients[dsp], entry["order_id"], line, b, currency)
                data = {
                    "channel": b.channel, "dsp": dsp, "line_item_id": done.line_item_id, "order_id": entry["order_id"],
                    "budget_cents": done.budget_cents, "start": done.start.isoformat(), "end": done.end.isoformat(),
                    "previous_cents": line.budget_cents, "fingerprint": fingerprint,
                }
                return VendorRef(done.line_item_id, done.url, data)

            async def reapply(item: Item, ref: VendorRef, attempt: Attempt) -> VendorRef:
                return await apply(item, attempt)  # absolute values: idempotent

            def content(entry: Mapping[str, Any]) -> dict[str, Any]:
                b = budgets[entry["channel"]]
                return {"line_item_id": entry["line_item_id"], "budget_cents": b.budget_cents, "currency": currency,
                        "start": b.start.isoformat(), "end": b.end.isoformat(), "fingerprint": fingerprint}

            items = [Item(key, content(entry)) for key, (entry, _) in by_key.items()]
            return await run_items(ledger, scope, dsps[dsp].SERVICE, items, create=apply, update=reapply)

        groups = _by_dsp(due, lambda pair: pair[0]["dsp"])
        reports = await asyncio.gather(*(one_dsp(dsp, pairs) for dsp, pairs in groups.items()))
    report = _combined(reports)
    return Outcome([dict(r.ref.data) for r in report.succeeded if r.ref], [report], list(clients.values()))


async def go_live(
    spec: CampaignSpec,
    activation: list[dict[str, Any]],
    fingerprint: str,
    dsps: Mapping[str, ServiceResource],
    ledger: Ledger,
    out: Path,
) -> Outcome:
    """Set every activated order live, then its line item, exactly once each
    (ledger items ``live-order:<channel>`` then ``live:<channel>`` of asset
    ``dsp_go_live``; a second call reuses them). A line item whose order did
    not go live is not set live (failed: "its order did not go live").
    Only the caller knows the approval: it passes the approved ``fingerprint``,
    which each item's payload keeps. Value: [{channel, dsp, line_item_id,
    status, fingerprint}]. Reports: line items, then orders."""
    if not fingerprint:
        raise ValueError("go_live needs the approved fingerprint")
    scope = scope_of(spec, GO_LIVE)
    async with AsyncExitStack() as stack:
        clients = await _sessions(stack, dsps, (a["dsp"] for a in activation), out)

        async def one_dsp(dsp: str, entries: list[dict[str, Any]]) -> tuple[ItemReport, ItemReport]:
            client, service = clients[dsp], dsps[dsp].SERVICE
            by_channel = {e["channel"]: e for e in entries}

            async def order_live(item: Item, attempt: Attempt) -> VendorRef:
                entry = by_channel[item.key.removeprefix(LIVE_ORDER)]
                order = await client.set_order_status(entry["order_id"], "live")  # idempotent
                data = {"channel": entry["channel"], "dsp": dsp, "order_id": order.order_id,
                        "status": order.status, "fingerprint": fingerprint}
                return VendorRef(order.order_id, order.url, data)

            order_items = [
                Item(f"{LIVE_ORDER}{c}", {"order_id": e["order_id"], "fingerprint": fingerprint}) for c, e in by_channel.items()
            ]
            orders = await run_items(ledger, scope, service, order_items, create=order_live)

            async def line_live(item: Item, attempt: Attempt) -> VendorRef:
                entry = by_channel[item.key.removeprefix(LIVE)]
                line = await client.set_status(entry["line_item_id"], "live")  # idempotent
                data = {"channel": entry["channel"], "dsp": dsp, "line_item_id": line.line_item_id,
                        "status": line.status, "fingerprint": fingerprint}
                return VendorRef(line.line_item_id, line.url, data)

            ready = [c for c in by_channel if orders.ref(f"{LIVE_ORDER}{c}") is not None]
            line_items = [
                Item(f"{LIVE}{c}", {"line_item_id": by_channel[c]["line_item_id"], "fingerprint": fingerprint}) for c in ready
            ]
            lines = await run_items(ledger, scope, service, line_items, create=line_live)
            failed_orders = dict(orders.failures)
            blocked = tuple(
                ItemResult(f"{LIVE}{c}", "failed", error=f"its order did not go live: {failed_orders.get(f'{LIVE_ORDER}{c}')}")
                for c in by_channel
                if c not in ready
            )
            return ItemReport(service, lines.results + blocked), orders

        groups = _by_dsp(activation, lambda a: a["dsp"])
        done = await asyncio.gather(*(one_dsp(dsp, entries) for dsp, entries in groups.items()))
    line_report = _combined(lines for lines, _ in done)
    order_report = _combined(orders for _, orders in done)
    order_of = {a["channel"]: i for i, a in enumerate(activation)}
    value = sorted((dict(r.ref.data) for r in line_report.succeeded if r.ref), key=lambda d: order_of[d["channel"]])
    return Outcome(value, [line_report, order_report], list(clients.values()))


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


async def _pause_order(dsp: DSP, row: LedgerRow, ctx: Context) -> bool:
    """An order we set live back to paused; False when it is gone, or when the
    DSP has no order-level pause (a TTD campaign: its ad groups paused)."""
    if not row.vendor_id:
        return False
    try:
        order = await dsp.set_order_status(row.vendor_id, "paused")
    except LookupError:
        return False
    except PermanentVendorError as error:
        if error.status_code == 404:
            return False
        raise
    return order.status == "paused"


async def _budget_applied(dsp: Any, row: LedgerRow, ctx: Context) -> bool:
    """A budget we applied is no vendor object of its own: it goes with its line item."""
    return False


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


# In the order the graph makes them; the teardown walks them in reverse: live line
# items paused, then live orders paused, then line items removed, then orders.
STAGES = (
    Stage("dsp_orders", ASSET, (_rule(_remove_order, ORDER),)),
    Stage(ASSET, ASSET, (_rule(_remove_line_item, LINE),)),
    Stage("dsp_go_live_orders", GO_LIVE, (_rule(_pause_order, LIVE_ORDER),)),
    Stage(GO_LIVE, GO_LIVE, (_rule(_pause, LIVE), Rule(None, _budget_applied, BUDGET))),
)
