"""Caps profiles: the vendors' published limits by default, the seed's on request.

``CAMPAIGN_CAPS_PROFILE`` picks the profile where resources are built
(``resources.build_resources``) and where pool limits are written
(``runs.apply_pool_limits``); one service's variables still override it.
"""

from __future__ import annotations

import dagster as dg
import pytest

from benchmarks.ideal import Call, profile_slots, seed_workload, simulate
from campaign_assets.resources import SERVICE_ENV, build_resources
from campaign_assets.runs import apply_pool_limits, pool_limits
from campaign_assets.sandbox.config import default_limits
from campaign_assets.settings import (
    CAPS_PROFILES,
    SEED_PROFILE,
    SERVICE_CAPS,
    VENDOR_PROFILE,
    caps_profile,
)
from campaign_assets_tests.support.in_flight import peak_in_flight


def test_vendor_profile_is_the_default_and_seed_is_named() -> None:
    assert caps_profile({}) is VENDOR_PROFILE
    assert caps_profile({"CAMPAIGN_CAPS_PROFILE": ""}) is VENDOR_PROFILE
    assert caps_profile({"CAMPAIGN_CAPS_PROFILE": "seed"}) is SEED_PROFILE
    assert caps_profile({"CAMPAIGN_CAPS_PROFILE": " Vendor "}) is VENDOR_PROFILE
    with pytest.raises(ValueError, match="CAMPAIGN_CAPS_PROFILE='tier9'.*seed, vendor"):
        caps_profile({"CAMPAIGN_CAPS_PROFILE": "tier9"})
    assert SERVICE_CAPS == VENDOR_PROFILE.caps  # what a resource built by hand falls back to


def test_profiles_cover_every_service_and_pool() -> None:
    for profile in CAPS_PROFILES.values():
        assert set(profile.caps) == set(SERVICE_ENV)
        assert set(profile.pools) == set(SEED_PROFILE.pools)
        assert all(cap >= 1 for cap in [*profile.caps.values(), *profile.pools.values(), *profile.group_caps.values()])
        assert set(profile.shared.values()) == set(profile.group_caps)
    with pytest.raises(TypeError):
        VENDOR_PROFILE.caps["llm"] = 1  # type: ignore[index]  # read-only: no module-level mutable state


def test_seed_profile_keeps_the_seed_figures() -> None:
    assert dict(SEED_PROFILE.caps) == {"llm": 8, "docs": 3, "sheets": 3, "asana": 5, "images": 2, "canva": 2,
                                       "amazon_dsp": 4, "trade_desk": 4, "dv360": 4, "slack": 1,
                                       "email": 4, "social": 2, "pages": 1,
                                       "amazon_reporting": 2, "ttd_reporting": 2, "dv360_reporting": 2}
    assert dict(SEED_PROFILE.pools) == {"llm": 16, "sheets": 6, "asana": 10, "images": 8, "dsp": 6, "email": 4, "social": 2, "pages": 1}
    assert SEED_PROFILE.slot_key("llm") == ("llm", 8) and SEED_PROFILE.shared_slots("images") is None


def test_vendor_profile_matches_the_limits_the_sandbox_models() -> None:
    """The sandbox models each vendor's published limit; the default caps are those numbers."""
    def concurrency(vendor: str) -> int:
        return min(r.max_concurrency for r in default_limits()[vendor] if r.max_concurrency)  # type: ignore[misc,type-var]

    caps = VENDOR_PROFILE.caps
    assert VENDOR_PROFILE.slot_key("llm") == VENDOR_PROFILE.slot_key("images") == ("openai", concurrency("openai"))
    assert caps["llm"] <= concurrency("openai") and caps["images"] <= concurrency("openai")
    assert caps["docs"] == concurrency("google-docs") and caps["sheets"] == concurrency("google-sheets")
    assert caps["asana"] == concurrency("asana") and caps["canva"] == concurrency("canva")
    assert VENDOR_PROFILE.shared_slots("llm") == "openai:16"


def _fields(resources: dict, service: str) -> tuple[int | None, str | None]:
    return resources[service].max_concurrency, resources[service].shared_slots


def test_build_resources_takes_the_profile() -> None:
    vendor = build_resources({})
    assert _fields(vendor, "llm") == (16, "openai:16") and _fields(vendor, "images") == (16, "openai:16")
    assert _fields(vendor, "docs") == (10, None) and _fields(vendor, "canva") == (5, None)
    assert vendor["llm"].slot_key == vendor["images"].slot_key == ("openai", 16)
    assert vendor["asana"].slot_key == ("asana", 15)
    seed = build_resources({"CAMPAIGN_CAPS_PROFILE": "seed"})
    assert {key: _fields(seed, key) for key in SERVICE_ENV} == {key: (cap, None) for key, cap in SEED_PROFILE.caps.items()}
    assert seed["llm"].slot_key == ("llm", 8)


