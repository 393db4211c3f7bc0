"""The Google HTTP backends (Docs and Sheets, with Drive to find and delete) against the vendor sandbox.

Real httpx to a real ``SandboxServer`` on a free 127.0.0.1 port, at a tiny latency
scale, with forced faults from ``/_sandbox/faults``. Clients are driven the way assets
drive them: through the resource's ``session(out_dir)``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from campaign_assets.sandbox.server import SandboxServer
from campaign_assets.services.docs import DocsResource, HttpDocs, drive_quote, google_classify
from campaign_assets.services.http import PermanentVendorError
from campaign_assets_tests.http_doubles import GENEROUS_TIMEOUT_S, time_out_next
from campaign_assets.services.sheets import HttpSheets, SheetsResource, a1_range_for

TOKEN = "sandbox-google-token"
REVOKED = "ya29.revoked-access-token"
TITLE = "Q4 Launch — Campaign Brief [ca:acme/q4/brief] O'Brien's \\ notes"
CREATE_DOC = "POST /v1/documents"
CREATE_SHEET = "POST /v4/spreadsheets"
GET_DOC = "GET /v1/documents/{documentId}"
BATCH_UPDATE = "POST /v1/documents/{documentId}:batchUpdate"
PUT_VALUES = "PUT /v4/spreadsheets/{spreadsheetId}/values/{range}"
LIST_FILES = "GET /drive/v3/files"


def docs_resource(url: str, token: str = TOKEN) -> DocsResource:
    return DocsResource(
        api_key=token,
        base_url=f"{url}/google-docs",
        drive_base_url=f"{url}/google-drive",
        backoff_base_s=0.001,
        timeout_s=GENEROUS_TIMEOUT_S,
    )


def sheets_resource(url: str, token: str = TOKEN) -> SheetsResource:
    return SheetsResource(
        api_key=token,
        base_url=f"{url}/google-sheets",
        drive_base_url=f"{url}/google-drive",
        backoff_base_s=0.001,
        timeout_s=GENEROUS_TIMEOUT_S,
    )


def with_docs(sandbox: SandboxServer, tmp_path: Path, work: Callable[[HttpDocs], Awaitable[Any]]) -> Any:
    async def go() -> Any:
        async with docs_resource(sandbox.url).session(tmp_path) as docs:
            return await work(docs)

    return asyncio.run(go())


def with_sheets(sandbox: SandboxServer, tmp_path: Path, work: Callable[[HttpSheets], Awaitable[Any]]) -> Any:
    async def go() -> Any:
        async with sheets_resource(sandbox.url).session(tmp_path) as sheets:
            return await work(sheets)

    return asyncio.run(go())


def live(sandbox: SandboxServer, vendor: str, kind: str) -> list[dict[str, Any]]:
    objects = sandbox.state()["vendors"][vendor]["objects"]
    return [o for o in objects if o["kind"] == kind and not o["deleted"]]


def calls(sandbox: SandboxServer, endpoint: str | None = None) -> list[dict[str, Any]]:
    return [c for c in sandbox.state()["calls"] if endpoint in (None, c["endpoint"])]


async def _create_document(docs: HttpDocs) -> str:
    return (await docs.create_document(TITLE, name="brief")).document_id


async def _create_spreadsheet(sheets: HttpSheets) -> str:
    return (await sheets.create_spreadsheet(TITLE, name="media_plan")).spreadsheet_id


# Per service: its resource, sandbox vendor, create endpoint, object kind, and a create returning the id.
SERVICES: dict[str, tuple[Callable[..., Any], str, str, str, Callable[[Any], Awaitable[str]]]] = {
    "docs": (docs_resource, "google-docs", CREATE_DOC, "document", _create_document),
    "sheets": (sheets_resource, "google-sheets", CREATE_SHEET, "spreadsheet", _create_spreadsheet),
}


def create(sandbox: SandboxServer, service: str, tmp_path: Path, token: str = TOKEN) -> tuple[str, Any]:
    """Create one object through a fresh session: its id and the client's stats."""
    resource, _, _, _, action = SERVICES[service]

    async def go() -> tuple[str, Any]:
        async with resource(sandbox.url, token).session(tmp_path) as client:
            return await action(client), client.stats

    return asyncio.run(go())


