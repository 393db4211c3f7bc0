"""What each asset does with its services, as plain async functions.

Assets stay thin: they call one workflow under ``asyncio.run`` and turn its
``Outcome`` into a ``MaterializeResult``. A workflow opens one session per
service (one HTTP client each), turns its work into ledger items and lets
``run_items`` bring them about exactly once.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from campaign_assets.items import Attempt, Item, ItemReport, ItemResult, VendorRef, run_items
from campaign_assets.ledger import Ledger
from campaign_assets.logic.media_plan import plan_values
from campaign_assets.logic.prompts import (
    BRIEF_SECTIONS,
    brief_request,
    content_request,
    headline,
    render_locally,
    summary_request,
)
from campaign_assets.logic.render import compose_creative, render_landing_page, write_bytes, write_text
from campaign_assets.services.asana import AsanaResource
from campaign_assets.services.canva import CanvaResource
from campaign_assets.services.docs import DocRef, DocsResource
from campaign_assets.services.dsp import DSPResource
from campaign_assets.services.http import VendorError
from campaign_assets.services.images import ImagesResource
from campaign_assets.services.llm import LLMResource
from campaign_assets.services.sheets import SheetRef, SheetsResource, a1_range_for
from campaign_assets.services.slack import SlackResource, escape_text
from campaign_assets.settings import scope as _scope
from campaign_assets.spec import CampaignSpec, parse_size, slugify

T = TypeVar("T")


@dataclass
class Outcome:
    """What a workflow hands back to its asset."""

    value: Any
    reports: list[ItemReport]
    clients: list[Any]
    links: dict[str, str | None] = field(default_factory=dict)


@asynccontextmanager
async def _clients(out: Path, *resources: Any) -> AsyncIterator[tuple[list[Any], list[Any] | None]]:
    """One session per resource, and when any of them speaks HTTP, their
    local twins: the fallback that makes the artifact while a vendor is down."""
    async with AsyncExitStack() as stack:
        live = [await stack.enter_async_context(r.session(out)) for r in resources]
        local = None
        if any(r.backend == "http" for r in resources):
            local = [await stack.enter_async_context(r.session(out, local=True)) for r in resources]
        yield live, local


async def _adopt_or_create(
    attempt: Attempt, find: Callable[[], Awaitable[T | None]], create: Callable[[], Awaitable[T]]
) -> T:
    """Create a vendor object, unless an earlier attempt already did."""
    if attempt.recovering:
        found = await find()
        if found is not None:
            return found
    return await create()


# ---- campaign_brief ---------------------------------------------------------
def brief_title(spec: CampaignSpec) -> str:
    return f"{spec.name} — Campaign Brief"


async def _write_document(docs: Any, title: str, name: str, text: str, attempt: Attempt) -> DocRef:
    titled = f"{title} {attempt.marker}"
    found = await docs.find_document(titled, name=name) if attempt.recovering else None
    doc = found or await docs.create_document(titled, name=name)
    await docs.write_text(doc, text, fresh=found is None)  # a new document is empty: no read first
    return doc


def spec_brief(spec: CampaignSpec, title: str, error: str) -> dict[str, Any]:
    """The brief when none could be written at all: the spec's own key
    messages, rendered from the spec alone (the local backend's template),
    flagged with why."""
    return {
        "document_id": None,
        "url": None,
        "title": title,
        "markdown": render_locally(brief_request(spec)),
        "source": "spec",
        "error": error,
    }


class Drafts:
    """Text an LLM wrote inside an item, kept for that item's local copy: when
    the document store refuses the brief or the report, the local file carries
    the LLM's words, not the template's."""

    def __init__(self) -> None:
        self._texts: dict[str, str] = {}

    async def text(self, key: str, writer: Any, request: Any) -> str:
        if key not in self._texts:
            self._texts[key] = (await writer.complete(request)).text
        return self._texts[key]

    async def kept_or(self, key: str, writer: Any, request: Any) -> str:
        """The live draft when there is one, else ``writer``'s (the local backend's)."""
        return self._texts.get(key) or (await writer.complete(request)).text


async def make_brief(spec: CampaignSpec, llm: LLMResource, docs: DocsResource, ledger: Ledger, out: Path) -> Outcome:
    """The brief is always handed on: published to Docs; else (Docs down or
    refusing) its text in brief.md, flagged ``fallback``; else (no text could
    be written) the spec's own key messages, flagged ``source: spec``."""
    request = brief_request(spec)
    title = brief_title(spec)
    item = Item("brief", {"system": request.system, "prompt": request.prompt, "title": title})
    drafts = Drafts()

    def writing(draft: Callable[[], Awaitable[str]], doc_client: Any) -> Callable[[Item, Attempt], Awaitable[VendorRef]]:
        async def create(item: Item, attempt: Attempt) -> VendorRef:
            text = await draft()
            doc = await _write_document(doc_client, title, "brief", text, attempt)
            return VendorRef(doc.document_id, doc.url, {"title": title, "markdown": text})

        return create

    async with _clients(out, llm, docs) as (live, local):
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
            ledger, _scope(spec, "campaign_brief"), "docs", [item],
            create=writing(lambda: drafts.text(item.key, writer, request), doc_client),
            update=update, fallback=fallback, fallback_on=VendorError,
        )
    ref = report.ref("brief")
    if ref is None:
        value = spec_brief(spec, title, report.failures[0][1] if report.failures else "no brief")
    else:
        value = {"document_id": ref.vendor_id, "url": ref.url, **ref.data, "source": "llm"}
    return Outcome(value, [report], live, {"document_url": ref and ref.url})


