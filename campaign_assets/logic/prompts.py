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

from campaign_assets.spec import SPEC_SECTIONS, CampaignSpec, Vector

BRIEF_SECTIONS = ("Objective", "Audience", "Key Messages", "Channels and Budget", "Timeline", "Success Metrics")

_OBJECTIVE = {
    "awareness": ("remembering the brand", ["Reach", "Aided brand recall lift", "Share of voice in the category"]),
    "consideration": (
        "shortlisting the offer",
        ["Engaged sessions", "Content downloads and registrations", "Cost per engaged visit"],
    ),
    "conversion": ("buying", ["Conversions and revenue", "Cost per acquisition", "Return on ad spend"]),
}
_PATTERN_NOTES = {
    "CASCADE": "one idea announced first, then unfolded group by group, each wave building on the last.",
    "BURST": "a short, concentrated push while intent is at its peak.",
    "TRADITIONAL": "steady, always-on presence across the flight.",
}
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
        pattern_note=_PATTERN_NOTES.get(spec.pattern, "a plan shaped around the audience's calendar."),
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


def brief_request(spec: CampaignSpec) -> PromptRequest:
    sections = "\n".join(f"## {s}" for s in BRIEF_SECTIONS)
    prompt = (
        f"Write the campaign brief for '{spec.name}' as markdown, starting with '# {spec.name} — Campaign Brief' "
        f"and containing exactly these sections:\n{sections}\n\n"
        f"Facts:\n{spec.model_dump_json(indent=2, include=set(SPEC_SECTIONS['brief_inputs']))}"
    )
    return PromptRequest("brief", _system(spec), prompt, _spec_context(spec), max_tokens=1500)


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
    )
    prompt = (
        f"Write one {content_type.replace('-', ' ')} for {group} ({vector.timing or 'during the flight'}) "
        f"for the campaign '{spec.name}'. Audience: {spec.audience}. Objective: {spec.objective}. "
        f"Website: {spec.brand.website or 'n/a'}.\n\nCampaign brief (excerpt):\n{brief_excerpt[:2000]}"
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
