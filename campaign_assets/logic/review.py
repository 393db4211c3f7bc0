"""What would go out, its fingerprint, and the review's automated checks. Pure.

A reviewed campaign (``spec.reviewed``) goes out as one ``Release``: the
email sends, the social posts, the web files and the DSP spend, built from
the content pieces, the landing page, the creatives and the media plan. Its
``fingerprint`` is the hash of all of it: a person's approval covers exactly
one fingerprint, and any change to what would go out makes a new one (so the
approval no longer applies and the campaign is reviewed again).

The checks return ``Finding``s, one per problem, each with the item it is
about and a reason a person can act on. ``campaign_review`` turns each check
into an asset check.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pandas as pd
from markdown_it import MarkdownIt

from campaign_assets.logic.landing import tracked_url
from campaign_assets.logic.markdown import first_line_title
from campaign_assets.logic.prompts import PromptRequest
from campaign_assets.spec import CampaignSpec

# ---- limits per channel (what each place shows or accepts) --------------------------
# An email subject over 78 characters is folded by RFC 5322 and cut by every
# inbox preview; a meta description over 160 is cut by search result pages.
EMAIL_SUBJECT_MAX = 78
META_DESCRIPTION_MAX = 160
# Characters per post as each network (and Buffer, which schedules to them) accepts them.
SOCIAL_LIMITS: Mapping[str, int] = {
    "twitter": 280,
    "linkedin": 3000,
    "facebook": 63206,
    "instagram": 2200,
    "threads": 500,
    "mastodon": 500,
}
VOICE_PASS_SCORE = 7  # out of 10: below it, the brand-voice check warns

DEFAULT_SEND_HOUR_UTC = 15
DEFAULT_POST_HOUR_UTC = 16
UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign")
# Links as a reader sees them: web links, and the file links of the local backends' pages.
_URL = re.compile(r"(?:https?|file)://[^\s<>\"')\]]+", re.IGNORECASE)


@dataclass(frozen=True)
class EmailOut:
    key: str  # the email piece's key
    subject: str
    html: str
    text: str
    list_id: str
    send_at: str  # ISO 8601, UTC


@dataclass(frozen=True)
class PostOut:
    key: str  # <piece key>@<profile id>
    piece_key: str
    profile_id: str
    network: str
    text: str
    scheduled_at: str  # ISO 8601, UTC


@dataclass(frozen=True)
class FileOut:
    path: str  # on the published site
    source: str  # the local file
    sha256: str
    size: int


@dataclass(frozen=True)
class SpendOut:
    channel: str
    dsp: str
    budget_cents: int
    start: str
    end: str


@dataclass(frozen=True)
class Release:
    """Everything that would reach a customer, or spend money, once approved."""

    campaign: str
    landing_url: str | None
    meta_description: str
    emails: tuple[EmailOut, ...] = ()
    posts: tuple[PostOut, ...] = ()
    files: tuple[FileOut, ...] = ()
    spend: tuple[SpendOut, ...] = ()
    currency: str = "USD"

    @property
    def fingerprint(self) -> str:
        return fingerprint_of(self.as_dict())

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Release:
        return cls(
            campaign=data["campaign"],
            landing_url=data["landing_url"],
            meta_description=data["meta_description"],
            emails=tuple(EmailOut(**e) for e in data.get("emails", ())),
            posts=tuple(PostOut(**p) for p in data.get("posts", ())),
            files=tuple(FileOut(**f) for f in data.get("files", ())),
            spend=tuple(SpendOut(**s) for s in data.get("spend", ())),
            currency=data.get("currency", "USD"),
        )

    def summary(self) -> dict[str, int]:
        return {"emails": len(self.emails), "posts": len(self.posts), "files": len(self.files), "line_items": len(self.spend)}


def fingerprint_of(release: Mapping[str, Any]) -> str:
    """sha256 of the release's canonical JSON. The local file paths are
    where the bytes are, not what goes out: only their digests count."""
    content = dict(release)
    content["files"] = [{k: v for k, v in f.items() if k != "source"} for f in release.get("files", ())]
    blob = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()


# ---- building the release -----------------------------------------------------------
def _at(value: dt.datetime | None, day: dt.date, hour: int) -> dt.datetime:
    if value is not None:
        return value.astimezone(dt.timezone.utc)
    return dt.datetime.combine(day, dt.time(hour), tzinfo=dt.timezone.utc)


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")


def _body_without_title(body: str) -> str:
    """A piece's text after its title line (and a leading ``Subject:`` line)."""
    lines = body.strip().splitlines()
    if lines and (lines[0].lstrip().startswith("#") or lines[0].lower().startswith("subject:")):
        lines = lines[1:]
    return "\n".join(lines).strip()


