"""Google Sheets: spreadsheets.create and values.update on a fixed range (never append)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from campaign_assets.logic.render import write_text
from campaign_assets.services.base import LocalClient, ServiceResource


@dataclass(frozen=True)
class SheetRef:
    spreadsheet_id: str
    title: str
    url: str


PLAN_SHEET = "Plan"


def a1_range_for(values: Sequence[Sequence[Any]], sheet: str = PLAN_SHEET) -> str:
    """The fixed range ``Plan!A1:G40`` a block of values fills (up to 26 columns)."""
    cols = max((len(row) for row in values), default=1)
    if not 1 <= cols <= 26:
        raise ValueError("a1_range_for supports 1..26 columns")
    return f"{sheet}!A1:{chr(ord('A') + cols - 1)}{max(len(values), 1)}"


class LocalSheets(LocalClient):
    """Spreadsheets as CSV files named after the sheet."""

    def __init__(self, out_dir: Path):
        super().__init__("sheets", out_dir)

    def _path(self, name: str) -> Path:
        return self.out_dir / f"{name}.csv"

    def _ref(self, name: str, title: str) -> SheetRef:
        return SheetRef(spreadsheet_id=f"local-sheet:{name}", title=title, url=self._path(name).resolve().as_uri())

    async def create_spreadsheet(self, title: str, *, name: str) -> SheetRef:
        async with self.call("spreadsheets.create"):
            write_text(self._path(name), "")
            return self._ref(name, title)

    async def update_values(self, sheet: SheetRef, range_a1: str, values: Sequence[Sequence[Any]]) -> None:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(values)
        async with self.call("values.update"):
            write_text(self._path(sheet.spreadsheet_id.removeprefix("local-sheet:")), buf.getvalue())

    async def find_spreadsheet(self, title: str, *, name: str) -> SheetRef | None:
        async with self.call("files.list"):
            return self._ref(name, title) if self._path(name).exists() else None

    async def delete_spreadsheet(self, spreadsheet_id: str) -> None:
        async with self.call("files.delete"):
            self._path(spreadsheet_id.removeprefix("local-sheet:")).unlink(missing_ok=True)


class SheetsResource(ServiceResource):
    """The media plan as a Google Sheet."""

    SERVICE: ClassVar[str] = "sheets"
    DEFAULT_BASE_URL: ClassVar[str] = "https://sheets.googleapis.com"
    DEFAULT_CAP: ClassVar[int] = 3

    drive_base_url: str | None = None

    def local_client(self, out_dir: Path) -> LocalSheets:
        return LocalSheets(out_dir)