def missing_sections(markdown: str) -> list[str]:
    headings = {m.strip().lower() for m in re.findall(r"^##\s+(.+)$", markdown, flags=re.M)}
    return [s for s in BRIEF_SECTIONS if s.lower() not in headings]


def section(markdown: str, name: str) -> str:
    match = re.search(rf"^##\s+{re.escape(name)}\s*$(.*?)(?=^##\s|\Z)", markdown, flags=re.M | re.S)
    return match.group(1).strip() if match else ""


# ---- media_plan -------------------------------------------------------------
async def publish_media_plan(
    spec: CampaignSpec, plan: pd.DataFrame, sheets: SheetsResource, ledger: Ledger, out: Path
) -> Outcome:
    title = f"{spec.name} — Media Plan"
    values = plan_values(plan)
    item = Item("spreadsheet", {"title": title, "values": values})

    async def write(client: Any, sheet: SheetRef, previous_rows: int) -> VendorRef:
        # A fixed range, never append: pad with blanks to clear rows a
        # longer earlier plan left behind.
        rows = values + [[""] * len(values[0])] * max(0, previous_rows - len(values))
        await client.update_values(sheet, a1_range_for(rows), rows)
        return VendorRef(sheet.spreadsheet_id, sheet.url, {"title": title, "rows": len(rows)})

    def publishing(client: Any) -> Callable[[Item, Attempt], Awaitable[VendorRef]]:
        async def create(item: Item, attempt: Attempt) -> VendorRef:
            titled = f"{title} {attempt.marker}"
            sheet = await _adopt_or_create(
                attempt,
                lambda: client.find_spreadsheet(titled, name="media_plan"),
                lambda: client.create_spreadsheet(titled, name="media_plan"),
            )
            return await write(client, sheet, 0)

        return create

    async with _clients(out, sheets) as (live, local):
        (client,) = live

        async def update(item: Item, ref: VendorRef, attempt: Attempt) -> VendorRef:
            return await write(client, SheetRef(ref.vendor_id, title, ref.url or ""), int(ref.data.get("rows", 0)))

        report = await run_items(
            ledger, _scope(spec, "media_plan"), "sheets", [item],
            create=publishing(client), update=update, fallback=local and publishing(*local), fallback_on=VendorError,
        )
    ref = report.ref("spreadsheet")
    return Outcome(plan, [report], live, {"spreadsheet_url": ref and ref.url})


