"""Property-based tests of the spec contract (DESIGN.md §1) with hypothesis.

- every generated VALID spec is accepted by ``load_spec``;
- a valid spec with ONE mutation (bad id, shares off, end < start, unknown
  key, wrong type, bad colour, bad size, missing field, ...) is refused with a
  ``SpecError`` naming the mutated field path, and the CLI refuses it without
  writing a file or a row;
- hostile text in every free-text field that reaches a CSV, the landing page,
  a Slack message or a vendor payload stays inert: CSV cells are neutralized
  (campaign_assets.logic.csv_safe) and the HTML is autoescaped.

Examples stay modest and ``deadline=None``: this runs on a busy 2-core box.
``database=None`` keeps hypothesis from writing ``.hypothesis/`` into the checkout.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import datetime as dt
import io
import os
import tempfile
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campaign_assets import cli, workflows
from campaign_assets.logic.csv_safe import DANGEROUS_PREFIXES, dict_csv_text, is_inert, neutralize
from campaign_assets.logic.media_plan import build_media_plan, plan_values
from campaign_assets.services.sheets import LocalSheets, a1_range_for
from campaign_assets.spec import (
    CAMPAIGN_ID_PATTERN,
    CONTENT_TYPES,
    MAX_AD_SIDE,
    MIN_AD_SIDE,
    SHARE_TOLERANCE,
    CampaignSpec,
    SpecError,
    load_spec,
    parse_spec,
    slugify,
)

from .conftest import EXAMPLES, SEED
from .support.hostile import HOSTILE_TEXT

FAST = settings(max_examples=80, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
CLI = settings(max_examples=6, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

# ---- hostile text -----------------------------------------------------------------
HOSTILE_SEEDS = [h[:3000] for h in HOSTILE_TEXT]
_TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=30)
HOSTILE = st.one_of(
    st.sampled_from(HOSTILE_SEEDS),
    st.builds(lambda seed, text: seed + text, st.sampled_from(HOSTILE_SEEDS), _TEXT),
    st.builds(lambda prefix, text: prefix + text, st.sampled_from(DANGEROUS_PREFIXES), _TEXT),
)
PLAIN = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40)


def fit(limit: int) -> Callable[[str], str]:
    """Cut to a field's max length; a cut that is blank after stripping becomes 'x'."""
    return lambda text: text[:limit] if text[:limit].strip() else "x"


def free_text(hostile: bool, limit: int = 100_000) -> st.SearchStrategy[str]:
    return (HOSTILE if hostile else PLAIN).map(fit(limit))


# ---- valid specs ------------------------------------------------------------------
def ids() -> st.SearchStrategy[str]:
    return st.from_regex(CAMPAIGN_ID_PATTERN, fullmatch=True)


@st.composite
def shares(draw: st.DrawFn, n: int) -> list[float]:
    """n positive shares in 0.0001 steps that sum to 1, one nudged within the tolerance."""
    cuts = sorted(draw(st.sets(st.integers(1, 9999), min_size=n - 1, max_size=n - 1)))
    parts = [b - a for a, b in zip([0, *cuts], [*cuts, 10_000])]
    values = [p / 10_000 for p in parts]
    nudge = draw(st.sampled_from([0.0, 0.0009, -0.0009, 0.0005]))
    i = draw(st.integers(0, n - 1))
    if 0 < values[i] + nudge <= 1:
        values[i] = round(values[i] + nudge, 6)
    return values


