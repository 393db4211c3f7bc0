"""Workspace and ledger resources, and the one switch between local and HTTP backends."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import Field, PrivateAttr

from campaign_assets.approvals import Approvals
from campaign_assets.io_manager import IO_BASE_ENV, CampaignIOManager
from campaign_assets.ledger import Ledger
from campaign_assets.services.asana import AsanaResource
from campaign_assets.services.buffer import SocialResource
from campaign_assets.services.canva import CanvaResource
from campaign_assets.services.docs import DocsResource
from campaign_assets.services.dsp_reporting import (
    AmazonReportingResource,
    DV360ReportingResource,
    TradeDeskReportingResource,
)
from campaign_assets.services.github_pages import PagesResource
from campaign_assets.services.dv360 import DV360Resource
from campaign_assets.services.amazon_dsp import AmazonDSPResource
from campaign_assets.services.images import ImagesResource
from campaign_assets.services.llm import LLMResource
from campaign_assets.services.sendgrid import EmailResource
from campaign_assets.services.web import WebResource
from campaign_assets.services.sheets import SheetsResource
from campaign_assets.services.slack import SlackResource
from campaign_assets.services.trade_desk import TradeDeskResource
from campaign_assets.settings import DEFAULT_CAMPAIGNS_DIR, DEFAULT_WORKSPACE_DIR, caps_profile
from campaign_assets.storage import ENDPOINT_ENV, Mirror, cache_name, is_url, location, push_all, shown

if TYPE_CHECKING:
    from upath import UPath

CACHE_ENV = "WORKSPACE_CACHE_DIR"


def default_cache_dir() -> str:
    """Where a URL workspace is mirrored unless WORKSPACE_CACHE_DIR says: the
    same path on every host, so files named in the ledger (``file:`` URLs of
    the local backends) resolve on each."""
    return str(Path(tempfile.gettempdir()) / "campaign-assets-workspace")


class WorkspaceResource(dg.ConfigurableResource):
    """Where specs are read from and where artifacts land: local folders, or
    URLs (``s3://bucket/prefix``, ``gs://...``).

    A URL ``root`` is mirrored (``storage.Mirror``): ``campaign_dir`` returns
    the campaign's folder in the local cache (``cache_dir``, the same path on
    every host), first pulling what the bucket holds for it, so a step on
    another host sees what upstream steps wrote; ``teardown_after_execution``
    uploads the files the step created or changed, and never deletes one.
    A local ``root`` is used as it is.
    """

    campaigns_dir: str = Field(default=DEFAULT_CAMPAIGNS_DIR, description="Folder or URL of campaign spec files.")
    root: str = Field(default=DEFAULT_WORKSPACE_DIR, description="Artifacts land in ROOT/ORGANIZATION/CAMPAIGN/ (folder or URL).")
    cache_dir: str | None = Field(
        default=None,
        description=f"Local mirror of a URL root (WORKSPACE_CACHE_DIR; default {default_cache_dir()}).",
    )
    endpoint_url: str | None = Field(default=None, description="S3-compatible endpoint for s3:// URLs (AWS_ENDPOINT_URL).")

    _mirrors: dict[tuple[str, str], Mirror] = PrivateAttr(default_factory=dict)

    @property
    def mirrored(self) -> bool:
        return is_url(self.root)

    def specs_folder(self) -> Path | UPath:
        """``campaigns_dir`` as a path: a local folder or a bucket prefix."""
        return location(self.campaigns_dir, self.endpoint_url)

    def remote_dir(self, organization: str, campaign: str) -> UPath:
        return location(self.root, self.endpoint_url) / organization / campaign

    def cache_folder(self, organization: str, campaign: str) -> Path:
        """The campaign's folder in the local cache of a URL root."""
        return Path(self.cache_dir or default_cache_dir()).resolve() / cache_name(self.root) / organization / campaign

    def campaign_dir(self, organization: str, campaign: str) -> Path:
        if not self.mirrored:
            path = Path(self.root).resolve() / organization / campaign
            path.mkdir(parents=True, exist_ok=True)
            return path
        key = (organization, campaign)
        if key not in self._mirrors:  # pulled once per step process
            self._mirrors[key] = Mirror.pull(self.remote_dir(organization, campaign), self.cache_folder(organization, campaign))
        return self._mirrors[key].local

    def shown(self, path: Path | UPath) -> str:
        """Where a person finds ``path``: its URL in the bucket for a file of
        the cache, else the local path (or the URL it is)."""
        if is_url(path):
            return str(path)
        for (organization, campaign), mirror in self._mirrors.items():
            try:
                rel = Path(path).resolve().relative_to(mirror.local)
            except ValueError:
                continue
            return str(self.remote_dir(organization, campaign) / rel.as_posix()) if rel.parts else str(mirror.remote)
        return shown(path)

    def push(self, prune: bool = False) -> list[str]:
        """Upload what changed in the mirrored campaigns (``prune``: and delete
        remotely what was deleted locally; only the teardown asks)."""
        return push_all(self._mirrors.values(), prune)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        uploaded = self.push()
        if uploaded and context.log is not None:
            context.log.info(f"workspace: uploaded {len(uploaded)} file(s) to {self.root}")


