"""Google Docs: documents.create and documents.batchUpdate (insertText); Drive to find and delete.

Also the Google pieces sheets.py shares: the vendor profile and :class:`Drive`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import httpx
from pydantic import Field

from campaign_assets.services.base import HttpClient, ServiceResource
from campaign_assets.services.http import (
    Classification,
    HttpSession,
    PermanentVendorError,
    VendorProfile,
    default_classify,
)
from campaign_assets.services.local import LocalClient, unlink, write_text

DRIVE_BASE_URL = "https://www.googleapis.com"
DOCUMENT_MIME = "application/vnd.google-apps.document"
DOCUMENT_URL = "https://docs.google.com/document/d/{}/edit"


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

    async def write_text(self, doc: DocRef, text: str, *, fresh: bool = False) -> None:
        async with self.call("documents.batchUpdate"):
            write_text(self._path(doc.document_id.removeprefix("local-doc:")), text)

    async def find_document(self, title: str, *, name: str) -> DocRef | None:
        async with self.call("files.list"):
            return self._ref(name, title) if self._path(name).exists() else None

    async def delete_document(self, document_id: str) -> bool:
        async with self.call("files.delete"):
            return unlink(self._path(document_id.removeprefix("local-doc:")))


# ---- Google, shared with sheets.py -----------------------------------------
_RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded", "RATE_LIMIT_EXCEEDED"})


def google_classify(response: httpx.Response) -> Classification:
    """Google's 429 RESOURCE_EXHAUSTED is the default's already; Drive also rate limits with a 403."""
    if response.status_code == 403:
        try:
            error = response.json().get("error") or {}
        except (ValueError, AttributeError):
            error = {}
        details = [*error.get("errors", []), *error.get("details", [])] if isinstance(error, Mapping) else []
        if any(isinstance(d, Mapping) and d.get("reason") in _RATE_LIMIT_REASONS for d in details):
            return "rate_limited"
    return default_classify(response)


def google_profile(service: str) -> VendorProfile:
    """``{"error": {"message", "status"}}`` messages and no Retry-After (so: backoff) are the defaults'."""
    return VendorProfile(service=service, classify=google_classify)


def drive_quote(value: str) -> str:
    """A string literal for a Drive ``q`` query: ``\\`` and ``'`` escaped with a backslash."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass(frozen=True)
class Drive:
    """Drive v3 files.list and files.delete, sent through a Docs or Sheets session.

    Drive has its own host, so requests use absolute URLs (httpx ignores the session's
    base URL for those). They share the session's token (the same Google OAuth token),
    concurrency cap, retries and stats: Drive calls are a step's reconciliation and
    teardown, not a separate workload worth a second connection pool.
    """

    http: HttpSession
    base_url: str = DRIVE_BASE_URL

    @classmethod
    def at(cls, http: HttpSession, base_url: str | None) -> Drive:
        """Drive at ``base_url`` (a sandbox, a proxy), Google's own when unset."""
        return cls(http, (base_url or DRIVE_BASE_URL).rstrip("/"))

    async def find(self, name: str, mime_type: str) -> str | None:
        """The id of the oldest live file with exactly this name and MIME type, if any."""
        query = f"name = {drive_quote(name)} and mimeType = {drive_quote(mime_type)} and trashed = false"
        params = {"q": query, "orderBy": "createdTime", "pageSize": "10", "fields": "files(id,name)"}
        payload = await self.http.json("GET", f"{self.base_url}/drive/v3/files", params=params)
        files = payload.get("files") if isinstance(payload, Mapping) else None
        return str(files[0]["id"]) if files else None

    async def delete(self, file_id: str) -> bool:
        """Delete for good: True, or False when the file was already gone (404)."""
        try:
            await self.http.request("DELETE", f"{self.base_url}/drive/v3/files/{file_id}")
        except PermanentVendorError as error:
            if error.status_code != 404:
                raise
            return False
        return True


