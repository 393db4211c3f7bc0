"""DSP activation: one line item per channel bought programmatically."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from campaign_assets.services.base import ServiceResource
from campaign_assets.services.local import LocalClient


@dataclass(frozen=True)
class LineItem:
    line_item_id: str
    dsp: str
    name: str
    url: str


class LocalDSP(LocalClient):
    """Line items as JSON records per DSP, ready to traffic by hand."""

    def __init__(self, out_dir: Path):
        super().__init__("dsp", out_dir)

    async def create_line_item(self, dsp: str, name: str, flights: list[dict[str, Any]], *, marker: str) -> LineItem:
        line_item_id = f"{dsp}-{hashlib.sha256(marker.encode()).hexdigest()[:10]}"
        record = dict(id=line_item_id, dsp=dsp, name=name, flights=flights, marker=marker, status="PAUSED")
        async with self.call(f"POST {dsp} line item"):
            self.put("line-items", line_item_id, record)
        return LineItem(line_item_id, dsp, name, self._object_path("line-items", line_item_id).resolve().as_uri())

    async def find_line_item(self, *, marker: str) -> LineItem | None:
        found = self.find("line-items", marker)
        if not found:
            return None
        return LineItem(found["id"], found["dsp"], found["name"], self._object_path("line-items", found["id"]).resolve().as_uri())

    async def delete_line_item(self, line_item_id: str) -> bool:
        async with self.call("DELETE line item"):
            return self.remove("line-items", line_item_id)


class DSPResource(ServiceResource):
    """Amazon DSP, The Trade Desk and DV360 line items (local backend: records to traffic)."""

    SERVICE: ClassVar[str] = "dsp"

    def local_client(self, out_dir: Path) -> LocalDSP:
        return LocalDSP(out_dir)
