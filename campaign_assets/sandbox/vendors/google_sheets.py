"""Google Sheets v4: create spreadsheets, write and read cell values by A1 range."""

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
    json_response,
)
from campaign_assets.sandbox.vendors.google import (
    SPREADSHEET_MIME,
    GoogleErrors,
    add_drive_file,
)

LATENCY_S = 15.0
_CELL = re.compile(r"([A-Z]+)([1-9][0-9]*)")
_CELLS = re.compile(r"[A-Z]+[1-9][0-9]*(?::[A-Z]+[1-9][0-9]*)?")
_PLAIN_SHEET_NAME = re.compile(r"[A-Za-z0-9_]+")
_INTEGER = re.compile(r"-?[0-9]+")
_DECIMAL = re.compile(r"-?[0-9]*\.[0-9]+")

Cell = tuple[int, int]  # (row, column), both from 0


@dataclass(frozen=True)
class _Range:
    """An A1 range on one sheet; `end` is inclusive, `None` for a whole sheet."""

    sheet: str
    start: Cell
    end: Cell | None


def _column_letters(column: int) -> str:
    letters = ""
    column += 1
    while column:
        column, remainder = divmod(column - 1, 26)
        letters = chr(ord("A") + remainder) + letters
    return letters


def _a1(cell: Cell) -> str:
    return f"{_column_letters(cell[1])}{cell[0] + 1}"


def _parse_cell(text: str) -> Cell:
    match = _CELL.fullmatch(text)
    assert match is not None, text  # callers match _CELLS first
    column = 0
    for letter in match.group(1):
        column = column * 26 + ord(letter) - ord("A") + 1
    return int(match.group(2)) - 1, column - 1


def _quote_sheet(title: str) -> str:
    return title if _PLAIN_SHEET_NAME.fullmatch(title) else "'" + title.replace("'", "''") + "'"


def _format_range(sheet: str, start: Cell, end: Cell) -> str:
    return f"{_quote_sheet(sheet)}!{_a1(start)}:{_a1(end)}"


def _parse_range(text: str, sheet_titles: list[str]) -> _Range:
    """Parse ``Sheet!A1:B2``, ``'My sheet'!A1``, ``A1:B2`` (first sheet) or ``Sheet`` (whole sheet)."""
    sheet, bang, cells = text.rpartition("!")
    if not bang:
        sheet, cells = ("", text) if _CELLS.fullmatch(text) else (text, "")
    if sheet.startswith("'") and sheet.endswith("'") and len(sheet) > 1:
        sheet = sheet[1:-1].replace("''", "'")
    sheet = sheet or sheet_titles[0]
    if sheet not in sheet_titles or (cells and not _CELLS.fullmatch(cells)):
        raise ApiError(400, f"Unable to parse range: {text}")
    if not cells:
        return _Range(sheet, (0, 0), None)
    first, _, last = cells.partition(":")
    start, end = _parse_cell(first), _parse_cell(last or first)
    return _Range(
        sheet, (min(start[0], end[0]), min(start[1], end[1])), (max(start[0], end[0]), max(start[1], end[1]))
    )


def _spreadsheet(call: Call) -> StoredObject:
    spreadsheet = call.store.find("spreadsheet", call.params["spreadsheetId"])
    if spreadsheet is None:
        raise ApiError(404)
    return spreadsheet


def _render(spreadsheet: StoredObject) -> dict[str, Any]:
    data = spreadsheet.data
    return {
        "spreadsheetId": data["spreadsheetId"],
        "properties": {"title": data["title"], "locale": "en_US", "timeZone": "Etc/GMT"},
        "sheets": [
            {
                "properties": {
                    "sheetId": sheet["sheetId"],
                    "title": sheet["title"],
                    "index": index,
                    "sheetType": "GRID",
                    "gridProperties": {"rowCount": 1000, "columnCount": 26},
                }
            }
            for index, sheet in enumerate(data["sheets"])
        ],
        "spreadsheetUrl": f"https://docs.google.com/spreadsheets/d/{data['spreadsheetId']}/edit",
    }