@st.composite
def valid_specs(draw: st.DrawFn, hostile: bool = False) -> dict[str, Any]:
    n_channels = draw(st.integers(1, 5))
    channel_names = draw(
        st.lists(st.from_regex(r"^[a-z0-9][a-z0-9_-]{0,12}$", fullmatch=True), min_size=n_channels, max_size=n_channels, unique=True)
    )
    channels = []
    for name, share in zip(channel_names, draw(shares(n_channels))):
        channel: dict[str, Any] = {"name": name, "share": share}
        dsp = draw(st.sampled_from([None, "amazon", "trade_desk", "dv360"]))
        if dsp:
            channel["dsp"] = dsp
        channels.append(channel)
    start = draw(st.dates(dt.date(2024, 1, 1), dt.date(2034, 12, 31)))
    end = start + dt.timedelta(days=draw(st.integers(0, 200)))
    groups = draw(
        st.lists(free_text(hostile), min_size=1, max_size=3, unique_by=lambda g: slugify(g.strip()))
    )
    vectors = [
        {
            "stakeholder_group": group,
            "timing": draw(free_text(hostile, 80)),
            "content_types": draw(st.lists(st.sampled_from(CONTENT_TYPES), min_size=1, max_size=3, unique=True)),
        }
        for group in groups
    ]
    sides = st.integers(MIN_AD_SIDE, MAX_AD_SIDE)
    sizes = draw(st.lists(st.builds(lambda w, h: f"{w}x{h}", sides, sides), min_size=1, max_size=4, unique=True))
    tasks: Any = draw(
        st.one_of(
            st.just("default"),
            st.lists(
                st.fixed_dictionaries(
                    {"name": free_text(hostile, 200), "offset_days": st.integers(-365, 730)},
                    optional={"notes": free_text(hostile)},
                ),
                min_size=1,
                max_size=4,
                unique_by=lambda t: slugify(t["name"].strip()),
            ),
        )
    )
    brand: dict[str, Any] = {"name": draw(free_text(hostile))}
    if draw(st.booleans()):
        brand["primary_color"] = draw(st.from_regex(r"^#[0-9A-Fa-f]{6}$", fullmatch=True))
    if draw(st.booleans()):
        tail = "x" if not hostile else draw(st.sampled_from(['x"><script>alert(1)</script>', "x?a=<b>&c='d'", "x/{{7*7}}"]))
        brand["website"] = f"https://{tail}"
    data: dict[str, Any] = {
        "id": draw(ids()),
        "name": draw(free_text(hostile, 200)),
        "organization": draw(st.from_regex(r"^[a-z0-9][a-z0-9_-]{0,62}$", fullmatch=True)),
        "objective": draw(st.sampled_from(["awareness", "consideration", "conversion"])),
        "audience": draw(free_text(hostile)),
        "brand": brand,
        "budget": {"total": draw(st.floats(0.01, 1e9).map(lambda x: round(x, 2)).filter(lambda x: x > 0))},
        "flight": {"start": start, "end": end},
        "channels": channels,
        "vectors": vectors,
        "creative_sizes": sizes,
        "tasks": tasks,
    }
    if draw(st.booleans()):
        data["pattern"] = draw(st.from_regex(r"^[A-Z][A-Z_]{0,15}$", fullmatch=True))
    if draw(st.booleans()):
        data["tone"] = draw(free_text(hostile))
    if draw(st.booleans()):
        data["budget"]["currency"] = draw(st.from_regex(r"^[A-Z]{3}$", fullmatch=True))
    return data


def dump(data: dict[str, Any]) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


@contextlib.contextmanager
def spec_file(data: dict[str, Any], name: str | None = None) -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name or data['id']}.yaml"
        path.write_text(dump(data), encoding="utf-8")
        yield path


@FAST
@given(valid_specs())
def test_every_valid_spec_is_accepted(data: dict[str, Any]) -> None:
    with spec_file(data) as path:
        spec = load_spec(path)
    assert spec.id == data["id"]
    assert abs(sum(c.share for c in spec.channels) - 1) <= SHARE_TOLERANCE + 1e-9
    assert spec.flight.end >= spec.flight.start
    expected_tasks = 13 if data["tasks"] == "default" else len(data["tasks"])
    assert len(spec.launch_tasks()) == expected_tasks
    assert len(spec.content_matrix()) == sum(len(v["content_types"]) for v in data["vectors"])


# ---- one mutation: refused, naming the field ---------------------------------------
Mutation = Callable[[st.DrawFn, dict[str, Any]], str]
REQUIRED = [name for name, field in CampaignSpec.model_fields.items() if field.is_required()]


def _bad_id(draw: st.DrawFn, d: dict[str, Any]) -> str:
    d["id"] = draw(st.sampled_from(["", "-lead", "Upper", "has space", "../escape", "a" * 64, "ümlaut", "a_b", "a.b"]))
    return "id"


def _shares_off(draw: st.DrawFn, d: dict[str, Any]) -> str:
    channel = d["channels"][draw(st.integers(0, len(d["channels"]) - 1))]
    delta = draw(st.sampled_from([0.01, 0.05, 0.2]))
    channel["share"] = round(channel["share"] + delta if channel["share"] + delta <= 1 else channel["share"] - delta, 6)
    return "channels"


