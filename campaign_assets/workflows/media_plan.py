"""media_plan: the plan (a DataFrame made by the asset) published as a Google Sheet.

Made: one ledger item ``spreadsheet`` (sheets), written on a fixed range.
Torn down: the spreadsheet, by its recorded id (no marker lookup: without an
id the row is left for a person); a local one (``fallback``) through the
local backend.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pandas as pd

from campaign_assets.core.errors import ServiceError
from campaign_assets.core.items import Attempt, Item, VendorRef, run_items
from campaign_assets.ledger import Ledger, LedgerRow
from campaign_assets.logic.media_plan import plan_values
from campaign_assets.services.protocols import Sheets
from campaign_assets.services.sheets import SheetRef, SheetsResource, a1_range_for
from campaign_assets.spec import CampaignSpec
from campaign_assets.workflows.common import Context, Outcome, Rule, Stage, clients, delete_recorded, scope_of

ASSET = "media_plan"


async def publish_media_plan(
    spec: CampaignSpec, plan: pd.DataFrame, sheets: SheetsResource, ledger: Ledger, out: Path
) -> Outcome:
    title = f"{spec.name} — Media Plan"
    values = plan_values(plan)
    item = Item("spreadsheet", {"title": title, "values": values})

    async def write(client: Sheets, sheet: SheetRef, previous_rows: int) -> VendorRef:
        # A fixed range, never append: pad with blanks to clear rows a
        # longer earlier plan left behind.
        rows = values + [[""] * len(values[0])] * max(0, previous_rows - len(values))
        await client.update_values(sheet, a1_range_for(rows), rows)
        return VendorRef(sheet.spreadsheet_id, sheet.url, {"title": title, "rows": len(rows)})

    def publishing(client: Sheets) -> Callable[[Item, Attempt], Awaitable[VendorRef]]:
        async def create(item: Item, attempt: Attempt) -> VendorRef:
            titled = f"{title} {attempt.marker}"
            sheet = await attempt.adopt_or_create(
                lambda _marker: client.find_spreadsheet(titled, name="media_plan"),
                lambda _marker: client.create_spreadsheet(titled, name="media_plan"),
            )
            return await write(client, sheet, 0)

        return create

    async with clients(out, sheets) as (live, local):
        (client,) = live

        async def update(item: Item, ref: VendorRef, attempt: Attempt) -> VendorRef:
            return await write(client, SheetRef(ref.vendor_id, title, ref.url or ""), int(ref.data.get("rows", 0)))

        report = await run_items(
            ledger, scope_of(spec, ASSET), "sheets", [item],
            create=publishing(client), update=update, fallback=local and publishing(*local), fallback_on=ServiceError,
        )
    ref = report.ref("spreadsheet")
    return Outcome(plan, [report], live, {"spreadsheet_url": ref and ref.url})


async def _delete_spreadsheet(sheets: Sheets, row: LedgerRow, ctx: Context) -> bool:
    return await delete_recorded(sheets.delete_spreadsheet, row)


STAGES = (Stage(ASSET, ASSET, (Rule("sheets", _delete_spreadsheet),)),)