# ---- project_tasks ----------------------------------------------------------
async def make_project(spec: CampaignSpec, asana: AsanaResource, ledger: Ledger, out: Path) -> Outcome:
    scope = _scope(spec, "project_tasks")
    notes = f"Launch plan for {spec.name} ({spec.flight.start} to {spec.flight.end}). Managed by campaign_assets."
    planned = spec.launch_tasks()
    by_key = {f"task:{t.key}": t for t in planned}

    def project_creator(client: Any) -> Callable[[Item, Attempt], Awaitable[VendorRef]]:
        async def create(item: Item, attempt: Attempt) -> VendorRef:
            project = await _adopt_or_create(
                attempt,
                lambda: client.find_project(marker=attempt.marker),
                lambda: client.create_project(spec.name, notes, marker=attempt.marker),
            )
            return VendorRef(project.gid, project.url, {"name": project.name})

        return create

    def task_creator(client: Any, project_gid: str) -> Callable[[Item, Attempt], Awaitable[VendorRef]]:
        async def create(item: Item, attempt: Attempt) -> VendorRef:
            t = by_key[item.key]
            task = await _adopt_or_create(
                attempt,
                lambda: client.find_task(project_gid, marker=attempt.marker),
                lambda: client.create_task(project_gid, t.name, t.notes, t.due_on, marker=attempt.marker),
            )
            return VendorRef(task.gid, task.url, {"name": task.name, "due_on": task.due_on})

        return create

    async with _clients(out, asana) as (live, local):
        (client,) = live
        project_report = await run_items(
            ledger, scope, "asana", [Item("project", {"name": spec.name, "notes": notes})],
            create=project_creator(client), fallback=local and project_creator(*local),
        )
        project = project_report.ref("project")
        if project is None:
            skipped = tuple(ItemResult(key, "failed", error="project was not created") for key in by_key)
            return Outcome(None, [project_report, ItemReport("asana", skipped)], live)
        # Tasks live where their project lives: a project made locally while
        # Asana was down gets local tasks, and both move to Asana next time.
        project_is_local = project_report.results[0].action == "fallback"
        tasks_client = local[0] if project_is_local and local else client

        async def update_task(item: Item, ref: VendorRef, attempt: Attempt) -> VendorRef:
            t = by_key[item.key]
            task = await tasks_client.update_task(ref.vendor_id, t.name, t.notes, t.due_on, marker=attempt.marker)
            return VendorRef(task.gid, task.url, {"name": task.name, "due_on": task.due_on})

        task_report = await run_items(
            ledger, scope, "asana",
            [Item(key, {"name": t.name, "notes": t.notes, "due_on": t.due_on, "project": project.vendor_id})
             for key, t in by_key.items()],
            create=task_creator(tasks_client, project.vendor_id),
            update=update_task,
            fallback=None if project_is_local or not local else task_creator(local[0], project.vendor_id),
        )
    tasks = [
        {
            "key": r.key,
            "name": by_key[r.key].name,
            "due_on": by_key[r.key].due_on.isoformat(),
            "status": {"failed": "failed", "fallback": "local"}.get(r.action, "ok"),
            "gid": r.ref.vendor_id if r.ref else "",
            "url": (r.ref.url if r.ref else "") or "",
            "error": r.error or "",
        }
        for r in task_report.results
    ]
    write_text(out / "tasks.csv", _csv(tasks))
    value = {"project": {"gid": project.vendor_id, "url": project.url, "name": spec.name}, "tasks": tasks}
    return Outcome(value, [project_report, task_report], live, {"project_url": project.url})


def _csv(rows: list[dict[str, Any]]) -> str:
    # Task names and notes come from the spec, errors from vendors: one writer
    # neutralizes formula-looking text (see campaign_assets.logic.csv_safe).
    from campaign_assets.logic.csv_safe import dict_csv_text

    return dict_csv_text(rows)


# ---- creatives --------------------------------------------------------------
def image_prompt(spec: CampaignSpec) -> str:
    return (
        f"Abstract, text-free background for a {spec.objective} display ad by {spec.brand.name}: "
        f"{spec.audience}. Dominant colour {spec.brand.primary_color}, calm, modern, room for a headline."
    )


