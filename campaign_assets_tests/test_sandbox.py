"""The vendor sandbox, exercised over real HTTP with httpx (no mocks)."""

from __future__ import annotations

import asyncio
import base64
import io
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from PIL import Image

from campaign_assets.sandbox import SandboxConfig, SandboxServer, service_env

from campaign_assets_tests.support.processes import wait_for
from campaign_assets_tests.support.sandbox import read_exports

SCALE = 0.001
TOKEN = "sandbox-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(SandboxConfig(scale=SCALE, timeout_hold_s=0.3, seed=7)) as server:
        yield server


@pytest.fixture(autouse=True)
def clean(sandbox: SandboxServer) -> None:
    sandbox.reset()


@pytest.fixture(scope="module")
def anonymous(sandbox: SandboxServer) -> Iterator[httpx.Client]:
    """A client sending no token (also used for the /_sandbox control endpoints)."""
    with httpx.Client(base_url=sandbox.url, timeout=5.0) as http:
        yield http


@pytest.fixture(scope="module")
def client(sandbox: SandboxServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.url, headers=AUTH, timeout=5.0) as http:
        yield http


def objects(sandbox: SandboxServer, vendor: str, kind: str) -> list[dict[str, Any]]:
    return [o for o in sandbox.state()["vendors"][vendor]["objects"] if o["kind"] == kind]


def calls(sandbox: SandboxServer, vendor: str) -> list[dict[str, Any]]:
    return [c for c in sandbox.state()["calls"] if c["vendor"] == vendor]


def limit(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, **fields}


# --- happy paths, one vendor at a time ---------------------------------------------------


def test_openai_chat_completion_echoes_requested_sections(client: httpx.Client) -> None:
    prompt = "Write the campaign brief for Acme.\n## Objective\n## Audience\nKeep it short."
    response = client.post(
        "/openai/v1/chat/completions",
        json={
            "model": "gpt-4o-mini",
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": prompt}],
        },
    )
    assert response.status_code == 200
    body = response.json()
    assert body["id"].startswith("chatcmpl-") and body["object"] == "chat.completion"
    assert body["model"] == "gpt-4o-mini"
    choice = body["choices"][0]
    assert choice["finish_reason"] == "stop" and choice["message"]["role"] == "assistant"
    text = choice["message"]["content"]
    assert "campaign brief for Acme" in text and "## Objective" in text and "## Audience" in text
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0


def test_openai_image_generation_returns_a_real_png(client: httpx.Client) -> None:
    response = client.post(
        "/openai/v1/images/generations",
        json={
            "model": "gpt-image-1",
            "prompt": "a blue banner",
            "size": "1536x1024",
            "n": 1,
            "response_format": "b64_json",
        },
    )
    assert response.status_code == 200
    image = response.json()["data"][0]
    png = base64.b64decode(image["b64_json"])
    assert png.startswith(PNG_MAGIC)
    assert Image.open(io.BytesIO(png)).size == (64, 43)
    assert image["revised_prompt"] == "a blue banner"

    bad = client.post(
        "/openai/v1/images/generations", json={"model": "gpt-image-1", "prompt": "x", "size": "728x90"}
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["type"] == "invalid_request_error"


def test_openrouter_image_chat_returns_data_url_images(client: httpx.Client) -> None:
    response = client.post(
        "/openrouter/api/v1/chat/completions",
        json={
            "model": "google/gemini-2.5-flash-image",
            "modalities": ["image", "text"],
            "messages": [{"role": "user", "content": "a hero image"}],
        },
    )
    assert response.status_code == 200
    message = response.json()["choices"][0]["message"]
    url = message["images"][0]["image_url"]["url"]
    assert message["images"][0]["type"] == "image_url"
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.split(",", 1)[1]).startswith(PNG_MAGIC)