def _paragraphs(markdown: str) -> list[str]:
    out = []
    for block in re.split(r"\n\s*\n", markdown):
        text = " ".join(line.strip().lstrip("#-* ").strip() for line in block.splitlines()).strip()
        if text:
            out.append(text)
    return out


def _host(url: str | None) -> str:
    return urlsplit(url or "").netloc.lower()


def retarget_links(text: str, brand_website: str | None, tracked: str) -> str:
    """Links to the brand's own site (the page the campaign lives under) lead
    to the tracked landing page instead; links anywhere else stay, and the
    link check flags them."""
    host = _host(brand_website)
    if not host or not tracked:
        return text
    return _URL.sub(lambda m: tracked if _host(m.group(0)) == host else m.group(0), text)


def strip_brand_links(text: str, brand_website: str | None) -> str:
    """A post's text without links to the brand's own site (the post ends with the tracked link)."""
    host = _host(brand_website)
    if not host:
        return text
    return " ".join(_URL.sub(lambda m: "" if _host(m.group(0)) == host else m.group(0), text).split())


def fit_post(text: str, link: str, limit: int) -> str:
    """``text`` then the link, cut at a word boundary (with an ellipsis) so the
    whole post fits ``limit`` characters."""
    room = limit - len(link) - 1
    if len(text) > room:
        cut = text[: max(room - 1, 0)]
        cut = cut[: cut.rfind(" ")] if " " in cut else cut
        text = cut.rstrip(" ,.;:") + "…"
    return f"{text} {link}".strip()


def email_html(title: str, markdown: str, link: str, cta: str) -> str:
    """The email's HTML: the piece rendered by markdown-it (raw HTML off, so
    the LLM's text cannot inject markup) and one call to action."""
    renderer = MarkdownIt("commonmark", {"html": False})
    body = renderer.render(markdown)
    escaped_title = renderer.renderInline(title)
    return (
        f'<!doctype html><html><body><h1>{escaped_title}</h1>\n{body}'
        f'<p><a href="{link}">{cta}</a></p></body></html>\n'
    )


def landing_url_for(spec: CampaignSpec, pages_url: str | None) -> str | None:
    """Where the campaign's links lead: the published page when the campaign
    publishes to the web, else the brand site's campaign page (if any)."""
    if pages_url:
        return pages_url
    from campaign_assets.logic.landing import canonical_url

    return canonical_url(spec.brand.website, spec.id)


def site_path(spec: CampaignSpec) -> str:
    """Where the campaign's files go on the published site."""
    web = spec.distribution.web if spec.distribution else None
    return (web.path if web and web.path else spec.id).strip("/")


def build_release(
    spec: CampaignSpec,
    pieces: Sequence[Mapping[str, Any]],
    meta_description: str,
    landing_url: str | None,
    files: Sequence[FileOut],
    plan: pd.DataFrame | None,
) -> Release:
    """What goes out for ``spec``: one email per email piece (a day apart, in
    vector order), one post per social piece and profile (an hour apart),
    the web files, and the DSP line items' budgets."""
    dist = spec.distribution
    emails: list[EmailOut] = []
    posts: list[PostOut] = []
    link = landing_url or ""
    if dist and dist.email:
        start = _at(dist.email.send_at, spec.flight.start, DEFAULT_SEND_HOUR_UTC)
        for i, piece in enumerate(p for p in pieces if p["content_type"] == "email"):
            tracked = tracked_url(link, spec.id, "email", "email", piece["key"]) if link else ""
            body = retarget_links(_body_without_title(piece["body"]), spec.brand.website, tracked)
            title = first_line_title(piece["body"], piece["title"])
            emails.append(
                EmailOut(
                    key=piece["key"],
                    subject=title,
                    html=email_html(title, body, tracked, "Learn more"),
                    text=f"{title}\n\n{body}\n\nLearn more: {tracked}\n",
                    list_id=dist.email.list_id,
                    send_at=_iso(start + dt.timedelta(days=i)),
                )
            )
    if dist and dist.social:
        start = _at(dist.social.post_at, spec.flight.start, DEFAULT_POST_HOUR_UTC)
        social = [p for p in pieces if p["content_type"] == "social-post"]
        n = 0
        for piece in social:
            paragraphs = _paragraphs(_body_without_title(piece["body"])) or [piece["title"]]
            for profile in dist.social.profiles:
                tracked = tracked_url(link, spec.id, profile.network, "social", piece["key"]) if link else ""
                posts.append(
                    PostOut(
                        key=f"{piece['key']}@{profile.id}",
                        piece_key=piece["key"],
                        profile_id=profile.id,
                        network=profile.network,
                        text=fit_post(
                            strip_brand_links(paragraphs[0], spec.brand.website), tracked, SOCIAL_LIMITS[profile.network]
                        ),
                        scheduled_at=_iso(start + dt.timedelta(hours=n)),
                    )
                )
                n += 1
    spend: list[SpendOut] = []
    if plan is not None and len(plan):
        for channel in spec.dsp_channels:
            rows = plan[plan["channel"] == channel.name]
            if not len(rows):
                continue
            cents = int(sum(round(float(b) * 100) for b in rows["budget"]))
            spend.append(
                SpendOut(
                    channel=channel.name,
                    dsp=channel.dsp or "",
                    budget_cents=cents,
                    start=str(min(rows["week_start"])),
                    end=str(max(rows["week_end"])),
                )
            )
    web = bool(dist and dist.web)
    return Release(
        campaign=spec.id,
        landing_url=landing_url,
        meta_description=meta_description,
        emails=tuple(emails),
        posts=tuple(posts),
        files=tuple(files) if web else (),
        spend=tuple(spend),
        currency=spec.budget.currency,
    )