async def make_creatives(
    spec: CampaignSpec, images: ImagesResource, canva: CanvaResource, ledger: Ledger, out: Path
) -> Outcome:
    line = headline(spec)
    prompt = image_prompt(spec)

    def producer(painter: Any, designer: Any) -> Callable[..., Awaitable[VendorRef]]:
        async def produce(item: Item, attempt: Attempt, replace: str | None = None) -> VendorRef:
            size = item.content["size"]
            width, height = parse_size(size)
            path = out / "creatives" / f"{size}.png"
            found = await designer.find_design(marker=attempt.marker) if attempt.recovering else None
            if found is not None and path.exists():
                design, asset_id = found, ""
            else:
                background = await painter.generate(prompt, color=spec.brand.primary_color)
                png = compose_creative(background, (width, height), spec.brand.primary_color, line, spec.brand.name)
                write_bytes(path, png)
                asset = await _adopt_or_create(
                    attempt,
                    lambda: designer.find_asset(marker=attempt.marker),
                    lambda: designer.upload_asset(f"{spec.id}-{size}.png", png, marker=attempt.marker),
                )
                design = await designer.create_design(
                    f"{spec.name} {size} {attempt.marker}", width, height, asset.asset_id, marker=attempt.marker
                )
                asset_id = asset.asset_id
                if replace:
                    await designer.delete_asset(replace)
            data = dict(size=size, width=width, height=height, path=str(path), asset_id=asset_id, view_url=design.view_url)
            return VendorRef(design.design_id, design.edit_url, data)

        return produce

    async with _clients(out, images, canva) as (live, local):
        produce = producer(*live)

        async def create(item: Item, attempt: Attempt) -> VendorRef:
            return await produce(item, attempt)

        async def update(item: Item, ref: VendorRef, attempt: Attempt) -> VendorRef:
            return await produce(item, Attempt(attempt.marker, recovering=False), ref.data.get("asset_id") or None)

        items = [
            Item(
                f"creative:{size}",
                {"size": size, "headline": line, "color": spec.brand.primary_color, "brand": spec.brand.name, "prompt": prompt},
            )
            for size in spec.creative_sizes
        ]
        report = await run_items(
            ledger, _scope(spec, "creatives"), "canva", items,
            create=create, update=update, fallback=local and producer(*local),
        )
    value = [dict(r.ref.data, design_id=r.ref.vendor_id, edit_url=r.ref.url) for r in report.succeeded if r.ref]
    return Outcome(value, [report], live)


# ---- content_pieces and content_library ------------------------------------
def piece_key(group: str, content_type: str) -> str:
    return f"{slugify(group)}--{content_type}"


def _title(body: str, fallback: str) -> str:
    for line in body.splitlines():
        line = line.strip().lstrip("#").strip()
        if line:
            return line.removeprefix("Subject:").strip()[:200]
    return fallback


async def write_content(spec: CampaignSpec, brief: dict[str, Any], llm: LLMResource, ledger: Ledger, out: Path) -> Outcome:
    excerpt = section(brief["markdown"], "Key Messages") or brief["markdown"][:1500]
    requests = {
        piece_key(v.stakeholder_group, ct): (v, ct, content_request(spec, v, ct, excerpt)) for v, ct in spec.content_matrix()
    }

    def writing(writer: Any) -> Callable[[Item, Attempt], Awaitable[VendorRef]]:
        async def create(item: Item, attempt: Attempt) -> VendorRef:
            vector, content_type, request = requests[item.key]
            body = (await writer.complete(request)).text
            path = write_text(out / "content" / f"{item.key}.md", body)
            title = _title(body, f"{vector.stakeholder_group} {content_type}")
            data = dict(
                key=item.key, stakeholder_group=vector.stakeholder_group, content_type=content_type, title=title, body=body
            )
            return VendorRef(f"piece:{item.key}", path.as_uri(), data)

        return create

    async with _clients(out, llm) as (live, local):
        create = writing(*live)

        async def update(item: Item, ref: VendorRef, attempt: Attempt) -> VendorRef:
            return await create(item, attempt)

        items = [Item(key, {"system": r.system, "prompt": r.prompt}) for key, (_, _, r) in requests.items()]
        report = await run_items(
            ledger, _scope(spec, "content_pieces"), "llm", items,
            create=create, update=update, fallback=local and writing(*local),
        )
    value = [dict(r.ref.data) for r in report.succeeded if r.ref]
    return Outcome(value, [report], live)