def test_google_docs_create_edit_and_read(sandbox: SandboxServer, client: httpx.Client) -> None:
    created = client.post("/google-docs/v1/documents", json={"title": "Q4 brief"}).json()
    document_id = created["documentId"]
    assert created["title"] == "Q4 brief" and created["revisionId"]

    edit = client.post(
        f"/google-docs/v1/documents/{document_id}:batchUpdate",
        json={
            "requests": [
                {"insertText": {"location": {"index": 1}, "text": "Hello world\n"}},
                {"insertText": {"endOfSegmentLocation": {}, "text": "Second line"}},
                {"deleteContentRange": {"range": {"startIndex": 1, "endIndex": 7}}},
            ]
        },
    )
    assert edit.status_code == 200
    assert edit.json()["replies"] == [{}, {}, {}]
    assert edit.json()["writeControl"]["requiredRevisionId"] != created["revisionId"]

    document = client.get(f"/google-docs/v1/documents/{document_id}").json()
    paragraphs = [c["paragraph"] for c in document["body"]["content"] if "paragraph" in c]
    text = "".join(e["textRun"]["content"] for p in paragraphs for e in p["elements"])
    assert text == "world\nSecond line\n"

    out_of_range = client.post(
        f"/google-docs/v1/documents/{document_id}:batchUpdate",
        json={"requests": [{"insertText": {"location": {"index": 500}, "text": "x"}}]},
    )
    assert out_of_range.status_code == 400
    assert out_of_range.json()["error"]["status"] == "INVALID_ARGUMENT"

    missing = client.get("/google-docs/v1/documents/nope")
    assert missing.status_code == 404 and missing.json()["error"]["status"] == "NOT_FOUND"
    drive_files = objects(sandbox, "google-drive", "file")
    assert [(f["id"], f["data"]["mimeType"]) for f in drive_files] == [
        (document_id, "application/vnd.google-apps.document")
    ]


def test_google_sheets_write_and_read_an_encoded_range(sandbox: SandboxServer, client: httpx.Client) -> None:
    created = client.post(
        "/google-sheets/v4/spreadsheets",
        json={"properties": {"title": "Media plan"}, "sheets": [{"properties": {"title": "Plan"}}]},
    ).json()
    spreadsheet_id = created["spreadsheetId"]
    assert created["sheets"][0]["properties"]["title"] == "Plan"
    assert created["spreadsheetUrl"] == f"https://docs.google.com/spreadsheets/d/{spreadsheet_id}/edit"

    values_url = f"/google-sheets/v4/spreadsheets/{spreadsheet_id}/values/{quote('Plan!A1:H40', safe='')}"
    rows = [["channel", "week 1", "week 2"], ["display", 1000, 1500.5]]
    for _ in range(2):  # writing a range twice leaves the same cells (idempotent)
        update = client.put(
            values_url,
            params={"valueInputOption": "RAW"},
            json={"range": "Plan!A1:H40", "majorDimension": "ROWS", "values": rows},
        )
        assert update.status_code == 200
        assert update.json() == {
            "spreadsheetId": spreadsheet_id,
            "updatedRange": "Plan!A1:C2",
            "updatedRows": 2,
            "updatedColumns": 3,
            "updatedCells": 6,
        }
    read = client.get(values_url).json()
    assert read["range"] == "Plan!A1:H40"
    assert read["values"] == [["channel", "week 1", "week 2"], ["display", "1000", "1500.5"]]

    anchored = client.put(  # a single cell anchors the block, as in Sheets
        f"/google-sheets/v4/spreadsheets/{spreadsheet_id}/values/{quote('Plan!B5', safe='')}",
        params={"valueInputOption": "USER_ENTERED"},
        json={"values": [["1", "x"], ["TRUE"]]},
    )
    assert anchored.json()["updatedRange"] == "Plan!B5:C6"
    unformatted = client.get(values_url, params={"valueRenderOption": "UNFORMATTED_VALUE"}).json()["values"]
    assert unformatted[3:] == [[], ["", 1, "x"], ["", True]]

    no_option = client.put(values_url, json={"values": rows})
    assert no_option.status_code == 400 and "valueInputOption" in no_option.json()["error"]["message"]
    too_big = client.put(
        f"/google-sheets/v4/spreadsheets/{spreadsheet_id}/values/{quote('Plan!A1:B1', safe='')}",
        params={"valueInputOption": "RAW"},
        json={"values": rows},
    )
    assert too_big.status_code == 400
    assert len(objects(sandbox, "google-sheets", "spreadsheet")) == 1


