"""Canva Connect: asset uploads (with job polling) and designs of a custom size."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from campaign_assets.logic.render import write_bytes
from campaign_assets.services.base import LocalClient, ServiceResource


@dataclass(frozen=True)
class CanvaAsset:
    asset_id: str
    name: str


@dataclass(frozen=True)
class Design:
    design_id: str
    title: str
    edit_url: str
    view_url: str


def _id(prefix: str, marker: str) -> str:
    return prefix + hashlib.sha256(marker.encode()).hexdigest()[:11].upper()


class LocalCanva(LocalClient):
    """Uploaded images as PNG files and designs as JSON records."""

    def __init__(self, out_dir: Path):
        super().__init__("canva", out_dir)

    async def upload_asset(self, name: str, png: bytes, *, marker: str) -> CanvaAsset:
        asset_id = _id("MA", marker)
        async with self.call("POST /v1/asset-uploads"):
            write_bytes(self.out_dir / "canva" / "assets" / f"{asset_id}.png", png)
            self.put("asset-records", asset_id, dict(id=asset_id, name=name, marker=marker))
        return CanvaAsset(asset_id, name)

    async def find_asset(self, *, marker: str) -> CanvaAsset | None:
        found = self.find("asset-records", marker)
        return CanvaAsset(found["id"], found["name"]) if found else None

    async def create_design(self, title: str, width: int, height: int, asset_id: str, *, marker: str) -> Design:
        design_id = _id("DA", marker)
        url = (self.out_dir / "canva" / "assets" / f"{asset_id}.png").resolve().as_uri()
        record = dict(
            id=design_id, title=title, width=width, height=height, asset_id=asset_id, marker=marker, url=url
        )
        async with self.call("POST /v1/designs"):
            self.put("designs", design_id, record)
        return Design(design_id, title, url, url)

    async def find_design(self, *, marker: str) -> Design | None:
        async with self.call("GET /v1/designs"):
            found = self.find("designs", marker)
        return Design(found["id"], found["title"], found["url"], found["url"]) if found else None

    async def delete_asset(self, asset_id: str) -> None:
        async with self.call("DELETE /v1/assets/{id}"):
            (self.out_dir / "canva" / "assets" / f"{asset_id}.png").unlink(missing_ok=True)
            self.remove("asset-records", asset_id)
            for design in self.all("designs"):
                if design["asset_id"] == asset_id:
                    self.remove("designs", design["id"])


class CanvaResource(ServiceResource):
    """Creatives as Canva designs, one per ad size."""

    SERVICE: ClassVar[str] = "canva"
    DEFAULT_BASE_URL: ClassVar[str] = "https://api.canva.com/rest"
    DEFAULT_CAP: ClassVar[int] = 2

    poll_interval_s: float = 1.0

    def local_client(self, out_dir: Path) -> LocalCanva:
        return LocalCanva(out_dir)
