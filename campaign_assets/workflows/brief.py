"""campaign_brief: the brief, written by the LLM and published to Docs.

Made: one ledger item ``brief`` (docs). Torn down: the document, by its
recorded id (documents have no marker lookup: without an id the row is left
for a person); a brief made locally (``fallback``) through the local backend.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from campaign_assets.core.errors import ServiceError
from campaign_assets.core.items import Attempt, Item, VendorRef, run_items
from campaign_assets.ledger import Ledger, LedgerRow
from campaign_assets.logic.markdown import missing_sections
from campaign_assets.logic.prompts import BRIEF_SECTIONS, brief_request
from campaign_assets.services.docs import DocRef, DocsResource
from campaign_assets.services.llm import LLMResource, render_locally
from campaign_assets.services.protocols import Docs
from campaign_assets.spec import CampaignSpec
from campaign_assets.workflows.common import Context, Drafts, Outcome, Rule, Stage, clients, delete_recorded, scope_of, write_document

__all__ = ["BRIEF_SECTIONS", "STAGES", "brief_title", "make_brief", "missing_sections", "spec_brief"]

ASSET = "campaign_brief"


def brief_title(spec: CampaignSpec) -> str:
    return f"{spec.name} — Campaign Brief"


def spec_brief(spec: CampaignSpec, title: str, error: str, research: str = "") -> dict[str, Any]:
    """The brief when none could be written at all: the spec's own key
    messages, rendered from the spec alone (the local backend's template),
    flagged with why."""
    return {
        "document_id": None,
        "url": None,
        "title": title,
        "markdown": render_locally(brief_request(spec, research)),
        "source": "spec",
        "error": error,
    }


async def make_brief(
    spec: CampaignSpec, llm: LLMResource, docs: DocsResource, ledger: Ledger, out: Path, research: str = ""
) -> Outcome:
    """The brief is always handed on: published to Docs; else (Docs down or
    refusing) its text in brief.md, flagged ``fallback``; else (no text could
    be written) the spec's own key messages, flagged ``source: spec``.
    ``research``: market_research's summary (markdown), empty without one."""
    request = brief_request(spec, research)
    title = brief_title(spec)
    item = Item("brief", {"system": request.system, "prompt": request.prompt, "title": title})
    drafts = Drafts()

    def writing(draft: Callable[[], Awaitable[str]], doc_client: Docs) -> Callable[[Item, Attempt], Awaitable[VendorRef]]:
        async def create(item: Item, attempt: Attempt) -> VendorRef:
            return await write_document(doc_client, title, "brief", await draft(), attempt)

        return create

    async with clients(out, llm, docs) as (live, local):
        writer, doc_client = live

        async def update(item: Item, ref: VendorRef, attempt: Attempt) -> VendorRef:
            text = await drafts.text(item.key, writer, request)
            doc = DocRef(ref.vendor_id, title, ref.url or "")
            await doc_client.write_text(doc, text)
            return VendorRef(doc.document_id, doc.url, {"title": title, "markdown": text})

        fallback = None
        if local:
            fallback = writing(lambda: drafts.kept_or(item.key, local[0], request), local[1])
        report = await run_items(
            ledger, scope_of(spec, ASSET), "docs", [item],
            create=writing(lambda: drafts.text(item.key, writer, request), doc_client),
            update=update, fallback=fallback, fallback_on=ServiceError,
        )
    ref = report.ref("brief")
    if ref is None:
        value = spec_brief(spec, title, report.failures[0][1] if report.failures else "no brief", research)
    else:
        value = {"document_id": ref.vendor_id, "url": ref.url, **ref.data, "source": "llm"}
    return Outcome(value, [report], live, {"document_url": ref and ref.url})


async def _delete_document(docs: Docs, row: LedgerRow, ctx: Context) -> bool:
    return await delete_recorded(docs.delete_document, row)


STAGES = (Stage(ASSET, ASSET, (Rule("docs", _delete_document),)),)
