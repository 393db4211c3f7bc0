"""Sandbox configuration: time scale, vendor limits and fault injection."""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator

VendorName = Literal[
    "openai",
    "openrouter",
    "google-docs",
    "google-sheets",
    "google-drive",
    "asana",
    "canva",
    "slack",
    "sendgrid",
    "buffer",
    "github",
    "amazon-dsp",
    "trade-desk",
    "dv360",
    "amazon-ads",
    "ttd",
    "bid-manager",
]
FaultKind = Literal["500", "429", "timeout", "reset", "lost_response"]

VENDOR_NAMES: tuple[VendorName, ...] = get_args(VendorName)
FAULT_KINDS: tuple[FaultKind, ...] = get_args(FaultKind)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LimitRule(_Frozen):
    """One vendor limit, applied to the requests it matches.

    A request matches when its method is in `methods` and its endpoint name (e.g.
    ``"POST /v1/asset-uploads"``) is in `endpoints`; `None` matches everything.
    A request is admitted only when every matching rule has room: fewer than
    `max_concurrency` matching requests in flight and fewer than `max_requests`
    admitted in the last `window_s` seconds (scaled by the config's `scale`).
    """

    name: str
    methods: frozenset[str] | None = None
    endpoints: frozenset[str] | None = None
    max_concurrency: int | None = Field(default=None, ge=1)
    max_requests: int | None = Field(default=None, ge=1)
    window_s: float = Field(default=60.0, gt=0)

    def applies_to(self, method: str, endpoint: str) -> bool:
        return (self.methods is None or method in self.methods) and (
            self.endpoints is None or endpoint in self.endpoints
        )


class FaultSpec(_Frozen):
    """Random faults: each request fails with probability `rate`, with a kind drawn from `kinds`."""

    rate: float = Field(default=0.0, ge=0.0, le=1.0)
    kinds: tuple[FaultKind, ...] = FAULT_KINDS


SENDGRID_ENDPOINTS: tuple[str, ...] = (
    "POST /v3/marketing/singlesends",
    "GET /v3/marketing/singlesends",
    "GET /v3/marketing/singlesends/{id}",
    "DELETE /v3/marketing/singlesends/{id}",
    "PUT /v3/marketing/singlesends/{id}/schedule",
    "DELETE /v3/marketing/singlesends/{id}/schedule",
    "GET /v3/marketing/stats/singlesends/{id}",
)

_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_READS = frozenset({"GET"})