# ---- Docs: success shapes --------------------------------------------------------------


def test_document_lifecycle(sandbox: SandboxServer, tmp_path: Path) -> None:
    async def work(docs: HttpDocs) -> Any:
        doc = await docs.create_document(TITLE, name="brief")
        await docs.write_text(doc, "# Brief\n\nHello, world.")
        found = await docs.find_document(TITLE, name="brief")
        missing = await docs.find_document(TITLE + " (other)", name="brief")
        await docs.delete_document(doc.document_id)
        after_delete = await docs.find_document(TITLE, name="brief")
        await docs.delete_document(doc.document_id)  # already gone: not an error
        return doc, found, missing, after_delete, docs.stats

    doc, found, missing, after_delete, stats = with_docs(sandbox, tmp_path, work)
    assert doc.title == TITLE
    assert doc.url == f"https://docs.google.com/document/d/{doc.document_id}/edit"
    assert found == doc and missing is None and after_delete is None
    documents = sandbox.state()["vendors"]["google-docs"]["objects"]
    assert [(d["id"], d["data"]["title"], d["data"]["text"], d["deleted"]) for d in documents] == [
        (doc.document_id, TITLE, "# Brief\n\nHello, world.\n", True)
    ]
    # create, get + batchUpdate, 3 lists, delete, and the second delete answered 404
    assert (stats.calls, stats.successes) == (8, 7)


def test_write_text_replaces_the_body(sandbox: SandboxServer, tmp_path: Path) -> None:
    async def work(docs: HttpDocs) -> None:
        doc = await docs.create_document(TITLE, name="brief")
        await docs.write_text(doc, "A first, longer text.\nTwo lines. 🚀")
        await docs.write_text(doc, "Short.")
        await docs.write_text(doc, "Short.")  # unchanged: read, nothing to write

    with_docs(sandbox, tmp_path, work)
    [document] = live(sandbox, "google-docs", "document")
    assert document["data"]["text"] == "Short.\n"
    assert len(calls(sandbox, BATCH_UPDATE)) == 2


def test_a_fresh_document_is_written_in_one_call(sandbox: SandboxServer, tmp_path: Path) -> None:
    async def work(docs: HttpDocs) -> None:
        doc = await docs.create_document(TITLE, name="brief")
        await docs.write_text(doc, "The brief.", fresh=True)

    with_docs(sandbox, tmp_path, work)
    [document] = live(sandbox, "google-docs", "document")
    assert document["data"]["text"] == "The brief.\n"
    assert len(calls(sandbox, BATCH_UPDATE)) == 1 and not calls(sandbox, GET_DOC)


def test_a_lost_fresh_write_is_checked_not_repeated(sandbox: SandboxServer, tmp_path: Path) -> None:
    sandbox.queue_fault("google-docs", "lost_response", BATCH_UPDATE)

    async def work(docs: HttpDocs) -> None:
        doc = await docs.create_document(TITLE, name="brief")
        await docs.write_text(doc, "The brief.", fresh=True)

    with_docs(sandbox, tmp_path, work)
    [document] = live(sandbox, "google-docs", "document")
    assert document["data"]["text"] == "The brief.\n"  # once, not twice
    assert len(calls(sandbox, BATCH_UPDATE)) == 1


# ---- Sheets: success shapes ------------------------------------------------------------


