"""dsp_activation: one paused line item per channel bought programmatically.

Made: one ledger item ``line-item:<channel>`` (dsp) per DSP channel of the
plan. Torn down: each line item, by its recorded id, else found by marker.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from campaign_assets.core.items import Attempt, Item, VendorRef, locate, run_items
from campaign_assets.ledger import Ledger, LedgerRow
from campaign_assets.services.dsp import DSPResource
from campaign_assets.services.protocols import DSP
from campaign_assets.spec import CampaignSpec
from campaign_assets.workflows.common import Context, Outcome, Rule, Stage, deleted_by_id, scope_of

ASSET = "dsp_activation"
PREFIX = "line-item:"


async def activate_dsps(
    spec: CampaignSpec, plan: pd.DataFrame, dsp: DSPResource, ledger: Ledger, out: Path
) -> Outcome:
    flights = {
        channel.name: plan[plan["channel"] == channel.name][["week_start", "week_end", "budget"]].to_dict("records")
        for channel in spec.dsp_channels
    }
    by_key = {f"{PREFIX}{c.name}": c for c in spec.dsp_channels}
    async with dsp.session(out) as client:

        async def create(item: Item, attempt: Attempt) -> VendorRef:
            channel = by_key[item.key]
            name = f"{spec.name} — {channel.name}"
            line = await attempt.adopt_or_create(
                lambda marker: client.find_line_item(marker=marker),
                lambda marker: client.create_line_item(channel.dsp, name, flights[channel.name], marker=marker),
            )
            budget = round(sum(f["budget"] for f in flights[channel.name]), 2)
            return VendorRef(line.line_item_id, line.url, {"dsp": line.dsp, "channel": channel.name, "budget": budget})

        async def update(item: Item, ref: VendorRef, attempt: Attempt) -> VendorRef:
            return await create(item, Attempt(attempt.marker, recovering=False))

        items = [Item(key, {"dsp": c.dsp, "flights": flights[c.name]}) for key, c in by_key.items()]
        report = await run_items(ledger, scope_of(spec, ASSET), "dsp", items, create=create, update=update)
    value = [dict(r.ref.data, line_item_id=r.ref.vendor_id, url=r.ref.url) for r in report.succeeded if r.ref]
    return Outcome(value, [report], [client])


async def _delete_line_item(dsp: DSP, row: LedgerRow, ctx: Context) -> bool:
    found = await locate(row, lambda marker: _line_item_id(dsp, marker))
    return await deleted_by_id(dsp.delete_line_item, found)


async def _line_item_id(dsp: DSP, marker: str) -> str | None:
    return getattr(await dsp.find_line_item(marker=marker), "line_item_id", None)


STAGES = (Stage(ASSET, ASSET, (Rule("dsp", _delete_line_item, PREFIX),)),)