def test_drive_query_matches_exact_names_and_delete_removes(
    sandbox: SandboxServer, client: httpx.Client
) -> None:
    wanted = client.post("/google-docs/v1/documents", json={"title": "Brief 'Q4' [acme]"}).json()[
        "documentId"
    ]
    client.post("/google-docs/v1/documents", json={"title": "Brief"})
    client.post("/google-sheets/v4/spreadsheets", json={"properties": {"title": "Brief 'Q4' [acme]"}})

    def find(query: str) -> list[dict[str, Any]]:
        response = client.get(
            "/google-drive/drive/v3/files", params={"q": query, "fields": "files(id,name,mimeType)"}
        )
        assert response.status_code == 200
        assert response.json()["kind"] == "drive#fileList"
        files: list[dict[str, Any]] = response.json()["files"]
        return files

    by_name = "name = 'Brief \\'Q4\\' [acme]' and trashed = false"
    assert len(find(by_name)) == 2
    docs_only = find(f"{by_name} and mimeType = 'application/vnd.google-apps.document'")
    assert [(f["id"], f["name"]) for f in docs_only] == [(wanted, "Brief 'Q4' [acme]")]
    assert client.get("/google-drive/drive/v3/files", params={"q": "name ~ 'x'"}).status_code == 400

    deleted = client.delete(f"/google-drive/drive/v3/files/{wanted}")
    assert deleted.status_code == 204 and deleted.content == b""
    assert find(f"{by_name} and mimeType = 'application/vnd.google-apps.document'") == []
    assert client.get(f"/google-docs/v1/documents/{wanted}").status_code == 404
    (document,) = [d for d in objects(sandbox, "google-docs", "document") if d["id"] == wanted]
    assert document["deleted"] is True


def test_asana_projects_and_tasks_with_pagination(sandbox: SandboxServer, client: httpx.Client) -> None:
    project = client.post(
        "/asana/api/1.0/projects",
        json={"data": {"name": "Q4 launch", "notes": "n", "workspace": "1200000000000001"}},
    )
    assert project.status_code == 201
    project_gid = project.json()["data"]["gid"]
    assert project.json()["data"]["permalink_url"] == f"https://app.asana.com/0/{project_gid}/list"

    task_gids = []
    for number in range(3):
        task = client.post(
            "/asana/api/1.0/tasks",
            json={
                "data": {
                    "name": f"Task {number}",
                    "notes": "",
                    "projects": [project_gid],
                    "due_on": "2027-01-04",
                }
            },
        )
        assert task.status_code == 201
        data = task.json()["data"]
        assert data["resource_type"] == "task" and data["due_on"] == "2027-01-04"
        assert data["permalink_url"] == f"https://app.asana.com/0/{project_gid}/{data['gid']}"
        task_gids.append(data["gid"])

    first = client.get(
        f"/asana/api/1.0/projects/{project_gid}/tasks", params={"opt_fields": "name,due_on", "limit": 2}
    ).json()
    assert [t["name"] for t in first["data"]] == ["Task 0", "Task 1"]
    assert set(first["data"][0]) == {"gid", "name", "due_on"}
    next_page = first["next_page"]
    assert next_page["path"].startswith(f"/projects/{project_gid}/tasks?")
    second = client.get(next_page["uri"], headers=AUTH).json()
    assert [t["name"] for t in second["data"]] == ["Task 2"] and second["next_page"] is None

    listed = client.get(
        "/asana/api/1.0/projects", params={"workspace": "1200000000000001", "opt_fields": "name,notes"}
    ).json()
    assert listed["data"] == [{"gid": project_gid, "name": "Q4 launch", "notes": "n"}]

    updated = client.put(
        f"/asana/api/1.0/tasks/{task_gids[0]}", json={"data": {"name": "Renamed", "completed": True}}
    )
    assert updated.json()["data"]["name"] == "Renamed" and updated.json()["data"]["completed"] is True
    assert client.delete(f"/asana/api/1.0/tasks/{task_gids[1]}").json() == {"data": {}}
    missing = client.get(f"/asana/api/1.0/tasks/{task_gids[1]}")
    assert missing.status_code == 404
    assert missing.json()["errors"][0]["message"] == f"Unknown object: {task_gids[1]}"
    assert "developers.asana.com/docs/errors" in missing.json()["errors"][0]["help"]
    assert (
        client.post(
            "/asana/api/1.0/tasks", json={"data": {"name": "x", "workspace": "1", "due_on": "soon"}}
        ).status_code
        == 400
    )
    assert len([t for t in objects(sandbox, "asana", "task") if not t["deleted"]]) == 2