# ---- the Docs client ---------------------------------------------------------
def _body(document: Mapping[str, Any]) -> tuple[str, int]:
    """The body's text and its end index (the body always ends with one final newline)."""
    content = (document.get("body") or {}).get("content") or []
    text = "".join(
        element.get("textRun", {}).get("content", "")
        for block in content
        for element in (block.get("paragraph") or {}).get("elements", [])
    )
    return text, int(content[-1].get("endIndex", 1)) if content else 1


class HttpDocs(HttpClient):
    """Google Docs v1, with Drive v3 to find documents by title and delete them."""

    def __init__(self, http: HttpSession, *, drive_base_url: str | None = None):
        super().__init__(http)
        self.drive = Drive.at(http, drive_base_url)

    @staticmethod
    def _ref(document_id: str, title: str) -> DocRef:
        return DocRef(document_id=document_id, title=title, url=DOCUMENT_URL.format(document_id))

    async def create_document(self, title: str, *, name: str) -> DocRef:
        """documents.create, exactly once: a lost response is found again by its (marked) title."""

        async def create() -> DocRef:
            document = await self.http.json("POST", "/v1/documents", json={"title": title})
            return self._ref(document["documentId"], title)

        return await self.http.create_once(create, lambda: self.find_document(title, name=name))

    async def find_document(self, title: str, *, name: str) -> DocRef | None:
        file_id = await self.drive.find(title, DOCUMENT_MIME)
        return None if file_id is None else self._ref(file_id, title)

    async def write_text(self, doc: DocRef, text: str, *, fresh: bool = False) -> None:
        """Replace the whole body with ``text``.

        The batchUpdate is a POST whose indexes come from the document it read, so it is
        never resent blindly; ``create_once`` reconciles an ambiguous one instead: if the
        document already reads ``text`` it is done, otherwise it reads and replaces again.
        ``fresh``: the document was just created empty, so the first attempt inserts
        without reading it first (one call instead of two); a retry reads as usual.
        """
        blind = fresh

        async def replace() -> bool:
            nonlocal blind
            first, blind = blind, False
            if first:
                await self._batch_update(doc.document_id, [_insert(text)] if text else [], None)
                return True
            return await self._replace(doc.document_id, text)

        await self.http.create_once(replace, lambda: self._reads(doc.document_id, text))

    async def _batch_update(self, document_id: str, requests: list[dict[str, Any]], revision: str | None) -> None:
        body: dict[str, Any] = {"requests": requests}
        if revision:  # Google refuses the edit if the document changed since we read it
            body["writeControl"] = {"requiredRevisionId": revision}
        await self.http.json("POST", f"/v1/documents/{document_id}:batchUpdate", json=body)

    async def _replace(self, document_id: str, text: str) -> bool:
        document = await self.http.json("GET", f"/v1/documents/{document_id}")
        current, end = _body(document)
        if current == text + "\n":
            return True
        requests: list[dict[str, Any]] = []
        if end > 2:  # everything but the final newline, which cannot be deleted
            requests.append({"deleteContentRange": {"range": {"startIndex": 1, "endIndex": end - 1}}})
        if text:
            requests.append(_insert(text))
        await self._batch_update(document_id, requests, document.get("revisionId"))
        return True

    async def _reads(self, document_id: str, text: str) -> bool | None:
        document = await self.http.json("GET", f"/v1/documents/{document_id}")
        return True if _body(document)[0] == text + "\n" else None

    async def delete_document(self, document_id: str) -> bool:
        return await self.drive.delete(document_id)


def _insert(text: str) -> dict[str, Any]:
    return {"insertText": {"location": {"index": 1}, "text": text}}


class DocsResource(ServiceResource):
    """Briefs and reports as Google Docs."""

    SERVICE: ClassVar[str] = "docs"
    DEFAULT_BASE_URL: ClassVar[str] = "https://docs.googleapis.com"

    drive_base_url: str | None = Field(
        default=None, description=f"Drive API base URL (to find and delete files); {DRIVE_BASE_URL} when unset."
    )

    def local_client(self, out_dir: Path) -> LocalDocs:
        return LocalDocs(out_dir)

    def http_client(self, http: HttpSession) -> HttpDocs:
        return HttpDocs(http, drive_base_url=self.drive_base_url)

    def vendor_profile(self) -> VendorProfile:
        return google_profile(self.SERVICE)
