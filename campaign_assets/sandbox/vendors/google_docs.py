"""Google Docs v1: create, read and batchUpdate (insertText, deleteContentRange) documents.

A document's text always ends with the segment's final newline; indexes count UTF-16
code units from 1, as the real API does.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from campaign_assets.sandbox.state import StoredObject
from campaign_assets.sandbox.vendors.base import (
    ApiError,
    Call,
    Endpoint,
    Vendor,
    json_response,
)
from campaign_assets.sandbox.vendors.google import (
    DOCUMENT_MIME,
    GoogleErrors,
    add_drive_file,
)

LATENCY_S = 15.0


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _position(text: str, utf16_offset: int) -> int:
    """The Python string position `utf16_offset` UTF-16 code units into `text`."""
    units = 0
    for position, char in enumerate(text):
        if units >= utf16_offset:
            return position
        units += 2 if ord(char) > 0xFFFF else 1
    return len(text)


def _paragraphs(text: str) -> list[dict[str, Any]]:
    content: list[dict[str, Any]] = [
        {"endIndex": 1, "sectionBreak": {"sectionStyle": {"columnSeparatorStyle": "NONE"}}}
    ]
    start = 1
    for line in text.splitlines(keepends=True):
        end = start + _utf16_len(line)
        element = {"startIndex": start, "endIndex": end, "textRun": {"content": line, "textStyle": {}}}
        content.append(
            {
                "startIndex": start,
                "endIndex": end,
                "paragraph": {"elements": [element], "paragraphStyle": {"namedStyleType": "NORMAL_TEXT"}},
            }
        )
        start = end
    return content


def _render(document: StoredObject) -> dict[str, Any]:
    data = document.data
    return {
        "documentId": data["documentId"],
        "title": data["title"],
        "body": {"content": _paragraphs(data["text"])},
        "revisionId": data["revisionId"],
    }


def _document(call: Call) -> StoredObject:
    document = call.store.find("document", call.params["documentId"])
    if document is None:
        raise ApiError(404)
    return document


def create_document(call: Call) -> Response:
    title = call.json().get("title") or "Untitled document"
    document_id = "1" + call.ids.token(43)
    document = call.store.add(
        "document",
        document_id,
        {"documentId": document_id, "title": title, "text": "\n", "revisionId": call.ids.token(22)},
    )
    add_drive_file(call.state, document_id, title, DOCUMENT_MIME)
    return json_response(_render(document))


def get_document(call: Call) -> Response:
    return json_response(_render(_document(call)))


def _insert_text(text: str, spec: dict[str, Any], where: str) -> str:
    value = spec.get("text")
    if not isinstance(value, str):
        raise ApiError(400, f"Invalid {where}: text must be a string.")
    if "endOfSegmentLocation" in spec:
        position = len(text) - 1
    else:
        index = (spec.get("location") or {}).get("index")
        if not isinstance(index, int) or index < 1:
            raise ApiError(
                400,
                f"Invalid {where}: The insertion index must be inside the bounds of an existing paragraph.",
            )
        if index > _utf16_len(text):
            raise ApiError(
                400,
                f"Invalid {where}: Index {index} must be less than the end index of the "
                f"referenced segment, {_utf16_len(text) + 1}.",
            )
        position = _position(text, index - 1)
    return text[:position] + value + text[position:]


def _delete_range(text: str, spec: dict[str, Any], where: str) -> str:
    bounds = spec.get("range") or {}
    start, end = bounds.get("startIndex"), bounds.get("endIndex")
    if not isinstance(start, int) or not isinstance(end, int) or not 1 <= start < end:
        raise ApiError(400, f"Invalid {where}: The range should not be empty.")
    if end > _utf16_len(text):
        raise ApiError(
            400, f"Invalid {where}: The range cannot include the newline character at the end of the segment."
        )
    return text[: _position(text, start - 1)] + text[_position(text, end - 1) :]


_EDITS = {"insertText": _insert_text, "deleteContentRange": _delete_range}


def _apply(text: str, request: Any, number: int) -> str:
    kinds = list(request) if isinstance(request, dict) else []
    if len(kinds) != 1 or kinds[0] not in _EDITS:
        raise ApiError(400, f"Invalid requests[{number}]: the sandbox supports one of {sorted(_EDITS)}.")
    kind = kinds[0]
    return _EDITS[kind](text, request[kind] or {}, f"requests[{number}].{kind}")


def batch_update(call: Call) -> Response:
    document = _document(call)
    requests = call.json().get("requests")
    if not isinstance(requests, list) or not requests:
        raise ApiError(400, "Must specify at least one request.")
    text = document.data["text"]
    for number, request in enumerate(requests):
        text = _apply(text, request, number)  # all or nothing: nothing is stored until every edit applies
    document.data.update(text=text, revisionId=call.ids.token(22))
    return json_response(
        {
            "documentId": document.id,
            "replies": [{} for _ in requests],
            "writeControl": {"requiredRevisionId": document.data["revisionId"]},
        }
    )


GOOGLE_DOCS = Vendor(
    name="google-docs",
    mount="/google-docs",
    errors=GoogleErrors("docs.googleapis.com"),
    endpoints=(
        Endpoint("POST", "/v1/documents", create_document, LATENCY_S),
        Endpoint("GET", "/v1/documents/{documentId}", get_document, LATENCY_S),
        Endpoint("POST", "/v1/documents/{documentId}:batchUpdate", batch_update, LATENCY_S),
    ),
)
