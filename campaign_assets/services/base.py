"""The service protocol: one ConfigurableResource per outside service (DESIGN.md §3).

A resource *is* the client. ``session()`` opens one per step: the HTTP
backend (one ``httpx.AsyncClient`` under the shared HTTP layer) when a token
is configured, the local backend otherwise. Both backends expose the same
typed async methods (``services/protocols.py``), so workflows never know
which one ran, except through ``client.backend`` which they put in metadata.
The local backends' shared base and file writing are in ``services/local.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, ClassVar

import dagster as dg
from pydantic import Field

from campaign_assets.settings import SERVICE_CAPS
from campaign_assets.services.http import HttpSession, RetryPolicy
from campaign_assets.services.slots import SlotBoard


class HttpClient:
    """Base of every HTTP backend: typed methods over one ``HttpSession``."""

    backend: ClassVar[str] = "http"

    def __init__(self, http: HttpSession):
        self.http = http
        self.service = http.service
        self.stats = http.stats


class ServiceResource(dg.ConfigurableResource):
    """Configuration shared by every service. Secrets arrive only through
    ``dg.EnvVar``; with no ``api_key`` the local backend runs."""

    SERVICE: ClassVar[str] = ""
    DEFAULT_BASE_URL: ClassVar[str] = ""

    base_url: str | None = Field(default=None, description="Vendor API base URL; the vendor's own when unset.")
    api_key: str | None = Field(default=None, description="Token (set through EnvVar). Unset: local backend.")
    max_concurrency: int | None = Field(default=None, description="Calls in flight at once within a step.")
    timeout_s: float = Field(default=120.0, description="Per-request timeout in seconds.")
    max_attempts: int = Field(default=6, description="Attempts per call on retryable errors.")
    backoff_base_s: float = Field(default=0.5, description="First retry delay; doubles per attempt, with jitter.")
    shared_slots: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9_-]+:[1-9][0-9]*$",
        description="NAME:CAP: share one cap with other services calling the same vendor, e.g. openai:16 "
        "for chat and image generation against OpenAI's 16 requests in flight; unset: the service's own cap.",
    )
    slots_url: str | None = Field(
        default=None,
        description="Database of the slot board that holds the cap across processes and runs "
        "(the ledger's); unset: the cap holds per step only.",
    )

    @property
    def backend(self) -> str:
        return "http" if self.api_key else "local"

    @property
    def cap(self) -> int:
        return self.max_concurrency or SERVICE_CAPS[self.SERVICE]

    @property
    def slot_key(self) -> tuple[str, int]:
        """Which cap on the slot board this service's calls count against."""
        if self.shared_slots:
            name, cap = self.shared_slots.split(":")
            return name, int(cap)
        return self.SERVICE, self.cap

    # ---- subclasses provide the two backends -------------------------------
    def local_client(self, out_dir: Path) -> Any:
        raise NotImplementedError

    def http_client(self, http: HttpSession) -> Any:
        raise NotImplementedError

    def auth_headers(self) -> Mapping[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def vendor_profile(self) -> Any:
        return None

    # ---- the one entry point assets use -------------------------------------
    @asynccontextmanager
    async def session(self, out_dir: Path, *, local: bool = False) -> AsyncIterator[Any]:
        """One client for a step. ``local=True``: the local backend whatever
        is configured (the fallback when the vendor is down)."""
        if local or self.backend == "local":
            out_dir.mkdir(parents=True, exist_ok=True)
            yield self.local_client(out_dir)
            return
        policy = RetryPolicy(
            max_attempts=self.max_attempts, backoff_base_s=self.backoff_base_s, timeout_s=self.timeout_s
        )
        board = SlotBoard(self.slots_url) if self.slots_url else None
        try:
            async with HttpSession(
                service=self.SERVICE,
                base_url=(self.base_url or self.DEFAULT_BASE_URL).rstrip("/"),
                headers=self.auth_headers(),
                secrets=[self.api_key or ""],
                cap=self.cap,
                policy=policy,
                profile=self.vendor_profile(),
                shared_slot=board and (lambda: board.hold(*self.slot_key)),
            ) as http:
                yield self.http_client(http)
        finally:
            if board is not None:
                board.dispose()
