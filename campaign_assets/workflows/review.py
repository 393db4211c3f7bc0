"""campaign_review: what would go out, checked, and put in front of the reviewers.

Made, per content fingerprint (a new one whenever what would go out changes):
one ``voice:<fp>`` item (llm: the brand-voice review of exactly that
content), the packet ``review/<fp>.html``, a review round in the approvals
table (``campaign_assets.approvals``) and one ``round:<fp>`` item (slack: the
message asking the reviewers, exactly once per round).

Torn down: each round's Slack message, then the packet files. Decisions stay:
they are the audit trail of who approved what.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape
from markdown_it import MarkdownIt

from campaign_assets.approvals import Approvals, ReviewRound
from campaign_assets.core.items import Attempt, Item, VendorRef, run_items
from campaign_assets.ledger import Ledger, LedgerRow
from campaign_assets.logic.extract import visible_text
from campaign_assets.logic.render import thumbnail_uri
from campaign_assets.logic.review import (
    FileOut,
    Finding,
    Release,
    VoiceReview,
    banned_phrase_findings,
    build_release,
    landing_url_for,
    length_findings,
    link_findings,
    outgoing_texts,
    parse_voice,
    site_path,
    voice_request,
)
from campaign_assets.services.local import inside, unlink, write_text
from campaign_assets.services.protocols import LLM, Slack
from campaign_assets.services.slack import escape_text
from campaign_assets.spec import CampaignSpec
from campaign_assets.workflows.common import Context, Outcome, Rule, Stage, clients, scope_of

ASSET = "campaign_review"
VOICE = "voice:"
ROUND = "round:"
PACKETS = "review"

# Each automated check: its asset check name, what the packet calls it, and
# the findings it owns (``Finding.check``).
CHECKS = (
    ("lengths_within_channel_limits", "Length limits per channel", "lengths"),
    ("no_banned_phrases", "Phrases the brand bans", "banned_phrases"),
    ("links_tracked_to_landing_page", "Links lead to the landing page, with UTM", "links"),
)


def short(fingerprint: str) -> str:
    return fingerprint[:16]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def web_files(landing_page: dict[str, Any], creatives: list[dict[str, Any]], root: str) -> list[FileOut]:
    """The landing page as ``<root>/index.html`` and each creative where the
    page's relative links expect it (``<root>/creatives/<size>.png``)."""
    files = []
    page = Path(landing_page["path"])
    data = page.read_bytes()
    files.append(FileOut(f"{root}/index.html", str(page), _sha256(data), len(data)))
    for c in creatives:
        path = Path(c["path"])
        if path.exists():
            data = path.read_bytes()
            files.append(FileOut(f"{root}/creatives/{c['size']}.png", str(path), _sha256(data), len(data)))
    return files


async def prepare_release(
    spec: CampaignSpec,
    pieces: list[dict[str, Any]],
    landing_page: dict[str, Any],
    creatives: list[dict[str, Any]],
    plan: pd.DataFrame,
    pages: Any,
    out: Path,
) -> tuple[Release, str]:
    """What would go out, and the landing page's visible text (for the checks)."""
    html = Path(landing_page["path"]).read_text(encoding="utf-8")
    description, text = visible_text(html)
    root = site_path(spec)
    pages_url = None
    if spec.distribution and spec.distribution.web:
        async with pages.session(out) as client:
            pages_url = client.page_url(f"{root}/")
    files = web_files(landing_page, creatives, root)
    release = build_release(spec, pieces, description, landing_url_for(spec, pages_url), files, plan)
    return release, text


def findings_for(spec: CampaignSpec, release: Release, landing_text: str) -> list[Finding]:
    texts = outgoing_texts(release, landing_text)
    return length_findings(release) + banned_phrase_findings(texts, spec.brand.banned_phrases) + link_findings(release)


@dataclass
class ReviewResult:
    release: Release
    findings: list[Finding]
    voice: VoiceReview
    packet: Path
    round: ReviewRound
    message_url: str | None

    def value(self) -> dict[str, Any]:
        return {
            "fingerprint": self.release.fingerprint,
            "release": self.release.as_dict(),
            "findings": [asdict(f) for f in self.findings],
            "voice": {"score": self.voice.score, "notes": self.voice.notes},
            "packet": str(self.packet),
            "requested_at": self.round.requested_at.isoformat(),
            "reviewers": self.round.reviewers,
        }


def review_message(spec: CampaignSpec, release: Release, findings: list[Finding], voice: VoiceReview, packet: str, marker: str) -> str:
    """The one Slack message of a review round: what goes out, the checks,
    the packet, how to decide; reviewers mentioned by member id."""
    counts = release.summary()
    out = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in counts.items() if n) or "nothing yet"
    failed = [label for _, label, check in CHECKS if any(f.check == check for f in findings)]
    checks = "all checks passed" if not failed else "failing: " + ", ".join(failed)
    score = f"{voice.score}/10" if voice.score is not None else "no score"
    mentions = " ".join(f"<@{r.slack}>" for r in spec.reviewers or [] if r.slack)
    lines = [
        f"Review requested: *{escape_text(spec.name)}* ({spec.organization}/{spec.id}), content {release.fingerprint[:12]}",
        f"Goes out once approved: {out}. Automated checks: {checks}; brand voice {score}.",
        f"Review packet: {packet}" + (f" | Landing page: {release.landing_url}" if release.landing_url else ""),
        f"Approve with `campaign-assets approve {spec.id} --by NAME` or the approve_campaign job in Dagster.",
    ]
    if mentions:
        lines.append(mentions)
    return "\n".join(lines + [marker])