def default_limits() -> dict[VendorName, tuple[LimitRule, ...]]:
    """Per-vendor limits modelled on each vendor's published ones (at scale 1.0)."""
    llm = (LimitRule(name="requests", max_concurrency=16, max_requests=500),)
    return {
        "openai": llm,
        "openrouter": llm,
        "google-docs": (
            LimitRule(name="concurrency", max_concurrency=10),
            LimitRule(name="write requests", methods=_WRITES, max_requests=60),
            LimitRule(name="read requests", methods=_READS, max_requests=300),
        ),
        "google-sheets": (
            LimitRule(name="concurrency", max_concurrency=10),
            LimitRule(name="write requests", methods=_WRITES, max_requests=60),
            LimitRule(name="read requests", methods=_READS, max_requests=60),
        ),
        "google-drive": (LimitRule(name="requests", max_concurrency=20, max_requests=600),),
        "asana": (
            LimitRule(name="concurrent writes", methods=_WRITES, max_concurrency=15),
            LimitRule(name="concurrent reads", methods=_READS, max_concurrency=50),
            LimitRule(name="requests", max_requests=150),
        ),
        "canva": (
            LimitRule(name="concurrency", max_concurrency=5),
            LimitRule(name="uploads", endpoints=frozenset({"POST /v1/asset-uploads"}), max_requests=30),
            LimitRule(
                name="upload jobs",
                endpoints=frozenset({"GET /v1/asset-uploads/{jobId}"}),
                max_requests=180,
            ),
            LimitRule(
                name="designs",
                endpoints=frozenset({"POST /v1/designs", "GET /v1/designs"}),
                max_requests=100,
            ),
        ),
        "slack": (
            LimitRule(
                name="chat.postMessage",
                endpoints=frozenset({"POST /chat.postMessage"}),
                max_requests=1,
                window_s=1.0,
            ),
            LimitRule(
                name="tier 3",
                endpoints=frozenset({"GET /conversations.history", "POST /chat.delete"}),
                max_requests=50,
            ),
        ),
        # SendGrid v3: a limit per endpoint (X-RateLimit-* on every answer; 600/min is the
        # documented default of the v3 endpoints without a lower one of their own).
        "sendgrid": tuple(
            LimitRule(name=endpoint, endpoints=frozenset({endpoint}), max_requests=600)
            for endpoint in SENDGRID_ENDPOINTS
        ),
        # Buffer: 60 authenticated requests per user (token) per minute.
        "buffer": (LimitRule(name="requests per token", max_requests=60),),
        # GitHub's secondary limits: 100 concurrent requests, about 80 content-creating
        # requests per minute, 900 points per minute (a GET is 1 point, a write 5: the
        # write rule below is the binding one for writes, so reads get the remainder).
        "github": (
            LimitRule(name="concurrent requests", max_concurrency=100),
            LimitRule(name="content-creating requests", methods=_WRITES, max_requests=80),
            LimitRule(name="points (reads)", methods=_READS, max_requests=900 - 5 * 80),
        ),
        # Amazon Ads throttles per account and operation (HTTP 429 + Retry-After);
        # modelled as 10 requests a second per account.
        "amazon-dsp": (LimitRule(name="requests per second", max_requests=10, window_s=1.0),),
        # The Trade Desk: 429 once an advertiser's calls exceed its rate; modelled as 100 a minute
        # and 10 in flight.
        "trade-desk": (LimitRule(name="requests", max_concurrency=10, max_requests=100),),
        # DV360: per-advertiser quota (Google's 429 RESOURCE_EXHAUSTED, no Retry-After);
        # modelled as 300 requests a minute, writes 60 a minute.
        "dv360": (
            LimitRule(name="requests per advertiser", max_requests=300),
            LimitRule(name="write requests", methods=_WRITES, max_requests=60),
        ),
        # DSP reporting (the sandbox's model; none of the three publishes one figure for all
        # accounts): report requests are the scarce part, polls and downloads are cheap.
        "amazon-ads": (
            LimitRule(name="report requests", endpoints=frozenset({"POST /reporting/reports"}), max_requests=10),
            LimitRule(name="requests", max_requests=300),
        ),
        "ttd": (LimitRule(name="requests", max_requests=100),),
        "bid-manager": (
            LimitRule(name="query runs", endpoints=frozenset({"POST /v2/queries/{queryId}:run"}), max_requests=10),
            LimitRule(name="requests", max_requests=300),
        ),
    }


class SandboxConfig(_Frozen):
    """Everything that shapes the sandbox's behaviour; immutable, replaced whole at runtime.

    `scale` multiplies every latency and every limit window (0.01 runs 100x faster).
    `limits` maps a vendor to its rules; vendors left out keep their defaults.
    `fault_rate`/`fault_kinds` apply to every vendor without an entry in `vendor_faults`.
    `timeout_hold_s` is how long, in plain seconds, a `timeout` fault holds a request
    before answering 504. `seed` seeds the fault RNG.
    """

    scale: float = Field(default=1.0, gt=0)
    limits_enabled: bool = True
    limits: dict[VendorName, tuple[LimitRule, ...]] = Field(default_factory=default_limits)
    fault_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    fault_kinds: tuple[FaultKind, ...] = FAULT_KINDS
    vendor_faults: dict[VendorName, FaultSpec] = Field(default_factory=dict)
    timeout_hold_s: float = Field(default=5.0, ge=0)
    seed: int | None = None

    @field_validator("limits", mode="after")
    @classmethod
    def _keep_default_limits(
        cls, limits: dict[VendorName, tuple[LimitRule, ...]]
    ) -> dict[VendorName, tuple[LimitRule, ...]]:
        return {**default_limits(), **limits}

    def faults_for(self, vendor: VendorName) -> FaultSpec:
        return self.vendor_faults.get(vendor) or FaultSpec(rate=self.fault_rate, kinds=self.fault_kinds)

    def updated(self, patch: dict[str, Any]) -> SandboxConfig:
        """A copy with `patch` (JSON-shaped, possibly partial) applied.

        `limits` and `vendor_faults` merge per vendor instead of replacing the whole map.
        """
        current = self.model_dump(mode="json")
        for key in ("limits", "vendor_faults"):
            if key in patch:
                patch = {**patch, key: {**current[key], **patch[key]}}
        return SandboxConfig.model_validate({**current, **patch})