# ---- the automated checks -----------------------------------------------------------
@dataclass(frozen=True)
class Finding:
    check: str
    item: str
    reason: str


def length_findings(release: Release) -> list[Finding]:
    """Every text over its channel's limit: email subjects, each post for its
    network, the landing page's meta description."""
    found = []
    for e in release.emails:
        if len(e.subject) > EMAIL_SUBJECT_MAX:
            found.append(Finding("lengths", f"email:{e.key}", f"subject is {len(e.subject)} characters; the limit is {EMAIL_SUBJECT_MAX}"))
    for p in release.posts:
        limit = SOCIAL_LIMITS[p.network]
        if len(p.text) > limit:
            found.append(Finding("lengths", f"post:{p.key}", f"{p.network} post is {len(p.text)} characters; the limit is {limit}"))
    if len(release.meta_description) > META_DESCRIPTION_MAX:
        found.append(
            Finding(
                "lengths",
                "landing_page:meta_description",
                f"meta description is {len(release.meta_description)} characters; the limit is {META_DESCRIPTION_MAX}",
            )
        )
    return found


def phrase_pattern(phrase: str) -> re.Pattern[str]:
    """``phrase`` as whole words, any case, any run of spaces between its words."""
    words = [re.escape(w) for w in phrase.split()]
    return re.compile(r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)", re.IGNORECASE)


def outgoing_texts(release: Release, landing_text: str) -> dict[str, str]:
    """Every text a customer would read, by item."""
    texts = {f"email:{e.key}": f"{e.subject}\n{e.text}" for e in release.emails}
    texts |= {f"post:{p.key}": p.text for p in release.posts}
    texts["landing_page"] = f"{release.meta_description}\n{landing_text}"
    return texts


def banned_phrase_findings(texts: Mapping[str, str], phrases: Iterable[str]) -> list[Finding]:
    found = []
    patterns = [(p, phrase_pattern(p)) for p in phrases]
    for item, text in texts.items():
        for phrase, pattern in patterns:
            hits = len(pattern.findall(text))
            if hits:
                found.append(Finding("banned_phrases", item, f"says {phrase!r} ({hits}x), which the brand bans"))
    return found


def links_in(text: str) -> list[str]:
    return [u.rstrip(".,;:!?…") for u in _URL.findall(text)]