def _requested_sheets(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The new spreadsheet's sheets: those requested, or a single ``Sheet1``."""
    sheets = []
    for index, requested in enumerate(body.get("sheets") or [{}]):
        properties = (requested.get("properties") if isinstance(requested, dict) else None) or {}
        title = properties.get("title") or f"Sheet{index + 1}"
        sheets.append({"sheetId": properties.get("sheetId", index), "title": title})
    titles = [sheet["title"] for sheet in sheets]
    if len(set(titles)) != len(titles):
        raise ApiError(400, "Invalid requests: sheet titles must be unique.")
    return sheets


def create_spreadsheet(call: Call) -> Response:
    body = call.json()
    title = (body.get("properties") or {}).get("title") or "Untitled spreadsheet"
    sheets = _requested_sheets(body)
    spreadsheet_id = "1" + call.ids.token(43)
    spreadsheet = call.store.add(
        "spreadsheet",
        spreadsheet_id,
        {
            "spreadsheetId": spreadsheet_id,
            "title": title,
            "sheets": sheets,
            "cells": {sheet["title"]: {} for sheet in sheets},
        },
    )
    add_drive_file(call.state, spreadsheet_id, title, SPREADSHEET_MIME)
    return json_response(_render(spreadsheet))


def get_spreadsheet(call: Call) -> Response:
    return json_response(_render(_spreadsheet(call)))


def _entered(value: Any, option: str) -> Any:
    """What a cell stores: RAW keeps values as sent, USER_ENTERED parses numbers and booleans."""
    if option == "RAW" or not isinstance(value, str):
        return value
    if value.upper() in ("TRUE", "FALSE"):
        return value.upper() == "TRUE"
    if _INTEGER.fullmatch(value):
        return int(value)
    if _DECIMAL.fullmatch(value):
        return float(value)
    return value


def _formatted(value: Any) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _value_rows(body: dict[str, Any]) -> list[list[Any]]:
    if body.get("majorDimension", "ROWS") != "ROWS":
        raise ApiError(400, "The sandbox supports majorDimension ROWS only.")
    values = body.get("values", [])
    if not isinstance(values, list) or not all(isinstance(row, list) for row in values):
        raise ApiError(400, "Invalid value at 'data.values': expected a list of rows.")
    return values


def _check_fits(target: _Range, rows: int, columns: int, text: str) -> None:
    """A 400 when the values overflow the range; a whole sheet or a single cell only anchors them."""
    if target.end is None or target.end == target.start:
        return
    last_row, last_column = target.start[0] + rows - 1, target.start[1] + columns - 1
    if last_row > target.end[0]:
        raise ApiError(
            400, f"Requested writing within range [{text}], but tried writing to row [{last_row + 1}]"
        )
    if last_column > target.end[1]:
        column = _column_letters(last_column)
        raise ApiError(
            400, f"Requested writing within range [{text}], but tried writing to column [{column}]"
        )


def update_values(call: Call) -> Response:
    spreadsheet = _spreadsheet(call)
    option = call.query.get("valueInputOption")
    if option is None:
        raise ApiError(400, "'valueInputOption' is required but not specified")
    if option not in ("RAW", "USER_ENTERED"):
        raise ApiError(400, f"Invalid value at 'value_input_option' ({option})")
    titles = [sheet["title"] for sheet in spreadsheet.data["sheets"]]
    text = call.params["range"]
    target = _parse_range(text, titles)
    body = call.json()
    if "range" in body and _parse_range(str(body["range"]), titles) != target:
        raise ApiError(
            400, f"Requested range [{text}] does not match the range in the body [{body['range']}]."
        )
    values = _value_rows(body)
    rows, columns = len(values), max((len(row) for row in values), default=0)
    _check_fits(target, rows, columns, text)
    grid = spreadsheet.data["cells"][target.sheet]
    for row_offset, row in enumerate(values):
        for column_offset, value in enumerate(row):
            key = _a1((target.start[0] + row_offset, target.start[1] + column_offset))
            stored = None if value is None else _entered(value, option)
            if stored == "":
                grid.pop(key, None)
            elif stored is not None:
                grid[key] = stored
    end = (target.start[0] + max(rows, 1) - 1, target.start[1] + max(columns, 1) - 1)
    return json_response(
        {
            "spreadsheetId": spreadsheet.id,
            "updatedRange": _format_range(target.sheet, target.start, end),
            "updatedRows": sum(1 for row in values if row),
            "updatedColumns": columns,
            "updatedCells": sum(len(row) for row in values),
        }
    )


def _extent(grid: dict[str, Any], start: Cell) -> Cell:
    cells = [_parse_cell(key) for key in grid] or [start]
    return max(row for row, _ in cells), max(column for _, column in cells)


def _without_trailing_blanks(row: list[Any]) -> list[Any]:
    end = len(row)
    while end and row[end - 1] is None:
        end -= 1
    return row[:end]


def _trimmed(rows: list[list[Any]]) -> list[list[Any]]:
    """Drop trailing empty cells and rows, as Sheets does."""
    trimmed = [_without_trailing_blanks(row) for row in rows]
    while trimmed and not trimmed[-1]:
        trimmed.pop()
    return trimmed


def get_values(call: Call) -> Response:
    spreadsheet = _spreadsheet(call)
    titles = [sheet["title"] for sheet in spreadsheet.data["sheets"]]
    target = _parse_range(call.params["range"], titles)
    grid = spreadsheet.data["cells"][target.sheet]
    end = target.end or _extent(grid, target.start)
    rows = _trimmed(
        [
            [grid.get(_a1((row, column))) for column in range(target.start[1], end[1] + 1)]
            for row in range(target.start[0], end[0] + 1)
        ]
    )
    render = call.query.get("valueRenderOption", "FORMATTED_VALUE")
    payload: dict[str, Any] = {
        "range": _format_range(target.sheet, target.start, end),
        "majorDimension": "ROWS",
    }
    if rows:
        payload["values"] = [
            ["" if v is None else (_formatted(v) if render == "FORMATTED_VALUE" else v) for v in row]
            for row in rows
        ]
    return json_response(payload)


GOOGLE_SHEETS = Vendor(
    name="google-sheets",
    mount="/google-sheets",
    errors=GoogleErrors("sheets.googleapis.com"),
    endpoints=(
        Endpoint("POST", "/v4/spreadsheets", create_spreadsheet, LATENCY_S),
        Endpoint("GET", "/v4/spreadsheets/{spreadsheetId}", get_spreadsheet, LATENCY_S),
        Endpoint("PUT", "/v4/spreadsheets/{spreadsheetId}/values/{range:path}", update_values, LATENCY_S),
        Endpoint("GET", "/v4/spreadsheets/{spreadsheetId}/values/{range:path}", get_values, LATENCY_S),
    ),
)