def test_spreadsheet_lifecycle(sandbox: SandboxServer, tmp_path: Path) -> None:
    first = [["channel", "budget"], ["display", 1250.5], ["search", 900]]
    second = [["channel", "budget"], ["video", 10], ["", ""]]  # a shorter plan, padded over the old rows

    async def work(sheets: HttpSheets) -> Any:
        sheet = await sheets.create_spreadsheet(TITLE, name="media_plan")
        await sheets.update_values(sheet, a1_range_for(first), first)
        await sheets.update_values(sheet, a1_range_for(second), second)
        found = await sheets.find_spreadsheet(TITLE, name="media_plan")
        await sheets.delete_spreadsheet(sheet.spreadsheet_id)
        await sheets.delete_spreadsheet(sheet.spreadsheet_id)
        return sheet, found

    sheet, found = with_sheets(sandbox, tmp_path, work)
    assert sheet.url == f"https://docs.google.com/spreadsheets/d/{sheet.spreadsheet_id}/edit"
    assert found == sheet
    [stored] = sandbox.state()["vendors"]["google-sheets"]["objects"]
    assert stored["deleted"] and [s["title"] for s in stored["data"]["sheets"]] == ["Plan"]
    assert stored["data"]["cells"]["Plan"] == {"A1": "channel", "B1": "budget", "A2": "video", "B2": 10}
    puts = calls(sandbox, PUT_VALUES)
    assert [c["path"].rsplit("/", 1)[1] for c in puts] == ["Plan!A1:B3", "Plan!A1:B3"]


# ---- exactly once: lost responses and timeouts on creates --------------------------------


@pytest.mark.parametrize("service", SERVICES)
def test_lost_create_response_adopts_the_committed_object(
    sandbox: SandboxServer, service: str, tmp_path: Path
) -> None:
    _, vendor, endpoint, kind, _ = SERVICES[service]
    sandbox.queue_fault(vendor, "lost_response", endpoint)
    created_id, stats = create(sandbox, service, tmp_path)
    [only] = live(sandbox, vendor, kind)
    assert only["id"] == created_id
    assert [c["fault"] for c in calls(sandbox, endpoint)] == ["lost_response"]
    assert len(calls(sandbox, LIST_FILES)) == 1
    assert stats.reconciled == 1


