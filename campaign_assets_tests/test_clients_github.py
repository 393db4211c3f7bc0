"""The GitHub Pages (web) clients: the contents API against the vendor sandbox, and the local site."""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from campaign_assets.sandbox.server import SandboxServer
from campaign_assets.services import github_pages
from campaign_assets.services.github_pages import (
    HttpPages,
    LocalPages,
    PagesResource,
    PublishedFile,
    blob_sha,
    github_classify,
    github_retry_after,
    pages_url,
)
from campaign_assets.services.http import PermanentVendorError
from campaign_assets_tests.conftest import CLIENT_SANDBOX
from campaign_assets_tests.http_doubles import GENEROUS_TIMEOUT_S

REPOSITORY = "acme/campaigns"
PATH = "q4-product-launch/index.html"
PAGE = b"<!doctype html><title>Acme Q4</title>"
PUT = "PUT /repos/{owner}/{repo}/contents/{path}"
GET = "GET /repos/{owner}/{repo}/contents/{path}"
DELETE = "DELETE /repos/{owner}/{repo}/contents/{path}"


def resource(sandbox: SandboxServer, **overrides: Any) -> PagesResource:
    config: dict[str, Any] = dict(
        base_url=f"{sandbox.url}/github", api_key="ghp_sandboxtoken", repository=REPOSITORY,
        backoff_base_s=0.001, timeout_s=GENEROUS_TIMEOUT_S,
    )
    return PagesResource(**(config | overrides))


def live_files(sandbox: SandboxServer) -> dict[str, dict[str, Any]]:
    objects = sandbox.state()["vendors"]["github"]["objects"]
    return {o["id"]: o["data"] for o in objects if o["kind"] == "file" and not o["deleted"]}


def calls(sandbox: SandboxServer, endpoint: str | None = None) -> list[dict[str, Any]]:
    return [c for c in sandbox.state()["calls"] if c["vendor"] == "github" and endpoint in (None, c["endpoint"])]


def run(sandbox: SandboxServer, tmp_path: Path, body: Any, **overrides: Any) -> Any:
    async def scenario() -> Any:
        async with resource(sandbox, **overrides).session(tmp_path) as client:
            assert isinstance(client, HttpPages)
            return await body(client)

    return asyncio.run(scenario())


def publish(content: bytes = PAGE, path: str = PATH) -> Any:
    return lambda client: client.publish_file(path, content, f"Publish {path}")