async def store_library(spec: CampaignSpec, pieces: list[dict[str, Any]], ledger: Ledger) -> Outcome:
    """One vault row per piece, written with its ledger and audit rows."""
    by_key = {p["key"]: p for p in pieces}

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
        )

    items = [Item(p["key"], {"title": p["title"], "body": p["body"]}) for p in pieces]
    report = await run_items(
        ledger, _scope(spec, "content_library"), "vault", items, create=create, update=update, library_row=library_row
    )
    stored = {row["piece_key"] for row in ledger.library(spec.organization, spec.id)}
    value = {"pieces": sorted(stored & set(by_key)), "expected": len(spec.content_matrix())}
    return Outcome(value, [report], [])


# ---- landing_page -----------------------------------------------------------
def key_messages(brief_markdown: str) -> dict[str, str]:
    messages = {}
    for m in re.finditer(r"^-\s+\*\*(.+?):\*\*\s+(.+)$", section(brief_markdown, "Key Messages"), flags=re.M):
        messages[m.group(1).strip()] = m.group(2).strip()
    return messages


def build_landing_page(spec: CampaignSpec, brief: dict[str, Any], creatives: list[dict[str, Any]], out: Path) -> Path:
    messages = key_messages(brief["markdown"])
    objective = section(brief["markdown"], "Objective").split(". ")[0].rstrip(".") + "."
    context = dict(
        name=spec.name,
        brand=spec.brand.name,
        color=spec.brand.primary_color,
        website=spec.brand.website,
        campaign_id=spec.id,
        headline=headline(spec),
        summary=objective,
        cta="Learn more",
        groups=[
            {"name": v.stakeholder_group, "message": messages.get(v.stakeholder_group, objective)} for v in spec.vectors
        ],
        creatives=[
            {"src": f"creatives/{c['size']}.png", "size": c["size"], "width": c["width"], "height": c["height"]}
            for c in creatives
        ],
        flight_start=spec.flight.start.isoformat(),
        flight_end=spec.flight.end.isoformat(),
    )
    return write_text(out / "landing_page.html", render_landing_page(context))


# ---- dsp_activation ---------------------------------------------------------
async def activate_dsps(
    spec: CampaignSpec, plan: pd.DataFrame, dsp: DSPResource, ledger: Ledger, out: Path
) -> Outcome:
    flights = {
        channel.name: plan[plan["channel"] == channel.name][["week_start", "week_end", "budget"]].to_dict("records")
        for channel in spec.dsp_channels
    }
    by_key = {f"line-item:{c.name}": c for c in spec.dsp_channels}
    async with dsp.session(out) as client:

        async def create(item: Item, attempt: Attempt) -> VendorRef:
            channel = by_key[item.key]
            name = f"{spec.name} — {channel.name}"
            line = await _adopt_or_create(
                attempt,
                lambda: client.find_line_item(marker=attempt.marker),
                lambda: client.create_line_item(channel.dsp, name, flights[channel.name], marker=attempt.marker),
            )
            budget = round(sum(f["budget"] for f in flights[channel.name]), 2)
            return VendorRef(line.line_item_id, line.url, {"dsp": line.dsp, "channel": channel.name, "budget": budget})

        async def update(item: Item, ref: VendorRef, attempt: Attempt) -> VendorRef:
            return await create(item, Attempt(attempt.marker, recovering=False))

        items = [Item(key, {"dsp": c.dsp, "flights": flights[c.name]}) for key, c in by_key.items()]
        report = await run_items(ledger, _scope(spec, "dsp_activation"), "dsp", items, create=create, update=update)
    value = [dict(r.ref.data, line_item_id=r.ref.vendor_id, url=r.ref.url) for r in report.succeeded if r.ref]
    return Outcome(value, [report], [client])


