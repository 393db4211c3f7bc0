"""Names and defaults written once: partitions, jobs, tags, folders, caps profiles, pools.

Plain values only (and ``scope``, the one way to name an asset's ledger
scope), so anything may import this module without pulling in Dagster or
the ledger's database layer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from campaign_assets.ledger import Scope
    from campaign_assets.spec import CampaignSpec

PARTITIONS = "campaigns"  # the dynamic partitions definition of every campaign asset
CAMPAIGN_JOB = "campaign_job"
REPORT_REFRESH_JOB = "report_refresh_job"
PERFORMANCE_JOB = "performance_job"
PERFORMANCE_GROUP = "performance"
TEARDOWN_JOB = "teardown_job"

PARTITION_TAG = "dagster/partition"  # Dagster's own tag on a partitioned run
PRIORITY_TAG = "dagster/priority"  # Dagster's own op tag: higher starts first among ready steps
SERVICE_TAG = "campaign_assets/service"  # op tag: one step per service at a time within a run
SPEC_HASH_TAG = "campaign_assets/spec_hash"  # run tag: the spec a sensor run was requested for
TRIGGER_TAG = "campaign_assets/trigger"  # run tag: why the sensor requested the run
REPORT_DATE_TAG = "campaign_assets/report_date"  # run tag: the day a report refresh is for
KIND_TAG = "campaign_assets/kind"  # job tag: what kind of job (teardown)
OWNER = "team:campaign-ops"
APPROVAL_GROUP = "approval"  # campaign_review and approval_gate (reviewed campaigns only)
DISTRIBUTION_GROUP = "distribution"  # everything behind the approval gate
APPROVAL_JOB = "approve_campaign"  # the launchpad job a reviewer records a decision with
SENSOR_INTERVAL_S = 30  # the spec sensor and the run-failure sensor

DEFAULT_CAMPAIGNS_DIR = "campaigns"  # CAMPAIGNS_DIR
DEFAULT_WORKSPACE_DIR = "workspace"  # WORKSPACE_DIR
DEFAULT_DAGSTER_HOME = ".dagster"  # DAGSTER_HOME
DEFAULT_WORKSPACE_FILE = "workspace.yaml"  # `launch --queue -w`: where the code location is loaded from
QUEUE_NOTICE_ENV = "CAMPAIGN_QUEUE_NOTICE_S"  # `launch --queue`: seconds a run may stay QUEUED before the launch says why
DEFAULT_QUEUE_NOTICE_S = 30.0

CAPS_PROFILE_ENV = "CAMPAIGN_CAPS_PROFILE"  # which CapsProfile a process uses: "vendor" (default) or "seed"
DEFAULT_CAPS_PROFILE = "vendor"


@dataclass(frozen=True)
class CapsProfile:
    """How hard we may call each service (DESIGN.md §5), as one named set.

    ``caps``: calls in flight within a step, per service (the resources'
    ``max_concurrency``, the ``AdaptiveLimiter``'s ceiling). ``shared``:
    services calling one vendor, mapped to the vendor's slot group on the slot
    board; ``group_caps``: each group's cap (calls in flight anywhere, summed
    over its services). ``pools``: steps per Dagster pool across every run of
    the instance (``runs.apply_pool_limits`` writes them there).
    """

    name: str
    caps: Mapping[str, int]
    pools: Mapping[str, int]
    shared: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    group_caps: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))

    def slot_key(self, service: str) -> tuple[str, int]:
        """Which cap on the slot board ``service``'s calls count against."""
        group = self.shared.get(service)
        if group is None:
            return service, self.caps[service]
        return group, self.group_caps[group]

    def shared_slots(self, service: str) -> str | None:
        """``NAME:CAP`` (the resources' ``shared_slots``) for a service that shares its vendor's cap."""
        group = self.shared.get(service)
        return None if group is None else f"{group}:{self.group_caps[group]}"


# Distribution (after approval; the seeds have none): SendGrid's Marketing
# Campaigns endpoints allow bursts well above a campaign's few sends (429 with
# X-RateLimit-Reset); Buffer allows 60 requests a minute per token; GitHub
# asks that writes to one repository be serial (its secondary limits).
_DISTRIBUTION_CAPS = {"email": 4, "social": 2, "pages": 1}
# The DSPs: one line item per channel, a few calls a campaign; none publishes
# a concurrency figure (Amazon Ads throttles per account with Retry-After, The
# Trade Desk and DV360 per advertiser), so the seed's 4 each.
_DSP_CAPS = {"amazon_dsp": 4, "trade_desk": 4, "dv360": 4}
# Every pool an asset names gets an explicit limit: a pool left to
# ``default_limit`` is initialized by the first step that claims it, and two
# steps doing that at once on Postgres collide on the pool's unique key
# (measured in the production-topology test). One site step at a time: writes
# to one GitHub repository are serial.
_DISTRIBUTION_POOLS = {"email": 4, "social": 2, "pages": 1}

# DSP reporting (campaign_performance): a day is one report job per DSP, so a
# few calls in flight (create, polls, download). Amazon Ads and Bid Manager
# answer 429 when their report quotas run out; TTD MyReports likewise.
_REPORTING_CAPS = {"amazon_reporting": 2, "ttd_reporting": 2, "dv360_reporting": 2}