def _end_before_start(draw: st.DrawFn, d: dict[str, Any]) -> str:
    d["flight"]["end"] = d["flight"]["start"] - dt.timedelta(days=draw(st.integers(1, 400)))
    return "flight"


def _unknown_top(draw: st.DrawFn, d: dict[str, Any]) -> str:
    key = draw(st.from_regex(r"^[a-z][a-z_]{0,15}$", fullmatch=True).filter(lambda k: k not in CampaignSpec.model_fields))
    d[key] = draw(st.sampled_from([True, 1, "x", [], {}]))
    return key


def _unknown_nested(draw: st.DrawFn, d: dict[str, Any]) -> str:
    key = draw(st.sampled_from(["colour", "extra", "launch_party", "sharee"]))
    places: list[tuple[dict[str, Any], str]] = [
        (d["brand"], "brand"),
        (d["budget"], "budget"),
        (d["flight"], "flight"),
        *((c, f"channels[{i}]") for i, c in enumerate(d["channels"])),
        *((v, f"vectors[{i}]") for i, v in enumerate(d["vectors"])),
    ]
    if isinstance(d["tasks"], list):
        places += [(t, f"tasks[{i}]") for i, t in enumerate(d["tasks"])]
    target, path = draw(st.sampled_from(places))
    target[key] = "surprise"
    return f"{path}.{key}"


def _wrong_type(draw: st.DrawFn, d: dict[str, Any]) -> str:
    choices: list[tuple[Callable[[], None], str]] = [
        (lambda: d["budget"].update(total="lots"), "budget.total"),
        (lambda: d["channels"][0].update(share="half"), "channels[0].share"),
        (lambda: d["flight"].update(start="next tuesday"), "flight.start"),
        (lambda: d.update(name=123), "name"),
        (lambda: d.update(creative_sizes="300x250"), "creative_sizes"),
        (lambda: d.update(vectors={"stakeholder_group": "x"}), "vectors"),
        (lambda: d.update(brand="Acme"), "brand"),
        (lambda: d["vectors"][0].update(content_types="email"), "vectors[0].content_types"),
    ]
    if isinstance(d["tasks"], list):
        choices.append((lambda: d["tasks"][0].update(offset_days="soon"), "tasks[0].offset_days"))
    apply, path = draw(st.sampled_from(choices))
    apply()
    return path


def _bad_colour(draw: st.DrawFn, d: dict[str, Any]) -> str:
    d["brand"]["primary_color"] = draw(st.sampled_from(["blue", "#12345", "#GGGGGG", "0B5FFF", "#0B5FFF0", "#0B5FF "]))
    return "brand.primary_color"


def _bad_size(draw: st.DrawFn, d: dict[str, Any]) -> str:
    i = draw(st.integers(0, len(d["creative_sizes"]) - 1))
    d["creative_sizes"][i] = draw(
        st.sampled_from(["banner", "0x90", "300x", "5000x250", "300x9", "300 x 250", "-300x250", "300x250x2"])
    )
    return "creative_sizes"


def _missing(draw: st.DrawFn, d: dict[str, Any]) -> str:
    choices = [(d, name, name) for name in REQUIRED] + [
        (d["brand"], "name", "brand.name"),
        (d["budget"], "total", "budget.total"),
        (d["flight"], draw(st.sampled_from(["start", "end"])), "flight."),
        (d["channels"][0], "share", "channels[0].share"),
        (d["vectors"][0], "content_types", "vectors[0].content_types"),
    ]
    if isinstance(d["tasks"], list):
        choices.append((d["tasks"][0], "name", "tasks[0].name"))
    target, key, path = draw(st.sampled_from(choices))
    del target[key]
    return path + key if path.endswith(".") else path


