"""summary_report: the campaign's state from the ledger, summarized by the
LLM, published to Docs and announced on Slack.

Made: ledger items ``report`` (docs) and ``notification`` (slack). Torn down
first of all: the Slack message (by its recorded ts, else found by marker)
and the document (by its recorded id only). Rows made locally go through the
local backend.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from campaign_assets.core.errors import ServiceError
from campaign_assets.core.items import Attempt, Item, VendorRef, locate, run_items
from campaign_assets.ledger import Ledger, LedgerRow
from campaign_assets.logic.markdown import report_markdown
from campaign_assets.logic.prompts import summary_request
from campaign_assets.services.docs import DocRef, DocsResource
from campaign_assets.services.llm import LLMResource, render_locally
from campaign_assets.services.local import write_text
from campaign_assets.services.protocols import Docs, Slack
from campaign_assets.services.slack import SlackResource, escape_text
from campaign_assets.spec import CampaignSpec
from campaign_assets.workflows.common import (
    Context,
    Drafts,
    Outcome,
    Rule,
    Stage,
    clients,
    delete_recorded,
    deleted_by_id,
    scope_of,
    write_document,
)

ASSET = "summary_report"


def campaign_facts(spec: CampaignSpec, ledger: Ledger) -> dict[str, Any]:
    """Counts and failures from the ledger: the source of truth for every item."""
    rows = [r for r in ledger.campaign_rows(spec.organization, spec.id) if r.scope.asset != ASSET]
    done = Counter(r.scope.asset for r in rows if r.status in ("created", "fallback"))
    failures = sorted((r.scope.asset, r.item_key, r.error or "") for r in rows if r.status in ("failed", "pending"))
    fallbacks = sorted((r.scope.asset, r.item_key, r.error or "") for r in rows if r.status == "fallback")
    return {
        "items_by_asset": dict(sorted(done.items())),
        "items_total": sum(done.values()),
        "failures": [{"asset": a, "item": k, "error": e} for a, k, e in failures],
        "failure_count": len(failures),
        "fallbacks": [{"asset": a, "item": k, "reason": e} for a, k, e in fallbacks],
    }


async def make_report(
    spec: CampaignSpec,
    links: dict[str, str | None],
    llm: LLMResource,
    docs: DocsResource,
    slack: SlackResource,
    ledger: Ledger,
    out: Path,
    performance: str = "",
) -> Outcome:
    """``performance``: the markdown section of the campaign's delivery against plan
    (``workflows/performance.latest_section``), appended when there is one."""
    facts = campaign_facts(spec, ledger)
    failure_count = facts["failure_count"]
    prose = dict(
        status_phrase="ready to launch" if not failure_count else "nearly ready to launch",
        produced_phrase=f"{facts['items_total']} items exist across {len(facts['items_by_asset'])} assets.",
        channel_count=len(spec.channels),
        dsp_count=len(spec.dsp_channels),
        failure_count=failure_count,
    )
    request = summary_request(spec, prose | {"failures": facts["failures"]})
    title = f"{spec.name} — Summary Report"
    scope = scope_of(spec, ASSET)

    drafts = Drafts()

    def reporting(draft: Callable[[], Awaitable[str]], doc_client: Docs) -> Callable[[Item, Attempt], Awaitable[VendorRef]]:
        async def create(item: Item, attempt: Attempt) -> VendorRef:
            markdown = report_markdown(spec.name, await draft(), facts, links) + _section(performance)
            return await write_document(doc_client, title, "summary_report", markdown, attempt)

        return create

    def notifying(notifier: Slack, text: str) -> Callable[[Item, Attempt], Awaitable[VendorRef]]:
        async def notify(item: Item, attempt: Attempt) -> VendorRef:
            message = await attempt.adopt_or_create(
                lambda marker: notifier.find_message(marker=marker),
                lambda marker: notifier.post_message(f"{text} {marker}", marker=marker),
            )
            return VendorRef(message.ts, None, {"channel": message.channel})

        return notify

    async with clients(out, llm, docs, slack) as (live, local):
        writer, doc_client, notifier = live

        async def update(item: Item, ref: VendorRef, attempt: Attempt) -> VendorRef:
            markdown = report_markdown(spec.name, await drafts.text(item.key, writer, request), facts, links) + _section(performance)
            await doc_client.write_text(DocRef(ref.vendor_id, title, ref.url or ""), markdown)
            return VendorRef(ref.vendor_id, ref.url, {"title": title, "markdown": markdown})

        content = {"prompt": request.prompt, "facts": facts, "links": links}
        if performance:  # a new day's numbers update the document
            content["performance"] = performance
        fallback = None
        if local:
            fallback = reporting(lambda: drafts.kept_or("report", local[0], request), local[1])
        doc_report = await run_items(
            ledger, scope, "docs", [Item("report", content)],
            create=reporting(lambda: drafts.text("report", writer, request), doc_client),
            update=update, fallback=fallback, fallback_on=ServiceError,
        )
        reports = [doc_report]
        doc = doc_report.ref("report")
        if doc is not None:
            text = f"{escape_text(title)} is ready: {doc.url}" + (
                f" ({failure_count} items failed)" if failure_count else ""
            )
            notify = notifying(notifier, text)

            async def renotify(item: Item, ref: VendorRef, attempt: Attempt) -> VendorRef:
                return await notify(item, Attempt(attempt.marker, recovering=False))

            reports.append(
                await run_items(
                    ledger, scope, "slack", [Item("notification", {"text": text})],
                    create=notify, update=renotify, fallback=local and notifying(local[2], text),
                )
            )
    if doc is None:  # not even a local copy could be written by the backends: write it here
        markdown = report_markdown(spec.name, render_locally(request), facts, links) + _section(performance)
        path = write_text(out / "summary_report.md", markdown)
        value = {"url": path.as_uri(), "title": title, "markdown": markdown, "facts": facts}
    else:
        value = {"url": doc.url, **doc.data, "facts": facts}
    return Outcome(value, reports, live, {"report_url": doc and doc.url})


def _section(performance: str) -> str:
    return f"\n{performance}" if performance else ""


async def _delete_notification(slack: Slack, row: LedgerRow, ctx: Context) -> bool:
    async def find(marker: str) -> str | None:
        return getattr(await slack.find_message(marker=marker), "ts", None)

    return await deleted_by_id(slack.delete_message, await locate(row, find))


async def _delete_document(docs: Docs, row: LedgerRow, ctx: Context) -> bool:
    return await delete_recorded(docs.delete_document, row)


STAGES = (
    Stage(ASSET, ASSET, (Rule("slack", _delete_notification, "notification"), Rule("docs", _delete_document, "report"))),
)
