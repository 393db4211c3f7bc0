"""A spec change makes stale only the assets whose inputs changed."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
import yaml

from campaign_assets.logic.review import build_release, landing_url_for, outgoing_texts, site_path, voice_request

# Dagster's own stale-status resolver: the same answer the UI shows.
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._core.loader import LoadingContextForTest

from campaign_assets.definitions import build_defs
from campaign_assets.spec import SPEC_SECTIONS, CampaignSpec, parse_spec, spec_hash
from campaign_assets.workflows import image_prompt
from campaign_assets.logic.landing import landing_context
from campaign_assets.logic.media_plan import build_media_plan
from campaign_assets.ledger import vault_folder
from campaign_assets.logic.prompts import brief_request, content_request, headline, research_request

from .conftest import EXAMPLES, SEED
from campaign_assets_tests.support.dagster import campaign_graph

SPEC_ASSETS = ["campaign_spec", *SPEC_SECTIONS]


def stale(instance: dg.DagsterInstance, defs: dg.Definitions) -> set[str]:
    graph = defs.resolve_asset_graph()
    resolver = CachingStaleStatusResolver(instance, graph, LoadingContextForTest(instance))
    return {
        key.to_user_string()
        for key in graph.get_all_asset_keys()
        if resolver.get_status(key, SEED) == StaleStatus.STALE
    }


def test_changing_only_the_creative_sizes_stales_only_what_reads_them(project: dict[str, str]) -> None:
    defs = build_defs(project)
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("campaigns", [SEED])
    assets = campaign_graph(defs)
    dg.materialize(assets, partition_key=SEED, resources=defs.resources, instance=instance)
    assert stale(instance, defs) == set()

    path = Path(project["CAMPAIGNS_DIR"]) / f"{SEED}.yaml"
    path.write_text(path.read_text().replace("[300x250, 728x90, 160x600, 320x50]", "[300x250, 728x90, 300x600]"))
    dg.materialize(assets, partition_key=SEED, resources=defs.resources, instance=instance, selection=SPEC_ASSETS)
    assert stale(instance, defs) == {"creatives", "summary_report"}

    # Materializing what is stale moves staleness one step down, never sideways.
    dg.materialize(assets, partition_key=SEED, resources=defs.resources, instance=instance, selection=["creatives"])
    # The review reads the creatives too (their thumbnails go into the packet).
    assert stale(instance, defs) == {"landing_page", "summary_report", "campaign_review"}


def _mutations() -> dict[str, dict]:
    """One change per top-level spec field."""
    return {
        "id": {"id": "another-campaign"},
        "name": {"name": "Renamed Launch"},
        "organization": {"organization": "globex"},
        "objective": {"objective": "conversion"},
        "pattern": {"pattern": "MIRROR"},
        "audience": {"audience": "CFOs at retailers"},
        "tone": {"tone": "playful"},
        "language": {"language": "fr-CA"},
        "brand": {"brand": {"name": "Acme", "primary_color": "#FF0000", "website": "https://acme.example"}},
        "budget": {"budget": {"total": 100000, "currency": "EUR"}},
        "flight": {"flight": {"start": "2027-02-01", "end": "2027-04-30"}},
        "channels": {"channels": [{"name": "search", "share": 1.0}]},
        "vectors": {"vectors": [{"stakeholder_group": "CFOs", "content_types": ["email"]}]},
        "creative_sizes": {"creative_sizes": ["300x600"]},
        "tasks": {"tasks": [{"name": "Go", "offset_days": 0}]},
        "research": {"research": {"competitors": ["https://globex.example/"], "topics": ["pricing"]}},
        "reviewers": {"reviewers": [{"name": "Dana", "slack": "U0DANA0001"}]},
        "distribution": {"distribution": {"email": {"list_id": "list-1"}, "web": {"path": "launch"}}},
    }


def _reads(spec: CampaignSpec) -> dict[str, object]:
    """What each section's consumers derive from the spec."""
    brief = brief_request(spec)
    return {
        "brief_inputs": (
            brief.prompt,
            brief.context,
            [content_request(spec, v, ct, "x").prompt for v, ct in spec.content_matrix()],
            headline(spec),
            landing_context(spec, "x.", {}, []),
        ),
        "plan_inputs": (build_media_plan(spec).to_dict("records"), [(c.name, c.dsp) for c in spec.dsp_channels], spec.name),
        "task_inputs": ([(t.key, t.name, t.notes, t.due_on) for t in spec.launch_tasks()], spec.name, spec.flight),
        "creative_inputs": (image_prompt(spec), headline(spec), spec.brand, spec.creative_sizes),
        "research_inputs": (
            spec.research,
            [research_request(spec, u, {"title": "", "description": "", "headings": [], "claims": []},
                              list(spec.research.topics)).prompt for u in spec.research.competitors]
            if spec.research else [],
            vault_folder(spec.pattern, "Research"),
            spec.organization, spec.id,
        ),
        "review_inputs": _review_reads(spec),
    }


def _review_reads(spec: CampaignSpec) -> object:
    """What the review, the gate and distribution derive from the spec: the
    release built from fixed pieces and plan, the voice prompt, who is asked."""
    pieces = [{"key": "g--email", "content_type": "email", "title": "T", "body": "# T\n\nBody."},
              {"key": "g--social-post", "content_type": "social-post", "title": "S", "body": "# S\n\nPost."}]
    release = build_release(spec, pieces, "meta", landing_url_for(spec, None), [], build_media_plan(spec))
    texts = outgoing_texts(release, "landing")
    return (release.as_dict(), voice_request(spec, "brief", texts).prompt, spec.reviewers, spec.reviewed,
            site_path(spec), spec.organization, spec.id, spec.name)


@pytest.mark.parametrize("field", sorted(_mutations()))
def test_sections_cover_what_consumers_read(field: str) -> None:
    """A field outside a section must not change what that section's consumers
    build; a field inside it must change the section's hash."""
    base_data = yaml.safe_load((EXAMPLES / f"{SEED}.yaml").read_text())
    base = parse_spec(yaml.safe_dump(base_data))
    changed = parse_spec(yaml.safe_dump(base_data | _mutations()[field]))
    before, after = _reads(base), _reads(changed)
    for section, fields in SPEC_SECTIONS.items():
        if field in fields:
            assert spec_hash(base, fields) != spec_hash(changed, fields)
        else:
            assert before[section] == after[section], f"{section} consumers read {field!r} but the section omits it"
