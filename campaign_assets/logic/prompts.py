"""Prompts for the LLM, and the facts the local backend writes its prose from.

Every LLM call is a ``PromptRequest``: the messages an HTTP model receives,
plus the structured ``context`` the local backend (``services/llm.py``,
``render_locally``) renders with Jinja2 templates. Both come from the spec,
so the offline default writes real, campaign-specific prose rather than
placeholder text. Pure functions only.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from campaign_assets.spec import PATTERNS, SPEC_SECTIONS, CampaignSpec, Vector

BRIEF_SECTIONS = ("Objective", "Audience", "Key Messages", "Channels and Budget", "Timeline", "Success Metrics")

_OBJECTIVE = {
    "awareness": ("remembering the brand", ["Reach", "Aided brand recall lift", "Share of voice in the category"]),
    "consideration": (
        "shortlisting the offer",
        ["Engaged sessions", "Content downloads and registrations", "Cost per engaged visit"],
    ),
    "conversion": ("buying", ["Conversions and revenue", "Cost per acquisition", "Return on ad spend"]),
}
# Seed 000's patterns: how the campaign's pieces relate to each other. The
# note is the brief's one-line description; the instruction goes into every
# content prompt.
_PATTERN_NOTES = {
    "CASCADE": "one idea announced first, then unfolded group by group, each wave building on the last.",
    "MIRROR": "each group sees its own situation reflected back in its own words before it hears the offer.",
    "CHORUS": "every group hears the same core message at the same moment, each in its own voice.",
    "TROJAN": "useful, non-promotional value leads; the offer arrives late, as the natural next step.",
    "NETWORK": "pieces written to be passed on, so each group carries the message to the next.",
    "TRADITIONAL": "steady, always-on presence across the flight.",
}
PATTERN_INSTRUCTIONS = {
    "CASCADE": "Pattern CASCADE: build on what the earlier waves announced; refer back to the core idea and add "
    "what is new for this group, so the piece reads as the next step of one story.",
    "MIRROR": "Pattern MIRROR: open with the reader's own problem in the words this group uses; state the offer "
    "only after the reader recognises their situation.",
    "CHORUS": "Pattern CHORUS: state the campaign's one core message plainly and early, unchanged in substance, "
    "framed for this group; every group's piece must make the same claim.",
    "TROJAN": "Pattern TROJAN: lead with practical, non-promotional value (a tip, a number, a how-to); mention "
    "the brand lightly and late, as the natural way to act on it.",
    "NETWORK": "Pattern NETWORK: write something this group will forward to peers and partners; include one "
    "line that is easy to quote and an explicit invitation to share.",
    "TRADITIONAL": "Pattern TRADITIONAL: a clear benefit, one proof point and a direct call to action.",
}
assert set(_PATTERN_NOTES) == set(PATTERN_INSTRUCTIONS) == set(PATTERNS)
_PAINS = [
    "too many tools and too little time",
    "decisions that wait on slow, manual reporting",
    "budgets that must prove their return every quarter",
    "teams stretched across more work than ever",
]
_BENEFITS = [
    "one place to plan, run and measure the work",
    "automation that removes the busywork",
    "clear numbers that make the next decision obvious",
    "a faster path from idea to result",
]
_OUTCOMES = [
    "results they can show within weeks",
    "hours back every week",
    "fewer handoffs and fewer surprises",
    "confidence in every decision",
]
_PROOFS = [
    "Early customers report shorter cycles and clearer reporting from the first month.",
    "Pilot teams moved from weekly spreadsheets to live dashboards in days.",
    "Customers in the beta cut their manual steps by more than half.",
]
_URGENCY = [
    "Budgets for next year are being set now.",
    "Every quarter spent on manual work is a quarter competitors use to pull ahead.",
    "The teams that standardise first set the bar for everyone else.",
]


def _pick(options: list[str], *salt: str) -> str:
    digest = hashlib.sha256("|".join(salt).encode()).digest()
    return options[digest[0] % len(options)]


@dataclass(frozen=True)
class PromptRequest:
    kind: str  # "brief", "content", "summary"
    system: str
    prompt: str
    context: dict[str, Any] = field(default_factory=dict)
    max_tokens: int = 1200
    json_reply: bool = False  # ask for a JSON object (OpenAI's JSON mode, response_format json_object)

    def messages(self) -> list[dict[str, str]]:
        return [{"role": "system", "content": self.system}, {"role": "user", "content": self.prompt}]


def _spec_context(spec: CampaignSpec) -> dict[str, Any]:
    goal, metrics = _OBJECTIVE[spec.objective]
    return dict(
        name=spec.name,
        brand=spec.brand.name,
        website=spec.brand.website or f"the {spec.brand.name} website",
        objective=spec.objective,
        objective_goal=goal,
        metrics=metrics,
        pattern=spec.pattern,
        pattern_note=_PATTERN_NOTES[spec.pattern],
        audience=spec.audience,
        tone=spec.tone,
        budget=f"{spec.budget.total:,.2f} {spec.budget.currency}",
        flight_start=spec.flight.start.isoformat(),
        flight_end=spec.flight.end.isoformat(),
        flight_days=spec.flight.days,
        channels=[c.model_dump() for c in spec.channels],
        vectors=[v.model_dump() for v in spec.vectors],
    )


def _system(spec: CampaignSpec) -> str:
    return (
        f"You are a senior B2B marketer writing for {spec.brand.name}. "
        f"Write in a {spec.tone} tone. Be concrete; no filler, no placeholders."
    )


def brief_request(spec: CampaignSpec, research: str = "") -> PromptRequest:
    """The brief's prompt; ``research`` (market_research's summary, markdown)
    is added when there is one, and the brief gains a Market Research section."""
    sections = "\n".join(f"## {s}" for s in BRIEF_SECTIONS)
    prompt = (
        f"Write the campaign brief for '{spec.name}' as markdown, starting with '# {spec.name} — Campaign Brief' "
        f"and containing exactly these sections:\n{sections}\n\n"
        f"Facts:\n{spec.model_dump_json(indent=2, include=set(SPEC_SECTIONS['brief_inputs']))}"
    )
    if research.strip():
        prompt += (
            "\n\nMarket research (competitors' positioning; position the campaign against it, and add a "
            f"'## Market Research' section that names the competitors):\n{research.strip()[:6000]}"
        )
    return PromptRequest("brief", _system(spec), prompt, _spec_context(spec) | {"research": research.strip()}, max_tokens=1500)


def research_request(spec: CampaignSpec, url: str, page: dict[str, Any], topics: list[str]) -> PromptRequest:
    """Summarize one competitor page's positioning from its extract
    (``logic.extract.Extract.as_dict``): title, description, headings, claims."""
    facts = "\n".join(
        [f"URL: {url}", f"Title: {page['title']}", f"Description: {page['description']}"]
        + [f"Heading: {h}" for h in page["headings"]]
        + [f"Claim: {c}" for c in page["claims"]]
    )
    prompt = (
        f"Summarize in at most five sentences how this competitor of {spec.brand.name} positions itself: "
        "who it targets, what it promises, the proof it offers, and the gap the campaign could use. "
        "Name the page by its title. Use only these facts.\n"
        + (f"Topics to weigh: {', '.join(topics)}\n" if topics else "")
        + f"\n{facts}"
    )
    ctx = {"brand": spec.brand.name, "url": url, "topics": topics, **page}
    return PromptRequest("research", _system(spec), prompt, ctx, max_tokens=400)


def _capitalized(text: str) -> str:
    return text[:1].upper() + text[1:]


def headline(spec: CampaignSpec) -> str:
    """The line on every creative and the landing page hero."""
    return f"{spec.name}: {_capitalized(_pick(_BENEFITS, spec.id, 'headline'))}"


def content_request(spec: CampaignSpec, vector: Vector, content_type: str, brief_excerpt: str) -> PromptRequest:
    group = vector.stakeholder_group
    ctx = _spec_context(spec) | dict(
        stakeholder_group=group,
        timing=vector.timing,
        content_type=content_type,
        headline=f"{_capitalized(_pick(_OUTCOMES, spec.id, group, content_type))} with {spec.brand.name}",
        pain=_pick(_PAINS, spec.id, group),
        benefit=_pick(_BENEFITS, spec.id, group),
        outcome=_pick(_OUTCOMES, spec.id, group, content_type),
        proof=_pick(_PROOFS, spec.id, group, content_type),
        urgency=_pick(_URGENCY, spec.id, group),
        pattern_instruction=PATTERN_INSTRUCTIONS[spec.pattern],
    )
    prompt = (
        f"Write one {content_type.replace('-', ' ')} for {group} ({vector.timing or 'during the flight'}) "
        f"for the campaign '{spec.name}'. Audience: {spec.audience}. Objective: {spec.objective}. "
        f"Website: {spec.brand.website or 'n/a'}.\n{PATTERN_INSTRUCTIONS[spec.pattern]}\n\n"
        f"Campaign brief (excerpt):\n{brief_excerpt[:2000]}"
    )
    return PromptRequest("content", _system(spec), prompt, ctx, max_tokens=900)


def summary_request(spec: CampaignSpec, facts: dict[str, Any]) -> PromptRequest:
    """One paragraph of executive summary; the report's tables are built from facts, not prose."""
    prompt = (
        f"Write a three-sentence executive summary of the state of campaign '{spec.name}'. "
        f"Facts (JSON): {facts}"
    )
    return PromptRequest("summary", _system(spec), prompt, _spec_context(spec) | facts, max_tokens=300)


def message_for(group: str) -> str:
    """A stakeholder group's key message (the local backend's templates call it)."""
    return f"get {_pick(_OUTCOMES, group, 'message')} through {_pick(_BENEFITS, group, 'benefit')}."