def _bad_value(draw: st.DrawFn, d: dict[str, Any]) -> str:
    choices: list[tuple[Callable[[], None], str]] = [
        (lambda: d.update(objective="sales"), "objective"),
        (lambda: d.update(organization="Acme Corp"), "organization"),
        (lambda: d.update(pattern="cascade"), "pattern"),
        (lambda: d.update(name="n" * 201), "name"),
        (lambda: d.update(audience="   "), "audience"),
        (lambda: d["brand"].update(website="ftp://acme.example"), "brand.website"),
        (lambda: d["budget"].update(total=-5), "budget.total"),
        (lambda: d["budget"].update(currency="usd"), "budget.currency"),
        (lambda: d["channels"][0].update(dsp="myspace"), "channels[0].dsp"),
        (lambda: d["channels"].append(dict(d["channels"][0])), "channels"),
        (lambda: d["vectors"][0].update(content_types=["tweet"]), "vectors[0].content_types[0]"),
        (lambda: d["vectors"][0].update(timing="t" * 81), "vectors[0].timing"),
        (lambda: d["vectors"].append(dict(d["vectors"][0])), "vectors"),
        (lambda: d.update(creative_sizes=[*d["creative_sizes"], d["creative_sizes"][0]]), "creative_sizes"),
        (lambda: d.update(tasks="none"), "tasks"),
    ]
    if isinstance(d["tasks"], list):
        choices += [
            (lambda: d["tasks"][0].update(offset_days=731), "tasks[0].offset_days"),
            (lambda: d["tasks"].append(dict(d["tasks"][0])), "tasks"),
        ]
    apply, path = draw(st.sampled_from(choices))
    apply()
    return path


MUTATIONS: dict[str, Mutation] = {
    "bad id": _bad_id,
    "shares not summing": _shares_off,
    "end before start": _end_before_start,
    "unknown top-level key": _unknown_top,
    "unknown nested key": _unknown_nested,
    "wrong type": _wrong_type,
    "bad colour": _bad_colour,
    "bad size": _bad_size,
    "missing field": _missing,
    "bad value": _bad_value,
}


@st.composite
def invalid_specs(draw: st.DrawFn) -> tuple[dict[str, Any], str, str, str]:
    """(data, the valid id the file is named after, mutation name, the field path it breaks)."""
    data = draw(valid_specs())
    name = draw(st.sampled_from(sorted(MUTATIONS)))
    original_id = data["id"]
    path = MUTATIONS[name](draw, data)
    return data, original_id, name, path


def refused(data: dict[str, Any], source: str = "bad.yaml") -> SpecError:
    try:
        parse_spec(dump(data), source)
    except SpecError as exc:
        assert source in str(exc)
        return exc
    raise AssertionError("accepted an invalid spec")


