"""content_pieces and content_library: the LLM's pieces per vector and content
type, and their rows in the vault.

Made: one ``content_pieces`` item per (stakeholder group, content type)
(llm), written to ``content/<key>.md``; one ``content_library`` item per
piece, its vault row written with its ledger and audit rows.

Torn down: the library first (the vault row goes with ``Ledger.mark_deleted``;
nothing outside), then each piece's ``content/<key>.md``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from campaign_assets.core.items import Attempt, Item, VendorRef, run_items
from campaign_assets.ledger import Ledger, LedgerRow, vault_folder
from campaign_assets.logic.markdown import first_line_title, section
from campaign_assets.logic.prompts import content_request
from campaign_assets.services.llm import LLMResource
from campaign_assets.services.local import inside, unlink, write_text
from campaign_assets.services.protocols import LLM
from campaign_assets.spec import CampaignSpec, slugify
from campaign_assets.workflows.common import Context, Outcome, Rule, Stage, clients, scope_of

PIECES = "content_pieces"
LIBRARY = "content_library"


def piece_key(group: str, content_type: str) -> str:
    return f"{slugify(group)}--{content_type}"


def piece_path(folder: Path, key: str) -> Path:
    return folder / "content" / f"{key}.md"


async def write_content(spec: CampaignSpec, brief: dict[str, Any], llm: LLMResource, ledger: Ledger, out: Path) -> Outcome:
    excerpt = section(brief["markdown"], "Key Messages") or brief["markdown"][:1500]
    requests = {
        piece_key(v.stakeholder_group, ct): (v, ct, content_request(spec, v, ct, excerpt)) for v, ct in spec.content_matrix()
    }

    def writing(writer: LLM) -> Callable[[Item, Attempt], Awaitable[VendorRef]]:
        async def create(item: Item, attempt: Attempt) -> VendorRef:
            vector, content_type, request = requests[item.key]
            body = (await writer.complete(request)).text
            path = write_text(piece_path(out, item.key), body)
            title = first_line_title(body, f"{vector.stakeholder_group} {content_type}")
            data = dict(
                key=item.key, stakeholder_group=vector.stakeholder_group, content_type=content_type, title=title, body=body
            )
            return VendorRef(f"piece:{item.key}", path.as_uri(), data)

        return create

    async with clients(out, llm) as (live, local):
        create = writing(*live)

        async def update(item: Item, ref: VendorRef, attempt: Attempt) -> VendorRef:
            return await create(item, attempt)

        items = [Item(key, {"system": r.system, "prompt": r.prompt}) for key, (_, _, r) in requests.items()]
        report = await run_items(
            ledger, scope_of(spec, PIECES), "llm", items,
            create=create, update=update, fallback=local and writing(*local),
        )
    value = [dict(r.ref.data) for r in report.succeeded if r.ref]
    return Outcome(value, [report], live)


async def store_library(spec: CampaignSpec, pieces: list[dict[str, Any]], ledger: Ledger) -> Outcome:
    """One vault row per piece, written with its ledger and audit rows."""
    by_key = {p["key"]: p for p in pieces}
    timings = {v.stakeholder_group: v.timing for v in spec.vectors}

    async def create(item: Item, attempt: Attempt) -> VendorRef:
        return VendorRef(f"vault:{item.key}", None, {"title": by_key[item.key]["title"]})

    async def update(item: Item, ref: VendorRef, attempt: Attempt) -> VendorRef:
        return await create(item, attempt)

    def library_row(item: Item, ref: VendorRef) -> dict[str, Any]:
        p = by_key[item.key]
        return dict(
            piece_key=item.key,
            stakeholder_group=p["stakeholder_group"],
            content_type=p["content_type"],
            title=p["title"],
            body=p["body"],
            content_hash=item.content_hash,
            folder=vault_folder(spec.pattern, p["stakeholder_group"]),
            vector=p["stakeholder_group"],
            timing=timings.get(p["stakeholder_group"], ""),
            source=PIECES,
            auto_generated=True,
            status="draft",
        )

    # The folder is part of the content: a pattern change refiles the rows.
    items = [
        Item(p["key"], {"title": p["title"], "body": p["body"], "folder": vault_folder(spec.pattern, p["stakeholder_group"])})
        for p in pieces
    ]
    report = await run_items(
        ledger, scope_of(spec, LIBRARY), "vault", items, create=create, update=update, library_row=library_row
    )
    # Rows written before the vault had folders: filed under this campaign's pattern.
    await asyncio.to_thread(ledger.backfill_library, spec.organization, spec.id, spec.pattern)
    stored = {row["piece_key"] for row in ledger.library(spec.organization, spec.id)}
    value = {"pieces": sorted(stored & set(by_key)), "expected": len(spec.content_matrix())}
    return Outcome(value, [report], [])


async def _delete_piece(_client: None, row: LedgerRow, ctx: Context) -> bool:
    return unlink(inside(ctx.folder, "content", f"{row.item_key}.md"))


async def _library_row(_client: None, row: LedgerRow, ctx: Context) -> bool:
    return True  # the vault row goes with Ledger.mark_deleted


# Made in this order (pieces, then the library that stores them); torn down in reverse.
STAGES = (
    Stage(PIECES, PIECES, (Rule(None, _delete_piece),)),
    Stage(LIBRARY, LIBRARY, (Rule(None, _library_row),)),
)