def test_one_service_overrides_its_profile() -> None:
    env = {"CAMPAIGN_CAPS_PROFILE": "seed", "LLM_MAX_CONCURRENCY": "12", "IMAGES_SHARED_SLOTS": "openai:20"}
    resources = build_resources(env)
    assert _fields(resources, "llm") == (12, None) and resources["images"].slot_key == ("openai", 20)
    assert _fields(resources, "docs") == (3, None)
    resources = build_resources({"LLM_SHARED_SLOTS": "llm:4"})
    assert resources["llm"].slot_key == ("llm", 4) and resources["images"].slot_key == ("openai", 16)


def test_pool_limits_follow_the_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    assert pool_limits({}) == VENDOR_PROFILE.pools
    assert pool_limits({"CAMPAIGN_CAPS_PROFILE": "seed"}) == SEED_PROFILE.pools
    with dg.DagsterInstance.ephemeral() as instance:
        monkeypatch.setenv("CAMPAIGN_CAPS_PROFILE", "seed")
        assert apply_pool_limits(instance) == dict(SEED_PROFILE.pools)
        monkeypatch.delenv("CAMPAIGN_CAPS_PROFILE")
        changed = apply_pool_limits(instance)
        assert changed == {k: v for k, v in VENDOR_PROFILE.pools.items() if SEED_PROFILE.pools[k] != v}
        assert apply_pool_limits(instance) == {}  # idempotent
        assert instance.event_log_storage.get_concurrency_info("llm").slot_count == VENDOR_PROFILE.pools["llm"]


# ---- the ideal under each profile (benchmarks/ideal.py's simulator) ----------------------


def test_ideal_under_each_profile_matches_the_issue() -> None:
    """Issue #10: 286 s under the seed caps, 196 s under the vendor limits, at scale 1."""
    calls = seed_workload()
    assert simulate(calls, *profile_slots(SEED_PROFILE)).makespan == pytest.approx(286.0)
    assert simulate(calls, *profile_slots(VENDOR_PROFILE)).makespan == pytest.approx(196.0)
    assert simulate(seed_workload(scale=0.25), *profile_slots(VENDOR_PROFILE)).makespan == pytest.approx(49.0)


def test_a_shared_group_caps_its_services_together() -> None:
    calls = [Call(f"chat{i}", "llm", 1.0) for i in range(3)] + [Call(f"img{i}", "images", 1.0) for i in range(3)]
    alone = simulate(calls, {"llm": 3, "images": 3})
    shared = simulate(calls, {"openai": 3}, {"llm": "openai", "images": "openai"})
    assert alone.makespan == 1.0 and shared.makespan == 2.0
    assert peak_in_flight((shared.start[c.name], shared.end[c.name]) for c in calls) == 3  # the group's cap
    assert peak_in_flight((alone.start[c.name], alone.end[c.name]) for c in calls) == 6
    with pytest.raises(KeyError):
        simulate(calls, {"llm": 3})  # a service without a cap is an error, not unlimited


def test_seed_workload_checks_each_slot_key_against_its_cap() -> None:
    """The benchmark's caps check counts chat and images together under the vendor profile."""
    from benchmarks.seed_workload import caps_exceeded, rate_limited

    def call(endpoint: str, start: float, limited: bool = False) -> dict:
        return {"vendor": "openai", "endpoint": endpoint, "start": start, "end": start + 1.0, "rate_limited": limited}

    calls = [call("POST /chat/completions", 0.0) for _ in range(10)]
    calls += [call("POST /images/generations", 0.0) for _ in range(6)]
    assert caps_exceeded(calls, VENDOR_PROFILE) == {}  # 16 at once: OpenAI's cap, held
    assert caps_exceeded(calls, SEED_PROFILE) == {"llm": 10, "images": 6}
    calls.append(call("POST /images/generations", 0.5))
    calls.append(call("POST /images/generations", 0.5, limited=True))  # refused: never in flight
    assert caps_exceeded(calls, VENDOR_PROFILE) == {"openai": 17}
    assert rate_limited(calls) == {"openai": 1}


def test_every_pool_an_asset_names_has_an_explicit_limit() -> None:
    """A pool left to ``default_limit`` is initialized by the first step that
    claims it, and two steps doing so at once on Postgres collide on its key."""
    from campaign_assets.definitions import build_defs

    named = {a.op.pool for a in build_defs({}).assets if getattr(a, "op", None) is not None and a.op.pool}
    assert named, "no asset names a pool"
    for profile in CAPS_PROFILES.values():
        assert named <= set(profile.pools), (profile.name, named - set(profile.pools))
