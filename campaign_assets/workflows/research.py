"""market_research: each competitor page fetched, read and summarized before the brief.

Made: one ledger item per competitor URL (``research:<slug>``, service
``web``): the page fetched (``services/web.py``: bounded, SSRF-safe, robots
honoured), its title, description, headings and claims extracted
(``logic/extract.py``), its positioning summarized by the LLM, the note
written to ``research/<slug>.md`` and filed in the vault under
``Campaigns/{PATTERN}/Research`` in the same transaction as its ledger row.

A page that cannot be fetched (offline, refused by the SSRF guard or
robots.txt, too large, not HTML...) is a ``fallback`` item with the reason:
flagged, never failed, and the brief goes on without it. So is a page whose
summary the LLM vendor could not write (the local template writes it). The
next materialization tries again.

Torn down: each note file (the vault row goes with ``Ledger.mark_deleted``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from campaign_assets.core.errors import ServiceUnavailable
from campaign_assets.core.items import Attempt, Item, VendorRef, run_items
from campaign_assets.ledger import Ledger, LedgerRow, vault_folder
from campaign_assets.logic.extract import extract
from campaign_assets.logic.prompts import research_request
from campaign_assets.services.llm import LLMResource
from campaign_assets.services.local import inside, unlink, write_text
from campaign_assets.services.web import FetchError, WebFetcher
from campaign_assets.spec import CampaignSpec, slugify
from campaign_assets.workflows.common import Context, Outcome, Rule, Stage, clients, scope_of

ASSET = "market_research"
PREFIX = "research:"


def competitor_key(url: str) -> str:
    parts = urlsplit(url)
    return PREFIX + slugify(f"{parts.hostname or ''}{parts.path}")[:150]


def note_path(folder: Path, key: str) -> Path:
    return folder / "research" / f"{key.removeprefix(PREFIX)}.md"


def empty_research() -> dict[str, Any]:
    return {"summary": "", "competitors": [], "topics": [], "unavailable": []}


def research_markdown(competitors: list[dict[str, Any]], topics: list[str]) -> str:
    """What the brief reads: one paragraph per competitor that could be read."""
    parts = [c["summary"].strip() for c in competitors if c.get("summary")]
    if not parts:
        return ""
    head = f"Topics: {', '.join(topics)}\n\n" if topics else ""
    return head + "\n\n".join(parts)


async def make_research(spec: CampaignSpec, fetcher: WebFetcher, llm: LLMResource, ledger: Ledger, out: Path) -> Outcome:
    if spec.research is None or not spec.research.competitors:
        return Outcome(empty_research() | {"topics": list(spec.research.topics) if spec.research else []}, [], [])
    topics = list(spec.research.topics)
    urls = {competitor_key(u): u for u in spec.research.competitors}
    pages: dict[str, dict[str, Any]] = {}  # key -> extract, kept for the local summary when the LLM vendor is down
    folder = vault_folder(spec.pattern, "Research")

    def summarize(writer: Any):
        async def create(item: Item, attempt: Attempt) -> VendorRef:
            url = urls[item.key]
            page = pages.get(item.key)
            if page is None:
                fetched = await fetcher.fetch(url)
                page = extract(fetched.html).as_dict() | {"final_url": fetched.url}
                pages[item.key] = page
            request = research_request(spec, url, {k: page[k] for k in ("title", "description", "headings", "claims")}, topics)
            summary = (await writer.complete(request)).text.strip()
            path = write_text(note_path(out, item.key), f"# {page['title'] or url}\n\nSource: {url}\n\n{summary}\n")
            return VendorRef(item.key, path.as_uri(), dict(url=url, status="research", summary=summary, **page))

        return create

    async def unavailable(item: Item, attempt: Attempt) -> VendorRef:
        if item.key in pages and local:  # fetched, but the LLM vendor is down: the template summarizes
            return await summarize(local[0])(item, attempt)
        url = urls[item.key]
        return VendorRef(item.key, None, dict(url=url, status="unavailable", summary="", title="", description="",
                                              headings=[], claims=[]))

    def library_row(item: Item, ref: VendorRef) -> dict[str, Any]:
        d = ref.data
        return dict(
            piece_key=item.key,
            stakeholder_group="Research",
            content_type="research-note",
            title=d.get("title") or d["url"],
            body=d.get("summary") or f"(not fetched: {d['url']})",
            content_hash=item.content_hash,
            folder=folder,
            vector="Research",
            timing="before the brief",
            source=d["url"],
            auto_generated=True,
            status=d["status"],
        )

    async with clients(out, llm) as (live, local):
        items = [Item(key, {"url": url, "topics": topics, "folder": folder}) for key, url in urls.items()]
        report = await run_items(
            ledger, scope_of(spec, ASSET), "web", items,
            create=summarize(live[0]), update=lambda item, _ref, attempt: summarize(live[0])(item, attempt),
            fallback=unavailable, library_row=library_row,
            fallback_on=(FetchError, ServiceUnavailable),
        )
    competitors = [dict(r.ref.data, key=r.key, action=r.action, reason=r.error) for r in report.results if r.ref]
    value = {
        "summary": research_markdown(competitors, topics),
        "competitors": competitors,
        "topics": topics,
        "unavailable": [{"key": k, "url": urls[k], "reason": reason} for k, reason in report.fallbacks
                        if not next((c for c in competitors if c["key"] == k and c.get("summary")), None)],
    }
    return Outcome(value, [report], live)


async def _delete_note(_client: None, row: LedgerRow, ctx: Context) -> bool:
    return unlink(inside(ctx.folder, "research", f"{row.item_key.removeprefix(PREFIX)}.md"))


STAGES = (Stage(ASSET, ASSET, (Rule(None, _delete_note),)),)