# The seeds' own figures (DESIGN.md §10): what the seed workload was first
# measured under, kept for comparison (CAMPAIGN_CAPS_PROFILE=seed).
SEED_PROFILE = CapsProfile(
    name="seed",
    caps=MappingProxyType(
        {"llm": 8, "docs": 3, "sheets": 3, "asana": 5, "images": 2, "canva": 2, "slack": 1}
        | _DSP_CAPS
        | _DISTRIBUTION_CAPS
        | _REPORTING_CAPS
    ),
    # Steps per pool. The calls themselves are capped exactly by the slot
    # board (services/slots.py), across processes and runs; pools bound how
    # many step processes wait on one service at once. A step blocked on a pool
    # is re-polled by Dagster at intervals growing to 15 s, so a tight pool
    # leaves the vendor idle while a freed slot goes unnoticed (measured: a
    # 70 s tail at the end of a 20-campaign backfill). Hence about twice the
    # call caps: enough steps to keep every call slot busy.
    pools=MappingProxyType({"llm": 16, "sheets": 6, "asana": 10, "images": 8, "dsp": 6} | _DISTRIBUTION_POOLS),
)

# The default: each vendor's published limit for a standard account. Where a
# vendor publishes only a rate (requests per minute), the cap is the requests
# in flight that stay inside that rate at the vendor's latency (DESIGN.md §10),
# the figure the sandbox enforces (sandbox/config.py default_limits). An
# account on a lower tier answers 429 and the AdaptiveLimiter converges below
# the cap (services/http/limiter.py).
VENDOR_PROFILE = CapsProfile(
    name="vendor",
    caps=MappingProxyType(
        {
            # OpenAI: limits are per organization (or project) and model, by
            # usage tier, in requests and tokens (images) per minute, 429 when
            # exceeded (developers.openai.com/api/docs/guides/rate-limits).
            # Chat and image generation count against one organization: one
            # slot group, "openai". No concurrency figure is published: 16 in
            # flight is the sandbox's model of a standard tier (issue #10).
            "llm": 16,
            "images": 16,
            # Google Docs: 60 write and 300 read requests per minute per user
            # per project (developers.google.com/workspace/docs/api/limits);
            # 10 in flight at ~15 s a call is ~40 a minute, inside it (10 is
            # the sandbox's concurrency model; Google publishes none).
            "docs": 10,
            # Google Sheets: 60 read and 60 write requests per minute per user
            # per project (developers.google.com/workspace/sheets/api/limits).
            "sheets": 10,
            # Asana: 15 concurrent POST/PUT/PATCH/DELETE (50 concurrent GET) per
            # token, 150 requests per minute on a free domain, 1,500 paid
            # (developers.asana.com/docs/rate-limits).
            "asana": 15,
            # Canva Connect: per-user, per-endpoint limits: create asset upload
            # job 30 a minute, get asset upload job 180 a minute (each
            # endpoint's reference page, canva.dev/docs/connect/api-reference/
            # assets), 429 too_many_requests without Retry-After. No concurrency
            # figure is published: 5 in flight is the sandbox's model.
            "canva": 5,
            # Slack: chat.postMessage is one message per second per channel
            # (docs.slack.dev/apis/web-api/rate-limits, the special tier).
            "slack": 1,
        }
        | _DSP_CAPS
        | _DISTRIBUTION_CAPS
        | _REPORTING_CAPS
    ),
    shared=MappingProxyType({"llm": "openai", "images": "openai"}),
    group_caps=MappingProxyType({"openai": 16}),
    # Twice the call caps, as for the seed profile (images: the creatives step
    # makes one image per size, a few a step, so as many steps as the group's slots).
    pools=MappingProxyType({"llm": 32, "sheets": 20, "asana": 30, "images": 16, "dsp": 6} | _DISTRIBUTION_POOLS),
)

CAPS_PROFILES: Mapping[str, CapsProfile] = MappingProxyType({p.name: p for p in (VENDOR_PROFILE, SEED_PROFILE)})


def caps_profile(env: Mapping[str, str]) -> CapsProfile:
    """The profile ``CAMPAIGN_CAPS_PROFILE`` names in ``env`` (unset or empty: ``vendor``)."""
    name = (env.get(CAPS_PROFILE_ENV) or DEFAULT_CAPS_PROFILE).strip().lower()
    try:
        return CAPS_PROFILES[name]
    except KeyError:
        raise ValueError(f"{CAPS_PROFILE_ENV}={name!r}: expected one of {', '.join(sorted(CAPS_PROFILES))}") from None


# The default profile's figures, for code that needs no environment (a
# resource built without ``build_resources`` falls back to these).
SERVICE_CAPS: Mapping[str, int] = VENDOR_PROFILE.caps
POOL_LIMITS: Mapping[str, int] = VENDOR_PROFILE.pools


def scope(spec: CampaignSpec, asset: str) -> Scope:
    """The ledger scope of ``asset`` for the campaign of ``spec``."""
    from campaign_assets.ledger import Scope  # here, so the CLI validates without the database layer

    return Scope(spec.organization, spec.id, asset)
