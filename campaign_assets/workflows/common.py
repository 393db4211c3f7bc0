"""What every workflow shares: its ``Outcome``, the clients it opens, and the
shape of its teardown rules.

A workflow module (one per asset) says how its artifact is made (an async
``make``-style function an asset calls under ``asyncio.run``) and how it is
torn down (``STAGES``: the ``Stage``s the teardown driver in
``core/teardown.py`` runs, in reverse of the order the modules are listed in
``campaign_assets.workflows.WORKFLOWS``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from campaign_assets.core.items import Attempt, ItemReport, VendorRef
from campaign_assets.ledger import LedgerRow, Scope
from campaign_assets.services.protocols import Docs
from campaign_assets.settings import scope as scope_of  # one home: settings.scope
from campaign_assets.spec import CampaignSpec

Create = Callable[[Any, Attempt], Awaitable[VendorRef]]


@dataclass
class Outcome:
    """What a workflow hands back to its asset."""

    value: Any
    reports: list[ItemReport]
    clients: list[Any]
    links: dict[str, str | None] = field(default_factory=dict)




@asynccontextmanager
async def clients(out: Path, *resources: Any) -> AsyncIterator[tuple[list[Any], list[Any] | None]]:
    """One session per resource, and when any of them speaks HTTP, their
    local twins: the fallback that makes the artifact while a vendor is down."""
    async with AsyncExitStack() as stack:
        live = [await stack.enter_async_context(r.session(out)) for r in resources]
        local = None
        if any(r.backend == "http" for r in resources):
            local = [await stack.enter_async_context(r.session(out, local=True)) for r in resources]
        yield live, local


async def write_document(docs: Docs, title: str, name: str, text: str, attempt: Attempt) -> VendorRef:
    """A document titled with the marker holding ``text``: the one an earlier
    attempt left (adopted by marker), else a new one."""
    titled = f"{title} {attempt.marker}"
    found = await attempt.adopted(lambda _marker: docs.find_document(titled, name=name))
    doc = found or await docs.create_document(titled, name=name)
    await docs.write_text(doc, text, fresh=found is None)  # a new document is empty: no read first
    return VendorRef(doc.document_id, doc.url, {"title": title, "markdown": text})


class Drafts:
    """Text an LLM wrote inside an item, kept for that item's local copy: when
    the document store refuses the brief or the report, the local file carries
    the LLM's words, not the template's."""

    def __init__(self) -> None:
        self._texts: dict[str, str] = {}

    async def text(self, key: str, writer: Any, request: Any) -> str:
        if key not in self._texts:
            self._texts[key] = (await writer.complete(request)).text
        return self._texts[key]

    async def kept_or(self, key: str, writer: Any, request: Any) -> str:
        """The live draft when there is one, else ``writer``'s (the local backend's)."""
        return self._texts.get(key) or (await writer.complete(request)).text


# ---- teardown rules ---------------------------------------------------------------
class Unverifiable(Exception):
    """A row the teardown cannot check (no vendor id and no marker lookup): left for a person."""


@dataclass(frozen=True)
class Context:
    """What a delete may need besides its client: the campaign's folder and
    the other rows of the campaign (tasks find their project's gid there)."""

    folder: Path
    rows: tuple[LedgerRow, ...] = ()

    def vendor_id(self, asset: str, item_key: str) -> str | None:
        return next((r.vendor_id for r in self.rows if r.scope.asset == asset and r.item_key == item_key), None)


# (client or None, the row, the context) -> True: deleted; False: already gone.
Delete = Callable[[Any, LedgerRow, Context], Awaitable[bool]]


@dataclass(frozen=True)
class Rule:
    """How the rows whose item key starts with ``prefix`` are deleted:
    ``delete`` through the ``service``'s client (None: no client), or, with
    ``by_row``, through the client of the service each row was recorded
    under (the DSPs: one asset, three vendors)."""

    service: str | None
    delete: Delete
    prefix: str = ""
    by_row: bool = False

    def service_for(self, row: LedgerRow) -> str | None:
        return row.service if self.by_row else self.service


@dataclass(frozen=True)
class Stage:
    """One step of a teardown: the rows of ``asset`` its rules match (deleted
    side by side), then ``files`` (relative to the campaign folder)."""

    name: str
    asset: str
    rules: tuple[Rule, ...] = ()
    files: tuple[str, ...] = ()

    def rule_for(self, row: LedgerRow) -> Rule | None:
        if row.scope.asset != self.asset:
            return None
        return next((r for r in self.rules if row.item_key.startswith(r.prefix)), None)


async def deleted_by_id(delete: Callable[[str], Awaitable[bool]], vendor_id: str | None) -> bool:
    """``delete(vendor_id)``; False (gone) when nothing was recorded or found."""
    return await delete(vendor_id) if vendor_id else False


async def delete_recorded(delete: Callable[[str], Awaitable[bool]], row: LedgerRow) -> bool:
    """For objects with no marker lookup (documents, sheets): only a recorded id."""
    if not row.vendor_id:
        raise Unverifiable(f"no vendor id recorded; look for marker {row.marker}")
    return await delete(row.vendor_id)