def test_blob_sha_is_gits() -> None:
    assert blob_sha(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"  # git hash-object
    assert blob_sha(b"") == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"


def test_publish_find_update_and_delete(sandbox: SandboxServer, tmp_path: Path) -> None:
    created = run(sandbox, tmp_path, publish())
    assert created == PublishedFile(
        PATH, blob_sha(PAGE), "https://acme.github.io/campaigns/q4-product-launch/index.html",
        f"https://github.com/{REPOSITORY}/blob/gh-pages/{PATH}",
    )
    [stored] = live_files(sandbox).values()
    assert (stored["branch"], base64.b64decode(stored["content"])) == ("gh-pages", PAGE)
    assert run(sandbox, tmp_path, lambda client: client.find_file(PATH)) == created
    assert run(sandbox, tmp_path, lambda client: client.find_file("nowhere.html")) is None

    assert run(sandbox, tmp_path, publish()) == created  # identical content: nothing is written
    assert [c["status"] for c in calls(sandbox, PUT)] == [201]

    changed = PAGE + b"<p>v2</p>"
    updated = run(sandbox, tmp_path, publish(changed))
    assert updated.sha == blob_sha(changed) != created.sha
    assert [c["status"] for c in calls(sandbox, PUT)] == [201, 200]  # the update named the current sha

    async def teardown(client: HttpPages) -> tuple[bool, bool, PublishedFile | None]:
        message = f"Unpublish {PATH}"
        return await client.delete_file(PATH, message), await client.delete_file(PATH, message), await client.find_file(PATH)

    assert run(sandbox, tmp_path, teardown) == (True, False, None)
    assert live_files(sandbox) == {}


def test_lost_responses_on_every_write_commit_once(sandbox: SandboxServer, tmp_path: Path) -> None:
    sandbox.queue_fault("github", "lost_response", PUT)
    created = run(sandbox, tmp_path, publish())
    assert created.sha == blob_sha(PAGE) and len(calls(sandbox, PUT)) == 1  # re-read, found ours: not re-sent

    sandbox.queue_fault("github", "lost_response", PUT)
    changed = PAGE + b"<p>v2</p>"
    assert run(sandbox, tmp_path, publish(changed)).sha == blob_sha(changed)
    assert len(calls(sandbox, PUT)) == 2

    sandbox.queue_fault("github", "lost_response", DELETE)
    assert run(sandbox, tmp_path, lambda client: client.delete_file(PATH, "Unpublish")) is True
    assert len(calls(sandbox, DELETE)) == 1 and live_files(sandbox) == {}


def test_a_stale_sha_is_re_read_and_retried(sandbox: SandboxServer, tmp_path: Path) -> None:
    run(sandbox, tmp_path, publish())
    changed = PAGE + b"<p>v2</p>"

    async def body(client: HttpPages) -> PublishedFile:
        real = client.find_file
        reads = 0

        async def stale_once(path: str) -> PublishedFile | None:  # another writer moved the branch meanwhile
            nonlocal reads
            reads += 1
            found = await real(path)
            return PublishedFile(path, "0" * 40, found.url, None) if reads == 1 and found else found

        client.find_file = stale_once  # type: ignore[method-assign]
        return await client.publish_file(PATH, changed, "Publish v2")

    assert run(sandbox, tmp_path, body).sha == blob_sha(changed)
    assert [c["status"] for c in calls(sandbox, PUT)] == [201, 409, 200]


def test_a_file_created_meanwhile_is_re_read_and_updated(sandbox: SandboxServer, tmp_path: Path) -> None:
    run(sandbox, tmp_path, publish())  # another writer created it after our read said "not there"
    changed = PAGE + b"<p>v2</p>"

    async def body(client: HttpPages) -> PublishedFile:
        real = client.find_file
        reads = 0

        async def missing_once(path: str) -> PublishedFile | None:
            nonlocal reads
            reads += 1
            return None if reads == 1 else await real(path)

        client.find_file = missing_once  # type: ignore[method-assign]
        return await client.publish_file(PATH, changed, "Publish v2")

    assert run(sandbox, tmp_path, body).sha == blob_sha(changed)
    assert [c["status"] for c in calls(sandbox, PUT)] == [201, 422, 200]


def test_an_invalid_write_is_not_retried(sandbox: SandboxServer, tmp_path: Path) -> None:
    with pytest.raises(PermanentVendorError) as raised:
        run(sandbox, tmp_path, lambda client: client.publish_file(PATH, PAGE, ""))  # GitHub requires a message
    assert raised.value.status_code == 422 and len(calls(sandbox, PUT)) == 1


def test_writes_to_the_branch_are_serialized(sandbox: SandboxServer, tmp_path: Path) -> None:
    async def body(client: HttpPages) -> list[PublishedFile]:
        return await asyncio.gather(*(publish(PAGE + bytes([n]), f"p/{n}.html")(client) for n in range(4)))

    published = run(sandbox, tmp_path, body, max_concurrency=4)
    assert len(published) == len(live_files(sandbox)) == 4
    writes = sandbox.state()["vendors"]["github"]["max_concurrency_by_endpoint"]
    assert writes[PUT] == 1


def test_a_secondary_rate_limit_403_is_waited_on(sandbox: SandboxServer, tmp_path: Path) -> None:
    sandbox.queue_fault("github", "429", PUT, times=2)  # GitHub answers 403 with retry-after
    run(sandbox, tmp_path, publish())
    assert [c["status"] for c in calls(sandbox, PUT)] == [403, 403, 201]
    assert len(live_files(sandbox)) == 1


def test_write_limit_exhaustion_is_waited_on(sandbox: SandboxServer, tmp_path: Path) -> None:
    rule = {"name": "content-creating requests", "methods": ["PUT", "DELETE"], "max_requests": 2}
    sandbox.reset(**CLIENT_SANDBOX, limits={"github": [rule]})

    async def body(client: HttpPages) -> list[PublishedFile]:
        return [await publish(PAGE + bytes([n]), f"p/{n}.html")(client) for n in range(5)]

    assert len(run(sandbox, tmp_path, body)) == 5 == len(live_files(sandbox))
    assert any(c["rate_limited"] for c in calls(sandbox, PUT))


def test_a_revoked_token_is_permanent(sandbox: SandboxServer, tmp_path: Path) -> None:
    with pytest.raises(PermanentVendorError) as raised:
        run(sandbox, tmp_path, publish(), api_key="ghp_revoked0123456789")
    assert raised.value.status_code == 401 and raised.value.message == "Bad credentials"
    assert "ghp_revoked0123456789" not in str(raised.value)
    assert len(calls(sandbox)) == 1 and live_files(sandbox) == {}


def _response(status: int, headers: dict[str, str] | None = None, message: str = "") -> httpx.Response:
    request = httpx.Request("PUT", "https://api.github.com/repos/acme/campaigns/contents/index.html")
    return httpx.Response(status, headers=headers, json={"message": message}, request=request)


def test_only_a_rate_limit_403_is_retried() -> None:
    primary = _response(403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1000"}, "API rate limit exceeded")
    assert github_classify(primary) == "rate_limited"
    assert github_retry_after(primary, now=lambda: 990.0) == 10.0
    secondary = _response(403, {"retry-after": "60"}, "You have exceeded a secondary rate limit.")
    assert github_classify(secondary) == "rate_limited" and github_retry_after(secondary) == 60.0
    assert github_classify(_response(429, {"retry-after": "5"})) == "rate_limited"
    wordy = _response(403, {"x-ratelimit-remaining": "4000"}, "You have exceeded a secondary rate limit.")
    assert github_classify(wordy) == "rate_limited" and github_retry_after(wordy) is None  # backoff
    refused = _response(403, {"x-ratelimit-remaining": "4999"}, "Resource not accessible by integration")
    assert github_classify(refused) == "permanent"
    assert github_classify(_response(409, message="index.html does not match 0000")) == "permanent"
    assert github_classify(_response(502)) == "retryable"
    later = time.time() + 30
    assert 0 < github_retry_after(_response(403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": f"{later:.0f}"})) <= 31  # type: ignore[operator]


def test_headers_and_page_urls() -> None:
    headers = PagesResource(api_key="ghp_x", repository=REPOSITORY).auth_headers()
    assert headers["Accept"] == "application/vnd.github+json" and headers["X-GitHub-Api-Version"] == "2022-11-28"
    assert pages_url(REPOSITORY, "/q4/index.html") == "https://acme.github.io/campaigns/q4/index.html"
    assert pages_url("Acme/acme.github.io", "q4/a b.html") == "https://acme.github.io/q4/a%20b.html"
    for bad in ("", "../x.html", "q4/../../x", "a//b"):
        with pytest.raises(ValueError):
            pages_url(REPOSITORY, bad)


def _no_write(path: Path, data: bytes) -> Path:
    raise AssertionError(f"wrote {path}")


def test_local_backend_writes_the_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> None:
        async with PagesResource().session(tmp_path) as client:
            assert isinstance(client, LocalPages)
            target = tmp_path / "site" / PATH
            published = await client.publish_file(PATH, PAGE, "Publish")
            assert target.read_bytes() == PAGE
            assert published == PublishedFile(PATH, blob_sha(PAGE), target.resolve().as_uri(), None)
            assert client.page_url(PATH) == published.url
            with monkeypatch.context() as patched:  # identical content must not be written again
                patched.setattr(github_pages, "write_bytes", _no_write)
                assert await client.publish_file(PATH, PAGE, "Publish") == published
            assert await client.find_file(PATH) == published
            assert await client.find_file("other.html") is None
            assert await client.delete_file(PATH, "Unpublish") is True
            assert await client.delete_file(PATH, "Unpublish") is False
            with pytest.raises(ValueError):
                await client.publish_file("../escape.html", PAGE, "no")

    asyncio.run(scenario())