class LedgerResource(dg.ConfigurableResource):
    """The item ledger and content library: SQLite by default, Postgres when a URL is set.

    In a run, one ``Ledger`` (one engine, one schema check) per step process:
    made in ``setup_for_execution``, disposed in ``teardown_after_execution``;
    ``open()`` returns it. Outside a run (the CLI, a test) ``open()`` makes a
    new one, which the caller disposes.
    """

    url: str | None = Field(default=None, description="SQLAlchemy URL (set through EnvVar).")
    sqlite_path: str = Field(default=f"{DEFAULT_WORKSPACE_DIR}/ledger.sqlite", description="Used when url is unset.")

    _ledger: Ledger | None = PrivateAttr(default=None)
    _approvals: Approvals | None = PrivateAttr(default=None)

    def resolved_url(self) -> str:
        if self.url:
            return self.url
        return f"sqlite:///{Path(self.sqlite_path).resolve()}"

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        run = getattr(context, "run", None)  # None outside a run (a sensor, build_resources)
        run_id = getattr(run, "run_id", None)
        self._ledger = Ledger(self.resolved_url(), run_id=run_id)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        ledger, self._ledger = self._ledger, None
        if ledger is not None:
            ledger.dispose()
        approvals, self._approvals = self._approvals, None
        if approvals is not None:
            approvals.dispose()

    def approvals(self) -> Approvals:
        """The review rounds and decisions, in the ledger's database (one per
        step, like the ledger; disposed with it)."""
        if self._approvals is None:
            self._approvals = Approvals(self.resolved_url())
        return self._approvals

    def open(self) -> Ledger:
        """The step's ledger when set up for execution, else a new one.
        Disposing the step's ledger is harmless: its engine reconnects."""
        if self._ledger is not None:
            return self._ledger
        return Ledger(self.resolved_url())


