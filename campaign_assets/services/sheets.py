"""Google Sheets: spreadsheets.create and values.update on a fixed range (never append)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

from pydantic import Field

from campaign_assets.logic.csv_safe import csv_text
from campaign_assets.services.base import HttpClient, ServiceResource
from campaign_assets.services.docs import DRIVE_BASE_URL, Drive, google_profile
from campaign_assets.services.http import HttpSession, VendorProfile
from campaign_assets.services.local import LocalClient, unlink, write_text

SPREADSHEET_MIME = "application/vnd.google-apps.spreadsheet"
SPREADSHEET_URL = "https://docs.google.com/spreadsheets/d/{}/edit"


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
        text = csv_text(values)  # strings that look like formulas get a leading '
        async with self.call("values.update"):
            write_text(self._path(sheet.spreadsheet_id.removeprefix("local-sheet:")), text)

    async def find_spreadsheet(self, title: str, *, name: str) -> SheetRef | None:
        async with self.call("files.list"):
            return self._ref(name, title) if self._path(name).exists() else None

    async def delete_spreadsheet(self, spreadsheet_id: str) -> bool:
        async with self.call("files.delete"):
            return unlink(self._path(spreadsheet_id.removeprefix("local-sheet:")))


class HttpSheets(HttpClient):
    """Google Sheets v4, with Drive v3 to find spreadsheets by title and delete them."""

    def __init__(self, http: HttpSession, *, drive_base_url: str | None = None):
        super().__init__(http)
        self.drive = Drive.at(http, drive_base_url)

    async def create_spreadsheet(self, title: str, *, name: str) -> SheetRef:
        """spreadsheets.create with one ``Plan`` sheet, exactly once: a lost response is found by its title."""

        async def create() -> SheetRef:
            body = {"properties": {"title": title}, "sheets": [{"properties": {"title": PLAN_SHEET}}]}
            created = await self.http.json("POST", "/v4/spreadsheets", json=body)
            spreadsheet_id = created["spreadsheetId"]
            url = created.get("spreadsheetUrl") or SPREADSHEET_URL.format(spreadsheet_id)
            return SheetRef(spreadsheet_id, title, url)

        return await self.http.create_once(create, lambda: self.find_spreadsheet(title, name=name))

    async def update_values(self, sheet: SheetRef, range_a1: str, values: Sequence[Sequence[Any]]) -> None:
        """values.update: overwrite the fixed range (a PUT, so retried safely; never an append).

        ``valueInputOption=RAW`` on purpose: Google stores every string as the
        text sent, so a cell like ``=1+2`` can never become a formula (with
        USER_ENTERED it would), and the plan's numbers, sent as JSON numbers,
        still land as numbers. No ``'`` prefix here: RAW would show it.
        """
        await self.http.json(
            "PUT",
            f"/v4/spreadsheets/{sheet.spreadsheet_id}/values/{quote(range_a1, safe='')}",
            params={"valueInputOption": "RAW"},
            json={"range": range_a1, "majorDimension": "ROWS", "values": [list(row) for row in values]},
        )

    async def find_spreadsheet(self, title: str, *, name: str) -> SheetRef | None:
        file_id = await self.drive.find(title, SPREADSHEET_MIME)
        return None if file_id is None else SheetRef(file_id, title, SPREADSHEET_URL.format(file_id))

    async def delete_spreadsheet(self, spreadsheet_id: str) -> bool:
        return await self.drive.delete(spreadsheet_id)


class SheetsResource(ServiceResource):
    """The media plan as a Google Sheet."""

    SERVICE: ClassVar[str] = "sheets"
    DEFAULT_BASE_URL: ClassVar[str] = "https://sheets.googleapis.com"

    drive_base_url: str | None = Field(
        default=None, description=f"Drive API base URL (to find and delete files); {DRIVE_BASE_URL} when unset."
    )

    def local_client(self, out_dir: Path) -> LocalSheets:
        return LocalSheets(out_dir)

    def http_client(self, http: HttpSession) -> HttpSheets:
        return HttpSheets(http, drive_base_url=self.drive_base_url)

    def vendor_profile(self) -> VendorProfile:
        return google_profile(self.SERVICE)
