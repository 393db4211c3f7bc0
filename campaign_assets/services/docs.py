"""Google Docs: documents.create and documents.batchUpdate (insertText); Drive to find and delete."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from campaign_assets.logic.render import write_text
from campaign_assets.services.base import LocalClient, ServiceResource


@dataclass(frozen=True)
class DocRef:
    document_id: str
    title: str
    url: str


class LocalDocs(LocalClient):
    """Documents as markdown files named after the document."""

    def __init__(self, out_dir: Path):
        super().__init__("docs", out_dir)

    def _path(self, name: str) -> Path:
        return self.out_dir / f"{name}.md"

    def _ref(self, name: str, title: str) -> DocRef:
        return DocRef(document_id=f"local-doc:{name}", title=title, url=self._path(name).resolve().as_uri())

    async def create_document(self, title: str, *, name: str) -> DocRef:
        async with self.call("documents.create"):
            write_text(self._path(name), "")
            return self._ref(name, title)

    async def write_text(self, doc: DocRef, text: str) -> None:
        async with self.call("documents.batchUpdate"):
            write_text(self._path(doc.document_id.removeprefix("local-doc:")), text)

    async def find_document(self, title: str, *, name: str) -> DocRef | None:
        async with self.call("files.list"):
            return self._ref(name, title) if self._path(name).exists() else None

    async def delete_document(self, document_id: str) -> None:
        async with self.call("files.delete"):
            self._path(document_id.removeprefix("local-doc:")).unlink(missing_ok=True)


class DocsResource(ServiceResource):
    """Briefs and reports as Google Docs."""

    SERVICE: ClassVar[str] = "docs"
    DEFAULT_BASE_URL: ClassVar[str] = "https://docs.googleapis.com"
    DEFAULT_CAP: ClassVar[int] = 3

    drive_base_url: str | None = None

    def local_client(self, out_dir: Path) -> LocalDocs:
        return LocalDocs(out_dir)