# Service -> (resource class, environment prefix, token variable). The HTTP
# backend is chosen by configuration: a service whose token is set speaks HTTP.
SERVICE_ENV: dict[str, tuple[type, str, str]] = {
    "llm": (LLMResource, "LLM", "LLM_API_KEY"),
    "images": (ImagesResource, "IMAGES", "IMAGES_API_KEY"),
    "docs": (DocsResource, "GOOGLE_DOCS", "GOOGLE_ACCESS_TOKEN"),
    "sheets": (SheetsResource, "GOOGLE_SHEETS", "GOOGLE_ACCESS_TOKEN"),
    "asana": (AsanaResource, "ASANA", "ASANA_ACCESS_TOKEN"),
    "canva": (CanvaResource, "CANVA", "CANVA_ACCESS_TOKEN"),
    "amazon_dsp": (AmazonDSPResource, "AMAZON_DSP", "AMAZON_DSP_ACCESS_TOKEN"),
    "trade_desk": (TradeDeskResource, "TTD", "TTD_AUTH_TOKEN"),
    "dv360": (DV360Resource, "DV360", "DV360_ACCESS_TOKEN"),
    "slack": (SlackResource, "SLACK", "SLACK_BOT_TOKEN"),
    "email": (EmailResource, "SENDGRID", "SENDGRID_API_KEY"),
    "social": (SocialResource, "BUFFER", "BUFFER_ACCESS_TOKEN"),
    # Resource key "pages" (service "web"): the key "web" is the research fetcher's.
    "pages": (PagesResource, "GITHUB_API", "GITHUB_PAGES_TOKEN"),  # not GITHUB_TOKEN: a shell that has one must not publish by accident
    # DSP reporting (campaign_performance): each DSP's reporting API, its own token.
    # The same account and token as the DSP's campaign management; a base URL of their own (the
    # sandbox mounts each reporting API apart; at the vendor Amazon's host is the same).
    "amazon_reporting": (AmazonReportingResource, "AMAZON_REPORTING", "AMAZON_DSP_ACCESS_TOKEN"),
    "ttd_reporting": (TradeDeskReportingResource, "TTD_REPORTING", "TTD_AUTH_TOKEN"),
    "dv360_reporting": (DV360ReportingResource, "BID_MANAGER", "DV360_ACCESS_TOKEN"),
}

# Retry and timeout policy for every HTTP client: (field, environment variable).
_HTTP_ENV = (("timeout_s", "HTTP_TIMEOUT_S"), ("backoff_base_s", "HTTP_BACKOFF_S"), ("max_attempts", "HTTP_MAX_ATTEMPTS"))

# Extra settings per service (not secrets): (field, environment variable).
_EXTRA_ENV: dict[str, tuple[tuple[str, str], ...]] = {
    "llm": (("model", "LLM_MODEL"),),
    "images": (("provider", "IMAGES_PROVIDER"), ("model", "IMAGES_MODEL")),
    "docs": (("drive_base_url", "GOOGLE_DRIVE_BASE_URL"),),
    "sheets": (("drive_base_url", "GOOGLE_DRIVE_BASE_URL"),),
    "asana": (("workspace_gid", "ASANA_WORKSPACE_GID"),),
    "canva": (("poll_interval_s", "CANVA_POLL_INTERVAL_S"),),
    "slack": (("channel", "SLACK_CHANNEL"),),
    "email": (("sender_id", "SENDGRID_SENDER_ID"),),
    "pages": (("repository", "GITHUB_PAGES_REPOSITORY"), ("branch", "GITHUB_PAGES_BRANCH")),
    "amazon_dsp": (
        ("client_id", "AMAZON_DSP_CLIENT_ID"),
        ("profile_id", "AMAZON_DSP_PROFILE_ID"),
        ("advertiser_id", "AMAZON_DSP_ADVERTISER_ID"),
    ),
    "trade_desk": (("advertiser_id", "TTD_ADVERTISER_ID"),),
    "dv360": (("advertiser_id", "DV360_ADVERTISER_ID"),),
    "amazon_reporting": (("client_id", "AMAZON_DSP_CLIENT_ID"), ("profile_id", "AMAZON_DSP_PROFILE_ID"),
                         ("poll_interval_s", "REPORT_POLL_INTERVAL_S")),
    "ttd_reporting": (("advertiser_id", "TTD_ADVERTISER_ID"), ("template_id", "TTD_REPORT_TEMPLATE_ID"),
                      ("poll_interval_s", "REPORT_POLL_INTERVAL_S")),
    "dv360_reporting": (("poll_interval_s", "REPORT_POLL_INTERVAL_S"),),
}


def _env(env: Mapping[str, str], name: str) -> dg.EnvVar | None:
    """An EnvVar when the variable is set, so Dagster resolves (and never
    logs) the value at run time; None keeps the field's default."""
    return dg.EnvVar(name) if env.get(name) else None


