"""Google Drive v3: find files by name (to reconcile lost creates), read and delete them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from starlette.responses import Response

from campaign_assets.sandbox.state import StoredObject
from campaign_assets.sandbox.vendors.base import (
    ApiError,
    Call,
    Endpoint,
    Vendor,
    decode_offset,
    encode_offset,
    int_param,
    json_response,
)
from campaign_assets.sandbox.vendors.google import DRIVE_FILE_OWNERS, GoogleErrors

LATENCY_S = 1.0
_TERM = re.compile(
    r"\s*(?P<field>name|mimeType|trashed)\s*(?P<op>!=|=|contains)\s*(?P<value>'(?:[^'\\]|\\.)*'|true|false)\s*"
)
_AND = re.compile(r"and\b")
_ESCAPE = re.compile(r"\\(.)")


@dataclass(frozen=True)
class _Term:
    field: str
    op: str
    value: str | bool

    def matches(self, file: dict[str, Any]) -> bool:
        actual: str | bool = (
            False if self.field == "trashed" else file[self.field]
        )  # deleted: gone, not trashed
        if self.op == "contains":
            return isinstance(self.value, str) and isinstance(actual, str) and self.value in actual
        return (actual == self.value) == (self.op == "=")


def _invalid_query() -> ApiError:
    return ApiError(400, "Invalid Value")


def _term(match: re.Match[str]) -> _Term:
    raw = match["value"]
    is_text = raw.startswith("'")
    if (match["field"] == "trashed") == is_text or (match["op"] == "contains" and not is_text):
        raise _invalid_query()
    value: str | bool = _ESCAPE.sub(r"\1", raw[1:-1]) if is_text else raw == "true"
    return _Term(match["field"], match["op"], value)


def _parse_query(query: str) -> list[_Term]:
    """Parse the subset of Drive's query language the clients use: terms joined by ``and``.

    Terms: ``name = 'x'`` (also ``!=``, ``contains``), ``mimeType = '…'``, ``trashed = false``;
    quotes inside values are escaped as ``\\'``.
    """
    terms: list[_Term] = []
    position = 0
    while True:
        match = _TERM.match(query, position)
        if match is None:
            raise _invalid_query()
        terms.append(_term(match))
        position = match.end()
        if position == len(query):
            return terms
        conjunction = _AND.match(query, position)
        if conjunction is None:
            raise _invalid_query()
        position = conjunction.end()


def list_files(call: Call) -> Response:
    query = call.query.get("q", "").strip()
    terms = _parse_query(query) if query else []
    page_size = int_param(call.query, "pageSize", 100, 1, 1000, _invalid_query())
    start = decode_offset(call.query.get("pageToken"), _invalid_query())
    files = [f.data for f in call.store.live("file") if all(t.matches(f.data) for t in terms)]
    payload: dict[str, Any] = {
        "kind": "drive#fileList",
        "incompleteSearch": False,
        "files": files[start : start + page_size],
    }
    if start + page_size < len(files):
        payload["nextPageToken"] = encode_offset(start + page_size)
    return json_response(payload)


def _file(call: Call) -> StoredObject:
    file_id = call.params["fileId"]
    file = call.store.find("file", file_id)
    if file is None:
        raise ApiError(404, f"File not found: {file_id}.")
    return file


def get_file(call: Call) -> Response:
    return json_response(_file(call).data)


def delete_file(call: Call) -> Response:
    """Delete for good (no trash), with the document or spreadsheet the file stands for."""
    file = _file(call)
    file.deleted = True
    vendor, kind = DRIVE_FILE_OWNERS[file.data["mimeType"]]
    owned = call.state.stores[vendor].find(kind, file.id)
    if owned is not None:
        owned.deleted = True
    return Response(status_code=204)


GOOGLE_DRIVE = Vendor(
    name="google-drive",
    mount="/google-drive",
    errors=GoogleErrors("drive.googleapis.com"),
    endpoints=(
        Endpoint("GET", "/drive/v3/files", list_files, LATENCY_S),
        Endpoint("GET", "/drive/v3/files/{fileId}", get_file, LATENCY_S),
        Endpoint("DELETE", "/drive/v3/files/{fileId}", delete_file, LATENCY_S),
    ),
)