def _upload(client: httpx.Client, name: str, content: bytes) -> httpx.Response:
    metadata = json.dumps({"name_base64": base64.b64encode(name.encode()).decode()})
    return client.post(
        "/canva/rest/v1/asset-uploads",
        content=content,
        headers={"Content-Type": "application/octet-stream", "Asset-Upload-Metadata": metadata},
    )


def _png(width: int = 300, height: int = 250) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (11, 95, 255)).save(buffer, format="PNG")
    return buffer.getvalue()


def _poll_job(client: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    seen = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        job = client.get(f"/canva/rest/v1/asset-uploads/{job_id}").json()["job"]
        seen.append(job)
        if job["status"] != "in_progress":
            return seen
        time.sleep(0.005)
    raise AssertionError("the upload job never finished")


def test_canva_upload_job_turns_to_success_then_a_design_uses_it(
    sandbox: SandboxServer, client: httpx.Client
) -> None:
    sandbox.reset(scale=0.01)  # a 300 ms job, so polling sees it in progress first
    accepted = _upload(client, "creative-300x250.png", _png())
    assert accepted.status_code == 200
    job = accepted.json()["job"]
    assert job["status"] == "in_progress"
    assert len(objects(sandbox, "canva", "asset")) == 1  # stored as soon as the job is accepted

    seen = _poll_job(client, job["id"])
    assert seen[0]["status"] == "in_progress" and "asset" not in seen[0]
    final = seen[-1]
    assert final["status"] == "success"
    asset = final["asset"]
    assert (
        asset["name"] == "creative-300x250.png" and asset["tags"] == [] and asset["thumbnail"]["width"] == 256
    )
    assert client.get(f"/canva/rest/v1/assets/{asset['id']}").json()["asset"]["id"] == asset["id"]

    design = client.post(
        "/canva/rest/v1/designs",
        json={
            "design_type": {"type": "custom", "width": 300, "height": 250},
            "asset_id": asset["id"],
            "title": "acme 300x250",
        },
    )
    assert design.status_code == 200
    created = design.json()["design"]
    assert created["title"] == "acme 300x250"
    assert created["urls"]["edit_url"].endswith(f"/design/{created['id']}/edit")
    listed = client.get("/canva/rest/v1/designs", params={"query": "300x250"}).json()
    assert [d["id"] for d in listed["items"]] == [created["id"]] and "continuation" not in listed

    too_small = client.post(
        "/canva/rest/v1/designs", json={"design_type": {"type": "custom", "width": 30, "height": 250}}
    )
    assert too_small.status_code == 400 and too_small.json()["code"] == "invalid_field"
    assert client.delete(f"/canva/rest/v1/assets/{asset['id']}").status_code == 204
    assert client.get(f"/canva/rest/v1/assets/{asset['id']}").json()["code"] == "not_found"


def test_canva_upload_of_a_non_image_fails_its_job(sandbox: SandboxServer, client: httpx.Client) -> None:
    job = _upload(client, "notes.txt", b"not an image").json()["job"]
    final = _poll_job(client, job["id"])[-1]
    assert final["status"] == "failed" and final["error"]["code"] == "import_failed"
    assert objects(sandbox, "canva", "asset") == []
    bad_header = client.post(
        "/canva/rest/v1/asset-uploads", content=_png(), headers={"Asset-Upload-Metadata": "{}"}
    )
    assert bad_header.status_code == 400 and bad_header.json()["code"] == "invalid_header_value"


def test_slack_post_history_and_delete(client: httpx.Client) -> None:
    posted = client.post(
        "/slack/api/chat.postMessage",
        json={
            "channel": "C0CAMPAIGNS",
            "text": "Launched",
            "metadata": {"event_type": "campaign", "event_payload": {"id": "q4"}},
        },
    )
    assert posted.status_code == 200
    body = posted.json()
    assert body["ok"] is True and body["channel"] == "C0CAMPAIGNS" and body["message"]["text"] == "Launched"
    history = client.get(
        "/slack/api/conversations.history", params={"channel": "C0CAMPAIGNS", "limit": 10}
    ).json()
    assert history["ok"] is True and history["has_more"] is False
    assert [(m["ts"], m["metadata"]["event_payload"]["id"]) for m in history["messages"]] == [
        (body["ts"], "q4")
    ]

    assert (
        client.post("/slack/api/chat.delete", json={"channel": "C0CAMPAIGNS", "ts": body["ts"]}).json()["ok"]
        is True
    )
    assert (
        client.get("/slack/api/conversations.history", params={"channel": "C0CAMPAIGNS"}).json()["messages"]
        == []
    )
    not_found = client.post("/slack/api/chat.postMessage", json={"channel": "nowhere", "text": "x"})
    assert (not_found.status_code, not_found.json()) == (200, {"ok": False, "error": "channel_not_found"})
    unknown = client.post("/slack/api/chat.scheduleMessage", json={})
    assert (unknown.status_code, unknown.json()) == (404, {"ok": False, "error": "unknown_method"})


# --- auth -------------------------------------------------------------------------------

REVOKED_SHAPES = [
    ("POST", "/openai/v1/chat/completions", 401, lambda b: b["error"]["code"] == "invalid_api_key"),
    ("POST", "/openrouter/api/v1/chat/completions", 401, lambda b: b["error"]["code"] == 401),
    ("POST", "/google-docs/v1/documents", 401, lambda b: b["error"]["status"] == "UNAUTHENTICATED"),
    ("GET", "/google-drive/drive/v3/files", 401, lambda b: b["error"]["status"] == "UNAUTHENTICATED"),
    ("POST", "/asana/api/1.0/tasks", 401, lambda b: b["errors"][0]["message"] == "Not Authorized"),
    ("POST", "/canva/rest/v1/designs", 401, lambda b: b["code"] == "invalid_access_token"),
    ("POST", "/slack/api/chat.postMessage", 200, lambda b: b == {"ok": False, "error": "invalid_auth"}),
]


@pytest.mark.parametrize(("method", "path", "status", "shape"), REVOKED_SHAPES)
def test_revoked_token_gets_the_vendor_401_shape(
    sandbox: SandboxServer, anonymous: httpx.Client, method: str, path: str, status: int, shape: Any
) -> None:
    secret = "tok-revoked-0123456789"
    response = anonymous.request(method, path, json={}, headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == status
    assert shape(response.json())
    state = sandbox.state()
    assert [c["auth"] for c in state["calls"]] == ["revoked"]
    assert secret not in json.dumps(state)


def test_missing_token_is_refused(sandbox: SandboxServer, anonymous: httpx.Client) -> None:
    openai = anonymous.post("/openai/v1/chat/completions", json={})
    slack = anonymous.post("/slack/api/chat.postMessage", json={})
    assert openai.status_code == 401 and "didn't provide an API key" in openai.json()["error"]["message"]
    assert slack.json() == {"ok": False, "error": "not_authed"}
    assert [c["auth"] for c in sandbox.state()["calls"]] == ["missing", "missing"]


# --- limits -----------------------------------------------------------------------------


def _window(name: str, requests: int, endpoints: list[str] | None = None) -> dict[str, Any]:
    # 600 s at scale 0.001 is a 0.6 s window: long enough to hit, short enough to leave.
    return limit(name, max_requests=requests, window_s=600, endpoints=endpoints)


@pytest.mark.parametrize(
    ("vendor", "method", "path", "body", "shape"),
    [
        (
            "asana",
            "POST",
            "/asana/api/1.0/tasks",
            {"data": {"name": "t", "workspace": "1"}},
            lambda b: "be chill" in b["errors"][0]["message"],
        ),
        (
            "openai",
            "POST",
            "/openai/v1/chat/completions",
            {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
            lambda b: b["error"]["code"] == "rate_limit_exceeded",
        ),
        (
            "slack",
            "POST",
            "/slack/api/chat.postMessage",
            {"channel": "C0CAMPAIGNS", "text": "hi"},
            lambda b: b == {"ok": False, "error": "ratelimited"},
        ),
    ],
)
def test_rate_limit_answers_429_with_retry_after(
    sandbox: SandboxServer,
    client: httpx.Client,
    vendor: str,
    method: str,
    path: str,
    body: dict[str, Any],
    shape: Any,
) -> None:
    sandbox.reset(limits={vendor: [_window("requests", 2)]})
    statuses = [client.request(method, path, json=body).status_code for _ in range(2)]
    assert all(status in (200, 201) for status in statuses)
    limited = client.request(method, path, json=body)
    assert limited.status_code == 429
    assert shape(limited.json())
    assert 0 < float(limited.headers["retry-after"]) <= 0.6  # the scaled wait, in fractional seconds
    assert "x-sandbox-retry-after" not in limited.headers  # no sandbox-only header: clients read the standard one
    if vendor == "openai":
        assert limited.headers["x-ratelimit-reset-requests"].endswith("ms")
    log = calls(sandbox, vendor)
    assert [c["rate_limited"] for c in log] == [False, False, True]
    assert log[-1]["status"] == 429

    time.sleep(float(limited.headers["retry-after"]))
    assert client.request(method, path, json=body).status_code in (200, 201)


@pytest.mark.parametrize(
    ("vendor", "path", "body", "shape"),
    [
        (
            "google-docs",
            "/google-docs/v1/documents",
            {"title": "d"},
            lambda b: b["error"]["status"] == "RESOURCE_EXHAUSTED" and b["error"]["code"] == 429,
        ),
        (
            "canva",
            "/canva/rest/v1/designs",
            {"design_type": {"type": "custom", "width": 300, "height": 250}},
            lambda b: b["code"] == "too_many_requests",
        ),
    ],
)
def test_rate_limit_answers_429_without_retry_after(
    sandbox: SandboxServer, client: httpx.Client, vendor: str, path: str, body: dict[str, Any], shape: Any
) -> None:
    sandbox.reset(limits={vendor: [_window("writes", 1)]})
    assert client.post(path, json=body).status_code == 200
    limited = client.post(path, json=body)
    assert limited.status_code == 429 and shape(limited.json())
    assert "retry-after" not in limited.headers


def test_concurrency_cap_refuses_the_excess(sandbox: SandboxServer) -> None:
    sandbox.reset(  # each accepted write takes a second: the five requests all arrive while two are held
        scale=0.05, limits={"asana": [limit("concurrent writes", methods=["POST"], max_concurrency=2)]}
    )

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=sandbox.url, headers=AUTH, timeout=5) as http:
            return await asyncio.gather(
                *(
                    http.post("/asana/api/1.0/tasks", json={"data": {"name": f"t{i}", "workspace": "1"}})
                    for i in range(5)
                )
            )

    responses = asyncio.run(burst())
    assert sorted(r.status_code for r in responses) == [201, 201, 429, 429, 429]
    state = sandbox.state()
    assert len(objects(sandbox, "asana", "task")) == 2
    assert 3 <= state["vendors"]["asana"]["max_concurrency"] <= 5  # refusals count while they are in flight
    assert sum(c["rate_limited"] for c in state["calls"]) == 3
    assert all(float(r.headers["retry-after"]) > 0 for r in responses if r.status_code == 429)


def test_limits_can_be_turned_off(sandbox: SandboxServer, client: httpx.Client) -> None:
    sandbox.reset(limits_enabled=False, limits={"slack": [_window("post", 1)]})
    for _ in range(3):
        assert (
            client.post("/slack/api/chat.postMessage", json={"channel": "C0CAMPAIGNS", "text": "x"}).json()[
                "ok"
            ]
            is True
        )


# --- faults -----------------------------------------------------------------------------


def _project(client: httpx.Client) -> str:
    gid: str = client.post("/asana/api/1.0/projects", json={"data": {"name": "P", "workspace": "1"}}).json()[
        "data"
    ]["gid"]
    return gid


def test_lost_response_commits_the_write_exactly_once(sandbox: SandboxServer, client: httpx.Client) -> None:
    project_gid = _project(client)
    sandbox.queue_fault("asana", "lost_response", endpoint="POST /tasks")
    with pytest.raises(httpx.RemoteProtocolError):
        client.post("/asana/api/1.0/tasks", json={"data": {"name": "marker-123", "projects": [project_gid]}})

    tasks = objects(sandbox, "asana", "task")
    assert [t["data"]["name"] for t in tasks] == ["marker-123"]
    listed = client.get(f"/asana/api/1.0/projects/{project_gid}/tasks", params={"opt_fields": "name"}).json()[
        "data"
    ]
    assert [t["name"] for t in listed] == ["marker-123"]  # a client can reconcile before retrying
    (lost,) = [c for c in calls(sandbox, "asana") if c["fault"]]
    assert (lost["fault"], lost["status"], lost["endpoint"]) == ("lost_response", 201, "POST /tasks")

    assert (
        client.post(
            "/asana/api/1.0/tasks", json={"data": {"name": "next", "projects": [project_gid]}}
        ).status_code
        == 201
    )


def test_lost_response_on_a_bodiless_delete_still_breaks_the_connection(
    sandbox: SandboxServer, client: httpx.Client
) -> None:
    job = _upload(client, "a.png", _png()).json()["job"]
    asset_id = _poll_job(client, job["id"])[-1]["asset"]["id"]
    sandbox.queue_fault("canva", "lost_response", endpoint="DELETE /v1/assets/{assetId}")
    with pytest.raises(httpx.TransportError):
        client.delete(f"/canva/rest/v1/assets/{asset_id}")
    assert objects(sandbox, "canva", "asset")[0]["deleted"] is True


@pytest.mark.parametrize(("kind", "error"), [("reset", httpx.ReadError), ("timeout", httpx.ReadTimeout)])
def test_faults_before_the_write_store_nothing(
    sandbox: SandboxServer, client: httpx.Client, kind: str, error: type[Exception]
) -> None:
    sandbox.reset(timeout_hold_s=30)  # far past the client's timeout, however slow the machine
    sandbox.queue_fault("google-docs", kind, endpoint="POST /v1/documents")
    with pytest.raises(error):
        client.post("/google-docs/v1/documents", json={"title": "doc"}, timeout=0.1)
    assert objects(sandbox, "google-docs", "document") == []
    assert objects(sandbox, "google-drive", "file") == []


def test_server_error_and_injected_429_faults(sandbox: SandboxServer, client: httpx.Client) -> None:
    sandbox.queue_fault("asana", "500", endpoint="POST /tasks")
    sandbox.queue_fault("asana", "429", endpoint="POST /tasks")
    body = {"data": {"name": "t", "workspace": "1"}}
    failed = client.post("/asana/api/1.0/tasks", json=body)
    assert failed.status_code == 500 and failed.json()["errors"][0]["message"] == "Server Error"
    throttled = client.post("/asana/api/1.0/tasks", json=body)
    assert throttled.status_code == 429 and "retry-after" in throttled.headers
    assert objects(sandbox, "asana", "task") == []
    assert client.post("/asana/api/1.0/tasks", json=body).status_code == 201
    assert [c["fault"] for c in calls(sandbox, "asana")] == ["500", "429", None]


def test_timeout_fault_answers_504_after_the_hold(sandbox: SandboxServer, client: httpx.Client) -> None:
    sandbox.reset(timeout_hold_s=0.05)
    sandbox.queue_fault("google-sheets", "timeout")
    response = client.post("/google-sheets/v4/spreadsheets", json={"properties": {"title": "s"}})
    assert response.status_code == 504 and response.json()["error"]["status"] == "DEADLINE_EXCEEDED"


def test_random_faults_are_reproducible_with_a_seed(sandbox: SandboxServer, client: httpx.Client) -> None:
    def statuses() -> list[int]:
        sandbox.reset(
            seed=42, vendor_faults={"slack": {"rate": 0.5, "kinds": ["500", "429"]}}, limits_enabled=False
        )
        return [
            client.get("/slack/api/conversations.history", params={"channel": "C0CAMPAIGNS"}).status_code
            for _ in range(20)
        ]

    first = statuses()
    assert first == statuses()
    assert {200, 429} <= set(first) and set(first) <= {200, 429, 500, 503}


def test_lost_response_never_hits_reads(
    sandbox: SandboxServer, client: httpx.Client, anonymous: httpx.Client
) -> None:
    sandbox.reset(fault_rate=1.0, fault_kinds=["lost_response"])
    assert (
        client.get("/slack/api/conversations.history", params={"channel": "C0CAMPAIGNS"}).status_code == 200
    )
    refused = anonymous.post(
        "/_sandbox/faults",
        json={"vendor": "slack", "endpoint": "GET /conversations.history", "kind": "lost_response"},
    )
    assert refused.status_code == 400
    typo = anonymous.post(
        "/_sandbox/faults", json={"vendor": "asana", "endpoint": "POST /task", "kind": "500"}
    )
    assert typo.status_code == 400 and "POST /tasks" in typo.json()["error"]


# --- control endpoints ------------------------------------------------------------------


def test_reset_forgets_objects_calls_and_queued_faults(
    sandbox: SandboxServer, client: httpx.Client, anonymous: httpx.Client
) -> None:
    _project(client)
    sandbox.queue_fault("asana", "500", times=3)
    assert len(sandbox.state()["queued_faults"]) == 1
    sandbox.reset()
    state = sandbox.state()
    assert state["calls"] == [] and state["queued_faults"] == []
    assert all(v["objects"] == [] and v["calls_by_endpoint"] == {} for v in state["vendors"].values())
    assert anonymous.get("/_sandbox/health").json() == {"ok": True}


def test_config_change_keeps_objects(
    sandbox: SandboxServer, client: httpx.Client, anonymous: httpx.Client
) -> None:
    _project(client)
    changed = anonymous.post("/_sandbox/config", json={"scale": 0.002}).json()
    assert changed["config"]["scale"] == 0.002
    assert len(objects(sandbox, "asana", "project")) == 1
    assert anonymous.post("/_sandbox/config", json={"scale": -1}).status_code == 400


def test_call_log_is_plausible(sandbox: SandboxServer, client: httpx.Client) -> None:
    client.post("/google-docs/v1/documents", json={"title": "d"})
    client.get("/google-drive/drive/v3/files")
    client.get("/asana/api/1.0/projects/123")
    state = sandbox.state()
    log = state["calls"]
    assert [(c["vendor"], c["endpoint"], c["status"]) for c in log] == [
        ("google-docs", "POST /v1/documents", 200),
        ("google-drive", "GET /drive/v3/files", 200),
        ("asana", "GET /projects/{projectGid}", 404),
    ]
    assert all(c["start"] <= c["end"] for c in log)
    assert (
        log[0]["end"] - log[0]["start"] >= 15 * SCALE - 0.001
    )  # the scaled Docs latency (timer slack aside)
    assert state["vendors"]["google-docs"]["calls_by_endpoint"] == {"POST /v1/documents": 1}
    assert state["vendors"]["google-docs"]["max_concurrency"] == 1


def test_service_env_points_every_client_at_the_sandbox(sandbox: SandboxServer) -> None:
    env = service_env(sandbox.url)
    assert env["LLM_BASE_URL"] == f"{sandbox.url}/openai/v1"
    assert env["ASANA_BASE_URL"] == f"{sandbox.url}/asana/api/1.0"
    assert env["SLACK_CHANNEL"] == "C0CAMPAIGNS" and env["IMAGES_PROVIDER"] == "openai"
    assert all(value.startswith(sandbox.url) for name, value in env.items() if name.endswith("_BASE_URL"))


def test_command_line_prints_exports_and_stops_on_ctrl_c() -> None:
    """Ctrl-C shuts uvicorn down for real (it logs it), and a request held by a long
    ``timeout`` fault is cancelled after the grace second instead of holding the exit."""
    hold_s = 600
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "campaign_assets.sandbox",
            "--port",
            "0",
            "--scale",
            "0.001",
            "--faults",
            "0",
            "--seed",
            "1",
            "--timeout-hold",
            str(hold_s),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline().strip()
        assert first.startswith("export LLM_BASE_URL=http://127.0.0.1:")
        url = first.split("=", 1)[1].removesuffix("/openai/v1")
        env = read_exports(itertools.chain([first], process.stdout))
        assert env == service_env(url)
        assert httpx.get(f"{url}/_sandbox/health").json() == {"ok": True}
        httpx.post(f"{url}/_sandbox/faults", json={"vendor": "google-sheets", "kind": "timeout"}).raise_for_status()
        with httpx.Client(base_url=url, headers=AUTH, timeout=hold_s) as held:
            with ThreadPoolExecutor(1) as pool:
                request = pool.submit(held.post, "/google-sheets/v4/spreadsheets", json={"properties": {"title": "s"}})
                wait_for("the held request", lambda: _in_flight(url), timeout=60, interval=0.05)
                process.send_signal(signal.SIGINT)
                stderr = process.communicate(timeout=120)[1]  # generous: a busy machine is slow, not stuck
                assert process.returncode == 0, stderr
                with pytest.raises(httpx.HTTPError):
                    request.result(timeout=60).raise_for_status()  # cut short, long before the hold ends
        assert "Shutting down" in stderr and "Finished server process" in stderr, stderr  # a real shutdown
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(60)


def _in_flight(url: str) -> bool:
    calls = httpx.get(f"{url}/_sandbox/state").json()["calls"]
    return any(c["vendor"] == "google-sheets" and c["end"] is None for c in calls)