def link_findings(release: Release) -> list[Finding]:
    """Every link in an email or a post must lead to the campaign's landing
    page and carry utm_source, utm_medium and utm_campaign=<campaign id>."""
    found = []
    texts = {f"email:{e.key}": f"{e.text}\n{e.html}" for e in release.emails}
    texts |= {f"post:{p.key}": p.text for p in release.posts}
    if texts and not release.landing_url:
        return [Finding("links", "landing_page", "the campaign has no landing page URL: publish it (distribution.web) or set brand.website")]
    landing = urlsplit(release.landing_url or "")
    for item, text in texts.items():
        links = links_in(text)
        if not links:
            found.append(Finding("links", item, "has no link to the landing page"))
        for link in dict.fromkeys(links):
            parts = urlsplit(link.replace("&amp;", "&"))
            if (parts.scheme, parts.netloc, parts.path) != (landing.scheme, landing.netloc, landing.path):
                found.append(Finding("links", item, f"links to {link}, not to the landing page {release.landing_url}"))
                continue
            query = dict(parse_qsl(parts.query))
            missing = [k for k in UTM_KEYS if not query.get(k)]
            if missing:
                found.append(Finding("links", item, f"link {link} lacks {', '.join(missing)}"))
            elif query["utm_campaign"] != release.campaign:
                found.append(Finding("links", item, f"link {link} has utm_campaign={query['utm_campaign']}, not {release.campaign}"))
    return found


# ---- the LLM's brand-voice review -----------------------------------------------------
@dataclass(frozen=True)
class VoiceReview:
    score: int | None  # 1..10; None when the answer had no score
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.score is not None and self.score >= VOICE_PASS_SCORE


def voice_heuristics(spec: CampaignSpec, texts: Mapping[str, str]) -> dict[str, Any]:
    """Facts the local backend judges the voice from (the HTTP model reads
    the texts themselves): banned phrases used, pieces that never name the
    brand, shouting (exclamation marks, words in capitals), long sentences."""
    banned = banned_phrase_findings(texts, spec.brand.banned_phrases)
    unnamed = [k for k, t in texts.items() if spec.brand.name.lower() not in t.lower() and not k.startswith("post:")]
    shouting = [k for k, t in texts.items() if t.count("!") > 2 or re.search(r"\b[A-Z]{5,}\b", t)]
    sentences = [s for t in texts.values() for s in re.split(r"(?<=[.!?])\s+", t) if s.strip()]
    long = sum(1 for s in sentences if len(s.split()) > 35)
    notes = [f"{f.item} {f.reason}" for f in banned]
    notes += [f"{k} never names {spec.brand.name}" for k in unnamed]
    notes += [f"{k} shouts (exclamation marks or capitals), off a {spec.tone} tone" for k in shouting]
    if long:
        notes.append(f"{long} sentence(s) over 35 words")
    score = max(1, 10 - 3 * len(banned) - len(unnamed) - 2 * len(shouting) - min(long, 2))
    return {"score": score, "notes": notes or [f"Consistent with a {spec.tone} tone and the brief's key messages."]}


def voice_request(spec: CampaignSpec, brief_markdown: str, texts: Mapping[str, str]) -> PromptRequest:
    """Ask the LLM to score the outgoing texts' brand voice against the brief,
    as JSON ``{"score": 1-10, "notes": [...]}``."""
    shown = "\n\n".join(f"### {item}\n{text[:1500]}" for item, text in texts.items())
    prompt = (
        f"Review the brand voice of everything that will go out for the campaign '{spec.name}' of "
        f"{spec.brand.name}. The tone is to be {spec.tone}; the brand never says: "
        f"{', '.join(spec.brand.banned_phrases) or '(nothing listed)'}.\n\n"
        f"The brief:\n{brief_markdown[:4000]}\n\nThe texts:\n{shown[:12000]}\n\n"
        'Answer with JSON only: {"score": <integer 1-10, 10 = exactly on voice>, "notes": ["<one finding per line>"]}'
    )
    return PromptRequest(
        kind="review",
        system="You are a meticulous brand editor. You judge voice and claims, not grammar.",
        prompt=prompt,
        context=voice_heuristics(spec, texts),
        max_tokens=600,
        json_reply=True,
    )


def parse_voice(text: str) -> VoiceReview:
    """The score and notes from the model's answer: JSON when it answered
    JSON (fenced or not), else a ``score: N`` line, else no score."""
    match = re.search(r"\{.*\}", text, flags=re.S)
    if match:
        try:
            data = json.loads(match.group(0))
        except ValueError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("score"), (int, float)):
            notes = data.get("notes") or []
            notes = [str(n) for n in notes] if isinstance(notes, list) else [str(notes)]
            return VoiceReview(max(1, min(10, round(data["score"]))), notes)
    line = re.search(r"score\D{0,5}(\d{1,2})\s*(?:/\s*10)?", text, flags=re.I)
    if line:
        return VoiceReview(max(1, min(10, int(line.group(1)))), [text.strip()[:500]])
    return VoiceReview(None, [text.strip()[:500] or "the model gave no answer"])
