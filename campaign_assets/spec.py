"""The campaign spec: one YAML file per campaign (DESIGN.md §1).

The pydantic model is the contract. ``load_spec`` turns a file into a
``CampaignSpec`` or raises ``SpecError`` whose message names the file, the
field path and the reason. Nothing here touches the network or the disk
beyond reading the file. A file or folder is a local path or a URL
(``s3://bucket/prefix``: ``storage.location``), so specs can live in a bucket.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from campaign_assets.storage import fresh, location, read_all

if TYPE_CHECKING:
    from upath import UPath

CAMPAIGN_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
SPEC_SUFFIXES = (".yaml", ".yml")
SHARE_TOLERANCE = 0.001
_SIZE = re.compile(r"^(\d{1,5})x(\d{1,5})$")
# Display ad sizes go from tiny mobile units to large billboards; anything
# outside this box is a typo, not an ad.
MIN_AD_SIDE, MAX_AD_SIDE = 10, 4000

CONTENT_TYPES = (
    "blog-post",
    "social-post",
    "press-release",
    "email",
    "case-study",
    "whitepaper",
    "video-script",
    "landing-copy",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


# BCP 47, loosely: a 2-3 letter language, then subtags (script, region,
# variant) of 2-8 letters or digits: en, en-US, pt-BR, zh-Hant-TW, es-419.
LANGUAGE_TAG_PATTERN = r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$"


class Brand(_Strict):
    name: str = Field(min_length=1)
    primary_color: str = Field(default="#0B5FFF", pattern=r"^#[0-9A-Fa-f]{6}$")
    website: str | None = Field(default=None, pattern=r"^https?://\S+$")
    # Phrases the brand never says: the review flags any piece that does
    # (case-insensitive, whole words), and the prompts ask the LLM to avoid them.
    banned_phrases: list[str] = Field(default_factory=list, max_length=200)

    @field_validator("banned_phrases")
    @classmethod
    def _phrases(cls, phrases: list[str]) -> list[str]:
        cleaned = [p.strip() for p in phrases]
        if any(not p for p in cleaned):
            raise ValueError("banned phrases must not be empty")
        if len({p.lower() for p in cleaned}) != len(cleaned):
            raise ValueError("banned phrases repeat")
        return cleaned


class Budget(_Strict):
    total: float = Field(gt=0)
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")


class Flight(_Strict):
    start: dt.date
    end: dt.date

    @model_validator(mode="after")
    def _ordered(self) -> Flight:
        if self.end < self.start:
            raise ValueError(f"end ({self.end}) is before start ({self.start})")
        return self

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


class Channel(_Strict):
    name: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    share: float = Field(gt=0, le=1)
    dsp: Literal["amazon", "trade_desk", "dv360"] | None = None


class Vector(_Strict):
    stakeholder_group: str = Field(min_length=1)
    timing: str = Field(default="", max_length=80)
    content_types: list[Literal[CONTENT_TYPES]] = Field(min_length=1)  # type: ignore[valid-type]

    @field_validator("content_types")
    @classmethod
    def _unique_types(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("content types repeat")
        return value


# Seed 000's content patterns: each shapes the content prompts (logic/prompts.py).
PATTERNS = ("CASCADE", "MIRROR", "CHORUS", "TROJAN", "NETWORK", "TRADITIONAL")
MAX_COMPETITORS = 10


class Research(_Strict):
    """What to look at before the brief: competitor pages (http(s) URLs,
    fetched by ``market_research``) and the topics the brief should weigh."""

    competitors: list[str] = Field(default_factory=list, max_length=MAX_COMPETITORS)
    topics: list[str] = Field(default_factory=list, max_length=20)

    @field_validator("competitors")
    @classmethod
    def _http_urls(cls, urls: list[str]) -> list[str]:
        for u in urls:
            if not re.match(r"^https?://[^\s/?#]+[^\s]*$", u, re.IGNORECASE):
                raise ValueError(f"competitor {u!r} is not an http(s) URL")
        if len(set(urls)) != len(urls):
            raise ValueError("competitor URLs repeat")
        return urls


class Reviewer(_Strict):
    """A person who approves what goes out: a name, and their Slack member id
    (``U...``) so the review message mentions them."""

    name: str = Field(min_length=1, max_length=120)
    slack: str | None = Field(default=None, pattern=r"^[UW][A-Z0-9]{2,20}$")


# The networks Buffer schedules to, and what each allows in one post.
SOCIAL_NETWORKS = ("twitter", "linkedin", "facebook", "instagram", "threads", "mastodon")


class SocialProfile(_Strict):
    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")  # Buffer's profile id
    network: Literal[SOCIAL_NETWORKS]  # type: ignore[valid-type]


class EmailDistribution(_Strict):
    """One send to a SendGrid list: at ``send_at`` (default: the flight's
    first day, 15:00 UTC), cancellable until then."""

    list_id: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_-]+$")
    send_at: dt.datetime | None = None

    @field_validator("send_at")
    @classmethod
    def _aware(cls, value: dt.datetime | None) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("send_at needs a time zone, e.g. 2027-03-02T15:00:00Z")
        return value


class SocialDistribution(_Strict):
    """One scheduled post per social piece and profile, from ``post_at``
    (default: the flight's first day, 16:00 UTC), an hour apart."""

    profiles: list[SocialProfile] = Field(min_length=1, max_length=20)
    post_at: dt.datetime | None = None

    @field_validator("profiles")
    @classmethod
    def _unique(cls, profiles: list[SocialProfile]) -> list[SocialProfile]:
        if len({p.id for p in profiles}) != len(profiles):
            raise ValueError("profile ids repeat")
        return profiles

    @field_validator("post_at")
    @classmethod
    def _aware(cls, value: dt.datetime | None) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("post_at needs a time zone, e.g. 2027-03-02T16:00:00Z")
        return value


class WebDistribution(_Strict):
    """The landing page and its creatives, published under ``path`` of the
    GitHub Pages site (default: the campaign id)."""

    path: str | None = Field(default=None, max_length=100, pattern=r"^[a-z0-9][a-z0-9/_-]*$")


class Distribution(_Strict):
    """Where the campaign goes out after a person approves it. Each part is optional."""

    email: EmailDistribution | None = None
    social: SocialDistribution | None = None
    web: WebDistribution | None = None

    @model_validator(mode="after")
    def _something(self) -> Distribution:
        if not (self.email or self.social or self.web):
            raise ValueError("name at least one of email, social, web")
        return self


class TaskSpec(_Strict):
    name: str = Field(min_length=1, max_length=200)
    notes: str = ""
    offset_days: int = Field(ge=-365, le=730)


class CampaignSpec(_Strict):
    id: str = Field(pattern=CAMPAIGN_ID_PATTERN)
    name: str = Field(min_length=1, max_length=200)
    organization: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    objective: Literal["awareness", "consideration", "conversion"]
    pattern: Literal[PATTERNS] = "TRADITIONAL"  # type: ignore[valid-type]
    audience: str = Field(min_length=1)
    tone: str = "professional"
    language: str = Field(default="en", max_length=35, pattern=LANGUAGE_TAG_PATTERN)  # the landing page's lang
    brand: Brand
    budget: Budget
    flight: Flight
    channels: list[Channel] = Field(min_length=1)
    vectors: list[Vector] = Field(min_length=1)
    creative_sizes: list[str] = Field(min_length=1)
    tasks: Literal["default"] | list[TaskSpec] = "default"
    research: Research | None = None  # optional: no section, no market research calls
    # Optional: either section puts the campaign through review and human
    # approval; distribution says where it goes out once approved.
    reviewers: list[Reviewer] | None = Field(default=None, min_length=1, max_length=20)
    distribution: Distribution | None = None

    @field_validator("channels")
    @classmethod
    def _shares_sum_to_one(cls, channels: list[Channel]) -> list[Channel]:
        names = [c.name for c in channels]
        if len(set(names)) != len(names):
            raise ValueError("channel names repeat")
        total = sum(c.share for c in channels)
        if abs(total - 1.0) > SHARE_TOLERANCE:
            raise ValueError(f"channel shares sum to {total:.4f}, expected 1 (±{SHARE_TOLERANCE})")
        return channels

    @field_validator("vectors")
    @classmethod
    def _unique_groups(cls, vectors: list[Vector]) -> list[Vector]:
        groups = [slugify(v.stakeholder_group) for v in vectors]
        if len(set(groups)) != len(groups):
            raise ValueError("stakeholder groups repeat")
        return vectors

    @field_validator("creative_sizes")
    @classmethod
    def _valid_sizes(cls, sizes: list[str]) -> list[str]:
        for size in sizes:
            parse_size(size)
        if len(set(sizes)) != len(sizes):
            raise ValueError("creative sizes repeat")
        return sizes

    @field_validator("tasks")
    @classmethod
    def _unique_tasks(cls, tasks: str | list[TaskSpec]) -> str | list[TaskSpec]:
        if isinstance(tasks, list):
            slugs = [slugify(t.name) for t in tasks]
            if len(set(slugs)) != len(slugs):
                raise ValueError("task names repeat")
        return tasks

    # ---- derived views -------------------------------------------------
    @property
    def reviewed(self) -> bool:
        """Goes through review and approval (either optional section is present)."""
        return self.reviewers is not None or self.distribution is not None

    @property
    def dsp_channels(self) -> list[Channel]:
        return [c for c in self.channels if c.dsp]

    def launch_tasks(self) -> list[PlannedTask]:
        """The project plan: the explicit task list, or the default 13-task plan."""
        tasks = DEFAULT_TASKS if self.tasks == "default" else self.tasks
        return [
            PlannedTask(
                key=slugify(t.name),
                name=t.name,
                notes=t.notes,
                due_on=self.flight.start + dt.timedelta(days=t.offset_days),
            )
            for t in tasks
        ]

    def content_matrix(self) -> list[tuple[Vector, str]]:
        return [(v, ct) for v in self.vectors for ct in v.content_types]


@dataclass(frozen=True)
class PlannedTask:
    key: str
    name: str
    notes: str
    due_on: dt.date


DEFAULT_TASKS: tuple[TaskSpec, ...] = tuple(
    TaskSpec(name=name, notes=notes, offset_days=offset)
    for name, notes, offset in (
        ("Kickoff meeting", "Align owners, goals and KPIs for the campaign.", -42),
        ("Finalize brief", "Sign off the campaign brief with stakeholders.", -35),
        ("Approve media plan", "Confirm channel budgets and weekly pacing.", -30),
        ("Creative concepts", "Agree concepts and headlines for every ad size.", -28),
        ("Produce creatives", "Render and review all ad sizes.", -21),
        ("Write content pieces", "Draft content for every stakeholder vector.", -21),
        ("Legal and brand review", "Review claims, trademarks and brand usage.", -14),
        ("Build landing page", "Publish the landing page and tracking.", -10),
        ("Traffic DSP line items", "Set up line items and pacing in each DSP.", -5),
        ("QA tracking and links", "Verify pixels, UTM parameters and links.", -3),
        ("Launch", "Campaign goes live.", 0),
        ("Mid-flight optimization", "Rebalance budget toward the best channels.", 21),
        ("Wrap-up report", "Summarize results and learnings.", 60),
    )
)


class SpecError(Exception):
    """A spec that cannot be used. ``errors`` holds (field path, reason) pairs."""

    def __init__(self, source: str, errors: list[tuple[str, str]]):
        self.source = source
        self.errors = errors
        lines = [f"{source}: invalid campaign spec"]
        lines += [f"  {path or '<file>'}: {reason}" for path, reason in errors]
        super().__init__("\n".join(lines))


def slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "item"


def parse_size(size: str) -> tuple[int, int]:
    match = _SIZE.match(size.strip())
    if not match:
        raise ValueError(f"ad size {size!r} is not WIDTHxHEIGHT")
    width, height = int(match.group(1)), int(match.group(2))
    for side in (width, height):
        if not MIN_AD_SIDE <= side <= MAX_AD_SIDE:
            raise ValueError(
                f"ad size {size!r} is impossible: each side must be {MIN_AD_SIDE}..{MAX_AD_SIDE} px"
            )
    return width, height


def _loc(loc: tuple) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in CONTENT_TYPES or str(part).startswith(("literal[", "list[")):
            continue  # pydantic's union-branch labels are noise for a person
        else:
            path += f".{part}" if path else str(part)
    return path


# libyaml when the wheel has it (the sensor parses every spec each tick).
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse_spec(text: str, source: str = "<spec>") -> CampaignSpec:
    try:
        data = yaml.load(text, Loader=_YAML_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise SpecError(source, [("", f"not valid YAML: {where}{getattr(exc, 'problem', exc)}")]) from None
    if not isinstance(data, dict):
        raise SpecError(source, [("", "expected a mapping of fields at the top level")])
    try:
        return CampaignSpec.model_validate(data)
    except ValidationError as exc:
        errors = []
        for err in exc.errors():
            reason = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                reason = "unknown field"
            errors.append((_loc(err["loc"]), reason))
        # A union (tasks) reports one error per branch; keep each once.
        raise SpecError(source, list(dict.fromkeys(errors))) from None


def load_spec(path: str | Path | UPath) -> CampaignSpec:
    path = fresh(location(path))
    try:
        data: bytes | Exception = path.read_bytes()
    except OSError as exc:
        data = exc
    return spec_from_bytes(path, data)


def spec_from_bytes(path: Path | UPath, data: bytes | Exception) -> CampaignSpec:
    """The spec in a file's bytes (or the error reading them), named by its path."""
    try:
        if isinstance(data, Exception):
            raise data
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(str(path), [("", f"cannot read file: {exc}")]) from None
    spec = parse_spec(text, str(path))
    if path.stem != spec.id:
        raise SpecError(str(path), [("id", f"{spec.id!r} must match the file name {path.stem!r}")])
    return spec


def spec_hash(spec: CampaignSpec, fields: Iterable[str] | None = None) -> str:
    """Stable hash of the validated content (formatting and comments do not
    count), or of just ``fields`` of it. Fields left at their default do not
    count either: a later version that adds an optional section (``research``,
    ``language``...) leaves the hash of every spec that does not use it as it
    was, so upgrading does not re-run every campaign."""
    include = set(fields) if fields is not None else None
    return hashlib.sha256(spec.model_dump_json(include=include, exclude_defaults=True).encode()).hexdigest()[:16]


# Which spec fields each part of the graph reads. Each section is an asset
# whose data version hashes only its fields, so a change to the creative
# sizes makes the creatives stale and leaves the brief, plan and tasks fresh.
# test_sections_cover_what_consumers_read keeps this table honest.
_IDENTITY = ("id", "name", "organization")
SPEC_SECTIONS: dict[str, tuple[str, ...]] = {
    "brief_inputs": (*_IDENTITY, "objective", "pattern", "audience", "tone", "language", "brand", "budget", "flight", "channels", "vectors"),
    "plan_inputs": (*_IDENTITY, "budget", "flight", "channels"),
    "task_inputs": (*_IDENTITY, "flight", "tasks"),
    "creative_inputs": (*_IDENTITY, "objective", "audience", "brand", "creative_sizes"),
    # market_research: the pages to read, the brand they are compared with,
    # and the pattern its vault folder is named after.
    "research_inputs": (*_IDENTITY, "pattern", "brand", "research"),
    # campaign_review and everything behind the approval gate: the checks
    # (brand's banned phrases, the channels' limits), who is asked, where it goes.
    "review_inputs": (*_IDENTITY, "tone", "brand", "budget", "flight", "channels", "reviewers", "distribution"),
}


@dataclass(frozen=True)
class SpecFile:
    path: Path | UPath
    spec: CampaignSpec | None
    error: SpecError | None


def scan_campaigns(folder: str | Path | UPath) -> list[SpecFile]:
    """Every spec file in the folder (local or a bucket prefix), valid or not, sorted by name."""
    folder = fresh(location(folder))
    if not folder.is_dir():
        return []
    found = []
    paths = sorted((p for p in folder.iterdir() if p.suffix in SPEC_SUFFIXES and p.is_file()), key=lambda p: p.name)
    for path, data in zip(paths, read_all(paths)):
        try:
            found.append(SpecFile(path, spec_from_bytes(path, data), None))
        except SpecError as exc:
            found.append(SpecFile(path, None, exc))
    return found


def find_spec_path(folder: str | Path | UPath, campaign_id: str) -> Path | UPath:
    for suffix in SPEC_SUFFIXES:
        path = fresh(location(folder) / f"{campaign_id}{suffix}")
        if path.is_file():
            return path
    raise FileNotFoundError(f"no spec for campaign {campaign_id!r} in {folder}")