@pytest.mark.parametrize("service", SERVICES)
def test_timed_out_create_is_looked_up_then_created_once(
    sandbox: SandboxServer, service: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The timed-out create never committed: the lookup finds nothing and one more create runs."""
    _, vendor, endpoint, kind, _ = SERVICES[service]
    sandbox.queue_fault(vendor, "timeout", endpoint)
    time_out_next(monkeypatch, endpoint)  # the one the sandbox holds; other calls keep a generous timeout
    created_id, stats = create(sandbox, service, tmp_path)
    [only] = live(sandbox, vendor, kind)
    assert only["id"] == created_id
    assert [c["fault"] for c in calls(sandbox, endpoint)] == ["timeout", None]
    assert (stats.transport_errors, stats.reconciled) == (1, 0)


def test_lost_batch_update_response_is_reconciled(sandbox: SandboxServer, tmp_path: Path) -> None:
    async def work(docs: HttpDocs) -> Any:
        doc = await docs.create_document(TITLE, name="brief")
        await docs.write_text(doc, "Old text.")
        sandbox.queue_fault("google-docs", "lost_response", BATCH_UPDATE)
        await docs.write_text(doc, "New text.")
        return docs.stats

    stats = with_docs(sandbox, tmp_path, work)
    [document] = live(sandbox, "google-docs", "document")
    assert document["data"]["text"] == "New text.\n"
    assert len(calls(sandbox, BATCH_UPDATE)) == 2 and stats.reconciled == 1


# ---- rate limits, server errors, timeouts on idempotent calls ----------------------------


@pytest.mark.parametrize("service", SERVICES)
def test_rate_limited_create_recovers_without_retry_after(
    sandbox: SandboxServer, service: str, tmp_path: Path
) -> None:
    """Google's 429 RESOURCE_EXHAUSTED carries no Retry-After: backoff, and the create was not processed."""
    _, vendor, endpoint, kind, _ = SERVICES[service]
    sandbox.queue_fault(vendor, "429", endpoint)
    created_id, stats = create(sandbox, service, tmp_path)
    assert [o["id"] for o in live(sandbox, vendor, kind)] == [created_id]
    assert [c["status"] for c in calls(sandbox, endpoint)] == [429, 200]
    assert (stats.rate_limited, stats.retries, stats.reconciled) == (1, 1, 0)


@pytest.mark.parametrize("kind", ["500", "timeout"])
def test_failed_document_read_is_retried(
    sandbox: SandboxServer, kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if kind == "timeout":
        time_out_next(monkeypatch, GET_DOC)  # the read the sandbox holds; other calls keep a generous timeout

    async def work(docs: HttpDocs) -> Any:
        doc = await docs.create_document(TITLE, name="brief")
        sandbox.queue_fault("google-docs", kind, GET_DOC)
        await docs.write_text(doc, "Text.")
        return docs.stats

    stats = with_docs(sandbox, tmp_path, work)
    assert live(sandbox, "google-docs", "document")[0]["data"]["text"] == "Text.\n"
    assert [c["fault"] for c in calls(sandbox, GET_DOC)] == [kind, None]
    assert stats.retries == 1 and stats.failures == 0


@pytest.mark.parametrize("kind", ["500", "429", "timeout", "lost_response"])
def test_failed_values_update_is_retried(
    sandbox: SandboxServer, kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = [["a", "b"], [1, 2]]
    if kind == "timeout":
        time_out_next(monkeypatch, PUT_VALUES)  # the write the sandbox holds; other calls keep a generous timeout

    async def work(sheets: HttpSheets) -> Any:
        sheet = await sheets.create_spreadsheet(TITLE, name="media_plan")
        sandbox.queue_fault("google-sheets", kind, PUT_VALUES)
        await sheets.update_values(sheet, a1_range_for(values), values)
        return sheets.stats

    stats = with_sheets(sandbox, tmp_path, work)
    [sheet] = live(sandbox, "google-sheets", "spreadsheet")
    assert sheet["data"]["cells"]["Plan"] == {"A1": "a", "B1": "b", "A2": 1, "B2": 2}
    assert [c["fault"] for c in calls(sandbox, PUT_VALUES)] == [kind, None]
    assert stats.retries == 1 and stats.failures == 0


def test_rate_limited_drive_lookup_recovers(sandbox: SandboxServer, tmp_path: Path) -> None:
    async def work(docs: HttpDocs) -> Any:
        doc = await docs.create_document(TITLE, name="brief")
        sandbox.queue_fault("google-drive", "429", LIST_FILES)
        return doc, await docs.find_document(TITLE, name="brief")

    doc, found = with_docs(sandbox, tmp_path, work)
    assert found == doc
    assert [c["status"] for c in calls(sandbox, LIST_FILES)] == [429, 200]


# ---- permanent errors and secrets ------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
def test_revoked_token_fails_fast_with_googles_message(
    sandbox: SandboxServer, service: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(PermanentVendorError) as caught:
        create(sandbox, service, tmp_path, token=REVOKED)
    error = caught.value
    assert error.status_code == 401 and error.attempts == 1
    assert error.message.startswith("UNAUTHENTICATED: Request had invalid authentication credentials")
    assert REVOKED not in str(error) and REVOKED not in caplog.text
    assert len(calls(sandbox)) == 1


def test_drive_query_quotes_names() -> None:
    assert drive_quote("O'Brien \\ co") == "'O\\'Brien \\\\ co'"


def test_drive_rate_limit_403_is_rate_limited() -> None:
    """Drive also signals rate limits as 403 with a reason, not only as 429."""
    limited = {"error": {"code": 403, "errors": [{"reason": "userRateLimitExceeded"}], "message": "Rate limit"}}
    denied = {"error": {"code": 403, "errors": [{"reason": "insufficientFilePermissions"}], "message": "No"}}
    assert google_classify(httpx.Response(403, json=limited)) == "rate_limited"
    assert google_classify(httpx.Response(403, json=denied)) == "permanent"
    assert google_classify(httpx.Response(429, json={"error": {"status": "RESOURCE_EXHAUSTED"}})) == "rate_limited"
