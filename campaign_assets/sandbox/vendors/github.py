"""GitHub REST API, repository contents: read, create or update, and delete one file on a branch.

Shapes follow docs.github.com/rest/repos/contents ("Get repository content", "Create or update
file contents", "Delete a file") and /rest/using-the-rest-api/rate-limits-for-the-rest-api:
``{"message", "documentation_url", "status"}`` errors; ``content`` base64 (wrapped at 60
characters on reads, as GitHub does); ``sha`` is the file's git blob sha and is required to
update or delete; a stale ``sha`` is a 409 (``"PATH does not match SHA"``), a missing one on an
existing file a 422. Rate limits: every refusal is a *secondary* limit, answered as GitHub does
with 403 and a ``retry-after`` (primary-limit 403s with ``x-ratelimit-remaining: 0`` are
understood by the client and unit-tested there). Branches exist on first write; no ``ref``/``branch``
means ``main``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import time
from collections.abc import Mapping
from typing import Any

from starlette.responses import JSONResponse, Response

from campaign_assets.sandbox.state import AuthOutcome, StoredObject
from campaign_assets.sandbox.vendors.base import ApiError, Call, Endpoint, ErrorStyle, Vendor, json_response

WRITE_LATENCY_S = 1.0
READ_LATENCY_S = 0.3
DEFAULT_BRANCH = "main"
_DOCS = "https://docs.github.com/rest/repos/contents"
SECONDARY_LIMIT_MESSAGE = "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."


def blob_sha(data: bytes) -> str:
    """The git blob sha of ``data``: ``sha1(b"blob <size>\\0" + data)``."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class GitHubErrors(ErrorStyle):
    """``{"message", "documentation_url", "status"}``; rate limits as a 403 secondary limit with retry-after."""

    default_messages: Mapping[int, str] = {
        401: "Bad credentials",
        404: "Not Found",
        429: SECONDARY_LIMIT_MESSAGE,
        500: "Server Error",
        503: "Service Unavailable",
        504: "We couldn't respond to your request in time. Sorry about that.",
    }

    def render(self, error: ApiError) -> Response:
        status = 403 if error.status == 429 else error.status
        body = {"message": self.message(error), "documentation_url": _DOCS, "status": str(status)}
        return JSONResponse(body, status_code=status, headers=self.headers(error))

    def body(self, error: ApiError) -> dict[str, Any]:
        return {"message": self.message(error), "documentation_url": _DOCS, "status": str(error.status)}

    def headers(self, error: ApiError) -> dict[str, str]:
        if error.status != 429:
            return {}
        wait = max(error.retry_after_s or 1.0, 0.001)
        return {
            "retry-after": f"{wait:.3f}",
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": "4321",  # a secondary limit: the hourly budget is not what ran out
            "x-ratelimit-reset": str(int(time.time()) + 3600),
            "x-ratelimit-resource": "core",
        }

    def auth_failure(self, outcome: AuthOutcome) -> ApiError:
        return ApiError(401, "Requires authentication" if outcome == "missing" else "Bad credentials")


def _key(call: Call, branch: str) -> str:
    return f"{call.params['owner']}/{call.params['repo']}@{branch}:{call.params['path']}"


def _file(call: Call, branch: str) -> StoredObject | None:
    return call.store.find("file", _key(call, branch))


def _urls(call: Call, branch: str) -> dict[str, str]:
    owner, repo, path = call.params["owner"], call.params["repo"], call.params["path"]
    api = str(call.request.url.replace(query=f"ref={branch}"))
    return {
        "url": api,
        "html_url": f"https://github.com/{owner}/{repo}/blob/{branch}/{path}",
        "download_url": f"https://raw.githubusercontent.com/{owner}/{repo}/{branch}/{path}",
    }


def _summary(call: Call, data: dict[str, Any]) -> dict[str, Any]:
    path = data["path"]
    urls = _urls(call, data["branch"])
    return {
        "name": path.rsplit("/", 1)[-1],
        "path": path,
        "sha": data["sha"],
        "size": data["size"],
        **urls,
        "git_url": f"https://api.github.com/repos/{call.params['owner']}/{call.params['repo']}/git/blobs/{data['sha']}",
        "type": "file",
        "_links": {"self": urls["url"], "git": "", "html": urls["html_url"]},
    }


def _wrapped(b64: str) -> str:
    return "".join(b64[i : i + 60] + "\n" for i in range(0, len(b64), 60))


def get_content(call: Call) -> Response:
    branch = call.query.get("ref") or DEFAULT_BRANCH
    found = _file(call, branch)
    if found is None:
        raise ApiError(404)
    return json_response(_summary(call, found.data) | {"encoding": "base64", "content": _wrapped(found.data["content"])})


def _commit(call: Call, message: str) -> dict[str, Any]:
    sha = call.ids.alphanumeric(40)
    return {"sha": sha, "message": message, "html_url": f"https://github.com/{call.params['owner']}/{call.params['repo']}/commit/{sha}"}


def _body(call: Call) -> tuple[dict[str, Any], str, str]:
    body = call.json()
    message = body.get("message")
    if not isinstance(message, str) or not message:
        raise ApiError(422, 'Invalid request.\n\n"message" wasn\'t supplied.')
    return body, message, str(body.get("branch") or DEFAULT_BRANCH)


def put_content(call: Call) -> Response:
    body, message, branch = _body(call)
    try:
        data = base64.b64decode(str(body.get("content", "")), validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(422, "content is not valid Base64") from None
    existing = _file(call, branch)
    given = body.get("sha")
    if existing is not None and not given:
        raise ApiError(422, 'Invalid request.\n\n"sha" wasn\'t supplied.')
    if existing is not None and given != existing.data["sha"]:
        raise ApiError(409, f"{call.params['path']} does not match {given}")
    if existing is None and given:
        raise ApiError(409, f"{call.params['path']} does not match {given}")  # the file it names is gone
    record = {
        "path": call.params["path"],
        "branch": branch,
        "repository": f"{call.params['owner']}/{call.params['repo']}",
        "sha": blob_sha(data),
        "size": len(data),
        "content": base64.b64encode(data).decode(),
        "message": message,
    }
    call.store.add("file", _key(call, branch), record)
    payload = {"content": _summary(call, record), "commit": _commit(call, message)}
    return json_response(payload, 200 if existing is not None else 201)


def delete_content(call: Call) -> Response:
    body, message, branch = _body(call)
    existing = _file(call, branch)
    if existing is None:
        raise ApiError(404)
    given = body.get("sha")
    if not given:
        raise ApiError(422, 'Invalid request.\n\n"sha" wasn\'t supplied.')
    if given != existing.data["sha"]:
        raise ApiError(409, f"{call.params['path']} does not match {given}")
    existing.deleted = True
    return json_response({"content": None, "commit": _commit(call, message)})


_PATH = "/repos/{owner}/{repo}/contents/{path:path}"

GITHUB = Vendor(
    name="github",
    mount="/github",
    errors=GitHubErrors(),
    endpoints=(
        Endpoint("GET", _PATH, get_content, READ_LATENCY_S),
        Endpoint("PUT", _PATH, put_content, WRITE_LATENCY_S),
        Endpoint("DELETE", _PATH, delete_content, WRITE_LATENCY_S),
    ),
)