@settings(max_examples=120, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(invalid_specs())
def test_one_mutation_is_refused_naming_the_field(case: tuple[dict[str, Any], str, str, str]) -> None:
    data, original_id, mutation, field = case
    exc = refused(data)
    paths = [path for path, _ in exc.errors]
    assert field in paths, (mutation, field, exc.errors)
    assert f"  {field}: " in str(exc)  # the message a person reads names it too
    with spec_file(data, original_id) as path:  # the file path as well
        try:
            load_spec(path)
        except SpecError as file_exc:
            assert str(path) in str(file_exc) and field in [p for p, _ in file_exc.errors]
        else:
            raise AssertionError("load_spec accepted an invalid spec")


# ---- the CLI refuses without side effects -------------------------------------------
@contextlib.contextmanager
def fresh_project() -> Iterator[dict[str, Path]]:
    """A temp project: campaigns (one seed spec), workspace and DAGSTER_HOME
    paths (not created), set in os.environ and as the working directory."""
    saved_env = {k: os.environ.get(k) for k in ("CAMPAIGNS_DIR", "WORKSPACE_DIR", "DAGSTER_HOME")}
    saved_cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        campaigns = root / "campaigns"
        campaigns.mkdir()
        (campaigns / f"{SEED}.yaml").write_bytes((EXAMPLES / f"{SEED}.yaml").read_bytes())
        paths = {"root": root, "campaigns": campaigns, "workspace": root / "workspace", "home": root / "dagster_home"}
        os.environ.update(
            CAMPAIGNS_DIR=str(campaigns), WORKSPACE_DIR=str(paths["workspace"]), DAGSTER_HOME=str(paths["home"])
        )
        os.chdir(root)
        try:
            yield paths
        finally:
            os.chdir(saved_cwd)
            for key, value in saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def run_cli(*argv: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = cli.main(list(argv))
    return code, err.getvalue()


@CLI
@given(invalid_specs())
def test_cli_validate_and_launch_refuse_and_leave_nothing(case: tuple[dict[str, Any], str, str, str]) -> None:
    data, original_id, mutation, field = case
    with fresh_project() as p:
        bad = p["root"] / f"{original_id}.yaml"
        bad.write_text(dump(data), encoding="utf-8")
        before_campaigns = snapshot(p["campaigns"])
        before_root = sorted(x.name for x in p["root"].iterdir())

        code, err = run_cli("validate", str(bad))
        assert code == 1 and str(bad) in err and f"  {field}: " in err, (mutation, err)

        code, err = run_cli("launch", str(bad))
        assert code == 2 and "nothing was run" in err and f"  {field}: " in err, (mutation, err)
        assert not p["workspace"].exists() and not p["home"].exists()
        assert not list(p["root"].rglob("ledger.sqlite"))
        assert snapshot(p["campaigns"]) == before_campaigns
        assert sorted(x.name for x in p["root"].iterdir()) == before_root


# ---- hostile text stays inert --------------------------------------------------------
def read_csv_file(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.reader(f))


def assert_round_trip(rows: list[list[Any]], back: list[list[str]]) -> None:
    """Same shape; every text cell inert and equal to the neutralized original."""
    assert len(back) == len(rows)
    for row, got in zip(rows, back):
        assert len(got) == len(row)
        for value, cell in zip(row, got):
            if isinstance(value, str):
                assert is_inert(cell) and cell == neutralize(value), (value, cell)
            else:
                assert cell == ("" if value is None else str(value))


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


TEMPLATE_TAGS = {
    "html", "head", "meta", "title", "style", "body", "header", "div", "p", "h1", "a",
    "main", "section", "h2", "h3", "figure", "img", "figcaption", "footer", "link",
}  # fmt: skip


def fake_brief(spec: CampaignSpec) -> dict[str, Any]:
    """A brief that echoes spec text back, as an LLM may: hostile text in the
    objective and in every key message."""
    messages = "\n".join(f"- **{v.stakeholder_group}:** {spec.audience} / {spec.tone}" for v in spec.vectors)
    return {"markdown": f"# Brief\n\n## Objective\n{spec.name} for {spec.audience}. More.\n\n## Key Messages\n{messages}\n"}


@SLOW
@given(valid_specs(hostile=True))
def test_hostile_text_stays_inert_in_csv_and_html(data: dict[str, Any]) -> None:
    with spec_file(data) as path:
        spec = load_spec(path)
        out = path.parent / "out"

        # tasks.csv, as make_project writes it (names from the spec, errors from vendors)
        tasks = [
            {"key": t.key, "name": t.name, "due_on": t.due_on.isoformat(), "status": "ok", "notes": t.notes,
             "gid": "1", "url": "", "error": spec.audience}
            for t in spec.launch_tasks()
        ]  # fmt: skip
        (out / "tasks.csv").parent.mkdir(parents=True)
        (out / "tasks.csv").write_text(dict_csv_text(tasks), encoding="utf-8", newline="")
        assert_round_trip([list(tasks[0]), *[list(t.values()) for t in tasks]], read_csv_file(out / "tasks.csv"))

        # media_plan.csv through the local Sheets backend
        values = plan_values(build_media_plan(spec))

        async def publish() -> None:
            sheets = LocalSheets(out)
            ref = await sheets.create_spreadsheet(f"{spec.name} — Media Plan", name="media_plan")
            await sheets.update_values(ref, a1_range_for(values), values)

        asyncio.run(publish())
        assert_round_trip(values, read_csv_file(out / "media_plan.csv"))

        # the landing page: autoescaped, no tag or attribute from the spec
        creatives = [{"size": s, "width": int(s.split("x")[0]), "height": int(s.split("x")[1])} for s in spec.creative_sizes]
        html = workflows.build_landing_page(spec, fake_brief(spec), creatives, out).read_text(encoding="utf-8")
    assert "<script" not in html.lower() and "<svg" not in html.lower()
    parser = Tags()
    parser.feed(html)
    parser.close()
    assert {tag for tag, _ in parser.tags} <= TEMPLATE_TAGS
    assert sum(tag == "img" for tag, _ in parser.tags) == len(spec.creative_sizes)
    assert not [name for _, attrs in parser.tags for name, _ in attrs if name.startswith("on")]
    text = "".join(parser.text).replace("\r", "")
    for value in (spec.name, spec.brand.name, *(v.stakeholder_group for v in spec.vectors)):
        assert value.replace("\r", "") in text  # shown as text, not dropped and not markup