def _packet_env() -> Environment:
    return Environment(loader=PackageLoader("campaign_assets", "templates"), autoescape=select_autoescape(["html", "j2"]))


def render_packet(
    spec: CampaignSpec,
    release: Release,
    findings: list[Finding],
    voice: VoiceReview,
    round_: ReviewRound,
    pieces: list[dict[str, Any]],
    creatives: list[dict[str, Any]],
    plan: pd.DataFrame,
    landing_local: str | None,
) -> str:
    markdown = MarkdownIt("commonmark", {"html": False})
    thumbs = []
    for c in creatives:
        path = Path(c["path"])
        if path.exists():
            thumbs.append({"size": c["size"], "thumb": thumbnail_uri(path.read_bytes()), "edit_url": c.get("edit_url")})
    checks = [
        {"label": label, "passed": not [f for f in findings if f.check == check], "findings": [f for f in findings if f.check == check]}
        for _, label, check in CHECKS
    ]
    return _packet_env().get_template("review_packet.html.j2").render(
        name=spec.name,
        organization=spec.organization,
        campaign=spec.id,
        fingerprint=release.fingerprint,
        requested_at=round_.requested_at.strftime("%Y-%m-%d %H:%M UTC"),
        reviewers=round_.reviewers,
        checks=checks,
        release=release,
        landing_url=release.landing_url,
        landing_local=landing_local,
        creatives=thumbs,
        plan=plan.to_dict("records"),
        pieces=[dict(p, html=markdown.render(p["body"])) for p in pieces],
        voice=voice,
    )


async def review_campaign(
    spec: CampaignSpec,
    release: Release,
    landing_text: str,
    brief_markdown: str,
    pieces: list[dict[str, Any]],
    creatives: list[dict[str, Any]],
    plan: pd.DataFrame,
    landing_local: str | None,
    spec_digest: str,
    llm: Any,
    slack: Any,
    ledger: Ledger,
    approvals: Approvals,
    out: Path,
) -> Outcome:
    fingerprint = release.fingerprint
    findings = findings_for(spec, release, landing_text)
    scope = scope_of(spec, ASSET)
    texts = outgoing_texts(release, landing_text)
    request = voice_request(spec, brief_markdown, texts)

    # The brand-voice review: one LLM call per fingerprint, kept in the ledger.
    def reviewing(writer: LLM):
        async def create(item: Item, attempt: Attempt) -> VendorRef:
            voice = parse_voice((await writer.complete(request)).text)
            return VendorRef(item.key, None, {"score": voice.score, "notes": voice.notes})

        return create

    async with clients(out, llm) as (live, local):
        voice_report = await run_items(
            ledger, scope, "llm", [Item(VOICE + short(fingerprint), {"fingerprint": fingerprint})],
            create=reviewing(*live), fallback=local and reviewing(*local),
        )
    voice_ref = voice_report.succeeded[0].ref if voice_report.succeeded else None
    voice = VoiceReview(voice_ref.data.get("score"), list(voice_ref.data.get("notes") or [])) if voice_ref else VoiceReview(
        None, [f"the brand-voice review failed: {voice_report.failures[0][1] if voice_report.failures else 'unknown'}"]
    )

    reviewers = [r.name for r in spec.reviewers or []]
    summary = {"goes_out": release.summary(), "findings": len(findings), "voice_score": voice.score}
    packet = out / PACKETS / f"{fingerprint[:12]}.html"
    round_ = await asyncio.to_thread(
        approvals.record_round, spec.organization, spec.id, fingerprint,
        spec_hash=spec_digest, reviewers=reviewers, summary=summary, packet=str(packet),
    )
    html = render_packet(spec, release, findings, voice, round_, pieces, creatives, plan, landing_local)
    write_text(packet, html)

    # The reviewers are asked once per round: one Slack message per fingerprint.
    async with slack.session(out) as poster:
        notifier: Slack = poster

        async def ask(item: Item, attempt: Attempt) -> VendorRef:
            text = review_message(spec, release, findings, voice, packet.resolve().as_uri(), attempt.marker)
            message = await attempt.adopt_or_create(
                lambda marker: notifier.find_message(marker=marker),
                lambda marker: notifier.post_message(text, marker=marker),
            )
            return VendorRef(message.ts, None, {"channel": message.channel, "fingerprint": fingerprint})

        ask_report = await run_items(
            ledger, scope, "slack", [Item(ROUND + short(fingerprint), {"fingerprint": fingerprint})], create=ask
        )
    result = ReviewResult(release, findings, voice, packet, round_, None)
    return Outcome(result, [voice_report, ask_report], [*live, poster], links={"packet": packet.resolve().as_uri()})


# ---- teardown -----------------------------------------------------------------------
async def _delete_round_message(slack: Slack, row: LedgerRow, ctx: Context) -> bool:
    from campaign_assets.core.items import locate
    from campaign_assets.workflows.common import deleted_by_id

    found = await locate(row, lambda marker: _message_ts(slack, marker))
    return await deleted_by_id(slack.delete_message, found)


async def _message_ts(slack: Slack, marker: str) -> str | None:
    return getattr(await slack.find_message(marker=marker), "ts", None)


async def _delete_voice(_client: None, row: LedgerRow, ctx: Context) -> bool:
    """The review's text lives only in the ledger row; its round's packet file goes with it."""
    return unlink(inside(ctx.folder, PACKETS, f"{row.item_key.removeprefix(VOICE)[:12]}.html"))


STAGES = (
    Stage(ASSET, ASSET, (Rule("slack", _delete_round_message, ROUND), Rule(None, _delete_voice, VOICE))),
)