def build_resources(env: Mapping[str, str]) -> dict[str, Any]:
    """Every resource, configured from the environment's variable *names*."""
    resources: dict[str, Any] = {}
    # Caps come from the profile CAMPAIGN_CAPS_PROFILE names (vendor limits by
    # default, or the seed's); <PREFIX>_MAX_CONCURRENCY and <PREFIX>_SHARED_SLOTS
    # override one service.
    profile = caps_profile(env)
    ledger = LedgerResource(**_ledger_fields(env))
    # The slot board that holds each service's cap across processes lives in
    # the ledger's database.
    slots_url: Any = dg.EnvVar("CAMPAIGN_LEDGER_URL") if env.get("CAMPAIGN_LEDGER_URL") else ledger.resolved_url()
    for key, (cls, prefix, token) in SERVICE_ENV.items():
        fields: dict[str, Any] = {
            "api_key": _env(env, token) if token else None,
            "base_url": _env(env, f"{prefix}_BASE_URL"),
            "slots_url": slots_url,
        }
        concurrency = env.get(f"{prefix}_MAX_CONCURRENCY")
        fields["max_concurrency"] = int(concurrency) if concurrency else profile.caps[key]
        fields["shared_slots"] = env.get(f"{prefix}_SHARED_SLOTS") or profile.shared_slots(key)
        for field, var in _HTTP_ENV:
            if env.get(var):
                fields[field] = float(env[var]) if field != "max_attempts" else int(env[var])
        for field, var in _EXTRA_ENV.get(key, ()):
            fields[field] = env.get(var) or None  # settings, not secrets: plain values
        resources[key] = cls(**{k: v for k, v in fields.items() if v is not None})
    # Paths are not secrets: plain values, so a test or a second code
    # location can point at its own folders.
    # A URL (s3://...) for either: specs and artifacts in a bucket (storage.py).
    names = (("campaigns_dir", "CAMPAIGNS_DIR"), ("root", "WORKSPACE_DIR"), ("cache_dir", CACHE_ENV))
    workspace: dict[str, Any] = {k: env[v] for k, v in names if env.get(v)}
    if env.get(ENDPOINT_ENV):
        workspace["endpoint_url"] = dg.EnvVar(ENDPOINT_ENV)
    resources["workspace"] = WorkspaceResource(**workspace)
    resources["ledger"] = ledger
    # The research fetcher's SSRF allowlist (tests only): an EnvVar, resolved at run time.
    resources["web"] = WebResource(**({"allow_hosts": dg.EnvVar("RESEARCH_ALLOW_HOSTS")} if env.get("RESEARCH_ALLOW_HOSTS") else {}))
    # Asset values: local by default, a bucket prefix every host reads in production.
    io_fields = {"base_path": _env(env, IO_BASE_ENV), "endpoint_url": _env(env, ENDPOINT_ENV)}
    resources["io_manager"] = CampaignIOManager(**{k: v for k, v in io_fields.items() if v is not None})
    return resources


def _ledger_fields(env: Mapping[str, str]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if env.get("CAMPAIGN_LEDGER_URL"):
        fields["url"] = dg.EnvVar("CAMPAIGN_LEDGER_URL")
    workspace = env.get("WORKSPACE_DIR")
    if workspace and is_url(workspace):
        # The ledger is what makes side effects happen once. A bucket
        # workspace means several hosts or disposable containers; a SQLite
        # file in a host's cache would split or lose that record. So it must
        # be named: Postgres, or a SQLite file the operator chose.
        if not env.get("CAMPAIGN_LEDGER_URL"):
            raise ValueError(
                f"WORKSPACE_DIR is a URL ({workspace}): set CAMPAIGN_LEDGER_URL (Postgres for several hosts, "
                "or sqlite:////a/lasting/path/ledger.sqlite for one); the ledger never goes to the bucket or the cache"
            )
    elif workspace:
        fields["sqlite_path"] = str(Path(workspace) / "ledger.sqlite")
    return fields