# ---- summary_report ---------------------------------------------------------
def campaign_facts(spec: CampaignSpec, ledger: Ledger) -> dict[str, Any]:
    """Counts and failures from the ledger: the source of truth for every item."""
    rows = [r for r in ledger.campaign_rows(spec.organization, spec.id) if r.scope.asset != "summary_report"]
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


def report_markdown(spec: CampaignSpec, summary: str, facts: dict[str, Any], links: dict[str, str | None]) -> str:
    lines = [f"# {spec.name} — Summary Report", "", summary.strip(), "", "## Artifacts", ""]
    lines += [f"- {name}: {url}" for name, url in links.items() if url]
    lines += ["", "## Items", "", "| asset | items |", "| --- | ---: |"]
    lines += [f"| {asset} | {n} |" for asset, n in facts["items_by_asset"].items()]
    lines += ["", "## Failures", ""]
    lines += [f"- `{f['asset']}` / `{f['item']}`: {f['error']}" for f in facts["failures"]] or ["None."]
    if facts["fallbacks"]:
        lines += ["", "## Made locally while the vendor was down", ""]
        lines += [f"- `{f['asset']}` / `{f['item']}`: {f['reason']}" for f in facts["fallbacks"]]
        lines += ["", "The next materialization publishes them to the vendor."]
    return "\n".join(lines) + "\n"


async def make_report(
    spec: CampaignSpec,
    links: dict[str, str | None],
    llm: LLMResource,
    docs: DocsResource,
    slack: SlackResource,
    ledger: Ledger,
    out: Path,
) -> Outcome:
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
    scope = _scope(spec, "summary_report")

    drafts = Drafts()

    def reporting(draft: Callable[[], Awaitable[str]], doc_client: Any) -> Callable[[Item, Attempt], Awaitable[VendorRef]]:
        async def create(item: Item, attempt: Attempt) -> VendorRef:
            markdown = report_markdown(spec, await draft(), facts, links)
            doc = await _write_document(doc_client, title, "summary_report", markdown, attempt)
            return VendorRef(doc.document_id, doc.url, {"title": title, "markdown": markdown})

        return create

    def notifying(notifier: Any, text: str) -> Callable[[Item, Attempt], Awaitable[VendorRef]]:
        async def notify(item: Item, attempt: Attempt) -> VendorRef:
            message = await _adopt_or_create(
                attempt,
                lambda: notifier.find_message(marker=attempt.marker),
                lambda: notifier.post_message(f"{text} {attempt.marker}", marker=attempt.marker),
            )
            return VendorRef(message.ts, None, {"channel": message.channel})

        return notify

    async with _clients(out, llm, docs, slack) as (live, local):
        writer, doc_client, notifier = live

        async def update(item: Item, ref: VendorRef, attempt: Attempt) -> VendorRef:
            markdown = report_markdown(spec, await drafts.text(item.key, writer, request), facts, links)
            await doc_client.write_text(DocRef(ref.vendor_id, title, ref.url or ""), markdown)
            return VendorRef(ref.vendor_id, ref.url, {"title": title, "markdown": markdown})

        content = {"prompt": request.prompt, "facts": facts, "links": links}
        fallback = None
        if local:
            fallback = reporting(lambda: drafts.kept_or("report", local[0], request), local[1])
        doc_report = await run_items(
            ledger, scope, "docs", [Item("report", content)],
            create=reporting(lambda: drafts.text("report", writer, request), doc_client),
            update=update, fallback=fallback, fallback_on=VendorError,
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
        markdown = report_markdown(spec, render_locally(request), facts, links)
        path = write_text(out / "summary_report.md", markdown)
        value = {"url": path.as_uri(), "title": title, "markdown": markdown, "facts": facts}
    else:
        value = {"url": doc.url, **doc.data, "facts": facts}
    return Outcome(value, reports, live, {"report_url": doc and doc.url})
