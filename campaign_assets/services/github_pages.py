"""Web: files published to a GitHub Pages repository's branch through the REST *contents* API.

The HTTP backend follows docs.github.com/rest/repos/contents ("Get repository content", "Create
or update file contents", "Delete a file": ``GET``/``PUT``/``DELETE
/repos/{owner}/{repo}/contents/{path}``, ``ref``/``branch``, base64 ``content``, ``message``,
and the file's blob ``sha``, required to update or delete), with ``Accept:
application/vnd.github+json`` and ``X-GitHub-Api-Version: 2022-11-28``. Rate limits follow
/rest/using-the-rest-api/rate-limits-for-the-rest-api: a 403 or 429 is a rate limit when it
carries ``retry-after`` (secondary limits: wait that long) or ``x-ratelimit-remaining: 0`` (the
primary limit: wait until ``x-ratelimit-reset``, epoch seconds), or says "rate limit"; any other
403 is a permanent refusal (:func:`github_classify`, :func:`github_retry_after`).

Writes to one branch never race: a client serializes its writes (GitHub answers 409 to a PUT
or DELETE whose ``sha`` went stale, and octokit documents that parallel calls conflict), and on
a 409 it re-reads the file's sha and tries again. Exactly once: a PUT is sent as non-idempotent,
so a lost response is never blindly re-sent; the file is re-read and its git blob sha
(``sha1(b"blob <size>\\0" + bytes)``, :func:`blob_sha`) compared with ours. Content identical to
what the branch holds is never written again (no empty commit).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar
from urllib.parse import quote

import httpx
from pydantic import Field

from campaign_assets.services.base import HttpClient, ServiceResource
from campaign_assets.services.http import (
    AmbiguousWriteError,
    Classification,
    HttpSession,
    PermanentVendorError,
    VendorProfile,
    default_classify,
    default_retry_after,
)
from campaign_assets.services.http.profiles import json_or_none
from campaign_assets.services.local import LocalClient, inside, unlink, write_bytes

API_VERSION = "2022-11-28"
WRITE_ATTEMPTS = 5  # re-reads of the sha after a 409 (or an unknown outcome) before giving up
T = TypeVar("T")


@dataclass(frozen=True)
class PublishedFile:
    path: str
    sha: str  # the git blob sha of the file's bytes
    url: str  # where the page is served (GitHub Pages; a file URI locally)
    html_url: str | None  # the file in the repository, when there is one


def blob_sha(data: bytes) -> str:
    """Git's blob id for ``data``: ``sha1(b"blob <size>\\0" + data)``, what the contents API calls ``sha``."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def clean_path(path: str) -> str:
    """A repository-relative file path: no leading slash, no empty, ``.`` or ``..`` segment."""
    parts = path.strip().strip("/").split("/")
    if not path.strip().strip("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"not a file path inside the site: {path!r}")
    return "/".join(parts)


def pages_url(repository: str, path: str) -> str:
    """The Pages URL of ``path``: ``https://OWNER.github.io/REPO/PATH`` (a user/org site
    repository ``OWNER.github.io`` serves from the root)."""
    owner, _, repo = repository.partition("/")
    host = f"{owner.lower()}.github.io"
    prefix = "" if repo.lower() == host else f"/{repo}"
    return f"https://{host}{prefix}/{quote(clean_path(path))}"


def _rate_limit_signal(response: httpx.Response) -> bool:
    headers = response.headers
    if headers.get("retry-after") or headers.get("x-ratelimit-remaining") == "0":
        return True
    payload = json_or_none(response)
    message = str(payload.get("message") or "") if isinstance(payload, Mapping) else ""
    return "rate limit" in message.lower()


def github_classify(response: httpx.Response) -> Classification:
    """403/429 with a rate-limit signal: rate limited; any other 403: permanent; else by status."""
    if response.status_code in (403, 429) and _rate_limit_signal(response):
        return "rate_limited"
    return default_classify(response)


def github_retry_after(response: httpx.Response, *, now: Callable[[], float] = time.time) -> float | None:
    """``retry-after`` if present; else, when the primary limit ran out, seconds until ``x-ratelimit-reset``."""
    hint = default_retry_after(response)
    if hint is not None:
        return hint
    reset = response.headers.get("x-ratelimit-reset")
    if response.headers.get("x-ratelimit-remaining") == "0" and reset:
        try:
            return max(0.0, float(reset) - now())
        except ValueError:
            return None
    return None


def _stale(error: PermanentVendorError) -> bool:
    """A write refused because the branch moved under it: 409 (the sha is stale), or 422 naming
    ``sha`` (none was sent, but the file was created meanwhile). Worth a re-read; nothing else is."""
    return error.status_code == 409 or (error.status_code == 422 and '"sha"' in error.message)


class LocalPages(LocalClient):
    """The site as real files under ``<campaign folder>/site/<path>``."""

    def __init__(self, out_dir: Path, repository: str | None):
        super().__init__("pages", out_dir)
        self.repository = repository
        self.site = out_dir / "site"

    def page_url(self, path: str) -> str:
        return inside(self.site, clean_path(path)).as_uri()

    def _file(self, path: str, data: bytes) -> PublishedFile:
        return PublishedFile(path, blob_sha(data), self.page_url(path), None)

    async def publish_file(self, path: str, content: bytes, message: str) -> PublishedFile:
        path = clean_path(path)
        target = inside(self.site, path)
        async with self.call("PUT contents"):
            if not (target.is_file() and target.read_bytes() == content):  # identical content: no write
                write_bytes(target, content)
        return self._file(path, content)

    async def find_file(self, path: str) -> PublishedFile | None:
        path = clean_path(path)
        target = inside(self.site, path)
        async with self.call("GET contents"):
            return self._file(path, target.read_bytes()) if target.is_file() else None

    async def delete_file(self, path: str, message: str) -> bool:
        async with self.call("DELETE contents"):
            return unlink(inside(self.site, clean_path(path)))


class HttpPages(HttpClient):
    """GitHub contents API for one repository and branch, over one ``HttpSession``."""

    def __init__(self, http: HttpSession, repository: str, branch: str):
        super().__init__(http)
        owner, _, repo = repository.partition("/")
        if not owner or not repo or "/" in repo:
            raise ValueError(f"PagesResource.repository must be 'owner/repo', got {repository!r}")
        self.repository = repository
        self.branch = branch
        self._base = f"/repos/{quote(owner, safe='')}/{quote(repo, safe='')}/contents/"
        self._writes = asyncio.Lock()  # one write at a time to the branch

    def page_url(self, path: str) -> str:
        return pages_url(self.repository, path)

    async def find_file(self, path: str) -> PublishedFile | None:
        """The file on the branch, or None (404)."""
        path = clean_path(path)
        try:
            record = await self.http.json("GET", self._path(path), params={"ref": self.branch})
        except PermanentVendorError as error:
            if error.status_code != 404:
                raise
            return None
        if not isinstance(record, Mapping) or record.get("type") != "file":
            raise PermanentVendorError(self.service, f"{path} is not a file on {self.branch}", kind="not_a_file")
        return self._published(path, record)

    async def publish_file(self, path: str, content: bytes, message: str) -> PublishedFile:
        """Create or update the file with ``content``; identical content is not written again."""
        path = clean_path(path)
        ours = blob_sha(content)

        async def attempt(current: PublishedFile | None) -> PublishedFile:
            if current is not None and current.sha == ours:
                return current
            body: dict[str, Any] = {
                "message": message,
                "content": base64.b64encode(content).decode("ascii"),
                "branch": self.branch,
            }
            if current is not None:
                body["sha"] = current.sha
            answer = await self.http.json("PUT", self._path(path), json=body, idempotent=False)
            return self._published(path, answer["content"])

        return await self._serialized(path, attempt, done=lambda found: found is not None and found.sha == ours)

    async def delete_file(self, path: str, message: str) -> bool:
        """Delete the file: True; False when it was not there."""
        path = clean_path(path)

        async def attempt(current: PublishedFile | None) -> bool:
            if current is None:
                return False
            body = {"message": message, "sha": current.sha, "branch": self.branch}
            await self.http.json("DELETE", self._path(path), json=body, idempotent=False)
            return True

        return await self._serialized(path, attempt, done=lambda found: found is None, resolved=True)

    async def _serialized(
        self,
        path: str,
        attempt: Callable[[PublishedFile | None], Awaitable[T]],
        *,
        done: Callable[[PublishedFile | None], bool],
        resolved: Any = None,
    ) -> T:
        """Read the current sha, then write, under the branch's write lock. On a 409 (stale sha) or
        a lost response, re-read: if the branch already shows our write (``done``), that is the
        outcome (``resolved``, or the file found); otherwise write again with the fresh sha."""
        async with self._writes:
            last: Exception | None = None
            for _ in range(WRITE_ATTEMPTS):
                current = await self.find_file(path)
                if last is not None and done(current):  # our earlier write landed after all
                    self.stats.reconciled += 1
                    return resolved if resolved is not None else current  # type: ignore[return-value]
                try:
                    return await attempt(current)
                except AmbiguousWriteError as error:
                    last = error
                except PermanentVendorError as error:
                    if not _stale(error):
                        raise
                    last = error
            assert last is not None
            raise last

    def _path(self, path: str) -> str:
        return self._base + quote(path, safe="/")

    def _published(self, path: str, record: Mapping[str, Any]) -> PublishedFile:
        return PublishedFile(path, str(record["sha"]), self.page_url(path), record.get("html_url"))


class PagesResource(ServiceResource):
    """The campaign's web pages, published to a GitHub Pages branch."""

    SERVICE: ClassVar[str] = "pages"
    DEFAULT_BASE_URL: ClassVar[str] = "https://api.github.com"

    repository: str | None = Field(
        default=None, description="The Pages repository, 'owner/repo' (GITHUB_PAGES_REPOSITORY)."
    )
    branch: str = Field(default="gh-pages", description="The branch Pages serves (GITHUB_PAGES_BRANCH).")

    def auth_headers(self) -> Mapping[str, str]:
        return {
            "Authorization": f"Bearer {self.api_key}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
        }

    def local_client(self, out_dir: Path) -> LocalPages:
        return LocalPages(out_dir, self.repository)

    def http_client(self, http: HttpSession) -> HttpPages:
        if not self.repository:
            raise ValueError("PagesResource.repository is required when GITHUB_PAGES_TOKEN is set (the HTTP backend)")
        return HttpPages(http, self.repository, self.branch)

    def vendor_profile(self) -> VendorProfile:
        return VendorProfile(service=self.SERVICE, classify=github_classify, retry_after=github_retry_after)
