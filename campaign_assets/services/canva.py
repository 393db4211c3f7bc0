"""Canva Connect: asset uploads (with job polling) and designs of a custom size.

The HTTP backend speaks the Canva Connect REST API: ``POST /v1/asset-uploads``
(the PNG as an octet-stream body, its name in the ``Asset-Upload-Metadata``
header) then polls ``GET /v1/asset-uploads/{jobId}`` until the job succeeds;
``POST /v1/designs`` makes a custom-size design from the asset.

Exactly once:

* Designs (what the ledger records): the ledger marker is in the design title,
  so a create whose response was lost is found with ``GET /v1/designs?query=``
  before it is tried again.
* Asset uploads: Canva has no endpoint that lists assets as such and an upload
  takes no title we could search; the only documented listing is the user's
  Uploads folder, ``GET /v1/folders/uploads/items?item_types=image``. An
  upload's name therefore ends with a short digest of the marker
  (:func:`asset_name`; Canva caps names at 50 characters, too short for the
  marker itself), and ``find_asset`` pages through that folder for it.
  Where that listing is not available (it answers 404, as the local vendor
  sandbox does), ``find_asset`` returns ``None``: an upload whose response was
  lost is then uploaded again, which can leave one orphaned, unreferenced asset
  in the user's Uploads. Designs stay exactly once either way.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from campaign_assets.services.base import HttpClient, ServiceResource
from campaign_assets.services.http import HttpSession, PermanentVendorError, RetryableVendorError
from campaign_assets.services.local import LocalClient, unlink, write_bytes

logger = logging.getLogger(__name__)

ASSET_NAME_MAX = 50  # Canva's limit on an asset name, in characters
UPLOADS_FOLDER = "uploads"  # the folder id Canva gives the user's Uploads


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


def marker_tag(marker: str) -> str:
    """A short deterministic stand-in for the ledger marker, for names too short to hold it."""
    return "ca-" + hashlib.sha256(marker.encode()).hexdigest()[:16]


def asset_name(name: str, marker: str) -> str:
    """The asset's name in Canva: ``name`` cut to fit, then the marker's tag."""
    tag = marker_tag(marker)
    return f"{name[: ASSET_NAME_MAX - len(tag) - 1]} {tag}"


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

    async def delete_asset(self, asset_id: str) -> bool:
        """Delete the asset and the designs made from it: True, or False when it was already gone."""
        async with self.call("DELETE /v1/assets/{id}"):
            image = unlink(self.out_dir / "canva" / "assets" / f"{asset_id}.png")
            record = self.remove("asset-records", asset_id)
            for design in self.all("designs"):
                if design["asset_id"] == asset_id:
                    self.remove("designs", design["id"])
            return image or record


MAX_POLL_FACTOR = 8  # the longest interval between polls of one upload job, in poll_interval_s


class HttpCanva(HttpClient):
    """Canva Connect REST API over one ``HttpSession``."""

    def __init__(self, http: HttpSession, poll_interval_s: float, upload_timeout_s: float):
        super().__init__(http)
        self.poll_interval_s = poll_interval_s
        self.upload_timeout_s = upload_timeout_s

    async def upload_asset(self, name: str, png: bytes, *, marker: str) -> CanvaAsset:
        name_base64 = base64.b64encode(asset_name(name, marker).encode()).decode()
        headers = {
            "Content-Type": "application/octet-stream",
            "Asset-Upload-Metadata": json.dumps({"name_base64": name_base64}),
        }

        async def create() -> CanvaAsset:
            started = await self.http.json("POST", "/v1/asset-uploads", content=png, headers=headers)
            return await self._finished_upload(started["job"])

        return await self.http.create_once(create, lambda: self.find_asset(marker=marker))

    async def find_asset(self, *, marker: str) -> CanvaAsset | None:
        """The upload named with the marker's tag, from the user's Uploads folder (see the module docstring)."""
        tag = marker_tag(marker)
        params = {"item_types": "image", "sort_by": "created_descending"}
        try:
            async for item in self._pages(f"/v1/folders/{UPLOADS_FOLDER}/items", params):
                asset = item.get("image") or item.get("asset") or {}  # current shape, then the preview one
                if str(asset.get("name", "")).endswith(tag):
                    return CanvaAsset(str(asset["id"]), str(asset["name"]))
        except PermanentVendorError as error:
            if error.status_code != 404:
                raise
            logger.warning("canva: the Uploads folder cannot be listed here (%s); upload not reconciled", error)
        return None

    async def create_design(self, title: str, width: int, height: int, asset_id: str, *, marker: str) -> Design:
        design_type = {"type": "custom", "width": width, "height": height}
        body = {"design_type": design_type, "asset_id": asset_id, "title": title}

        async def create() -> Design:
            return _design((await self.http.json("POST", "/v1/designs", json=body))["design"])

        return await self.http.create_once(create, lambda: self.find_design(marker=marker))

    async def find_design(self, *, marker: str) -> Design | None:
        async for design in self._pages("/v1/designs", {"query": marker}):
            if marker in str(design.get("title") or ""):
                return _design(design)
        return None

    async def delete_asset(self, asset_id: str) -> bool:
        """Delete an asset (Canva moves it to the trash): True, or False when it was already gone (404)."""
        try:
            await self.http.request("DELETE", f"/v1/assets/{asset_id}")
        except PermanentVendorError as error:
            if error.status_code != 404:
                raise
            return False
        return True

    async def _finished_upload(self, job: Mapping[str, Any]) -> CanvaAsset:
        """Poll an upload job until it leaves ``in_progress``; the asset it made, or an error.

        The interval doubles from ``poll_interval_s`` up to 8x it, as Canva
        asks of job polling: "get asset upload job" allows 180 requests a
        minute per user, and five uploads in flight polled every second would
        spend 300 (a job takes ~30 s; doubling polls one 5-6 times)."""
        path = f"/v1/asset-uploads/{job['id']}"
        deadline = time.monotonic() + self.upload_timeout_s
        interval = self.poll_interval_s
        while job["status"] == "in_progress":
            if time.monotonic() > deadline:
                message = f"upload job still in progress after {self.upload_timeout_s:g}s"
                raise RetryableVendorError(self.service, message, method="GET", path=path, kind="upload_timeout")
            await asyncio.sleep(interval)
            interval = min(interval * 2, self.poll_interval_s * MAX_POLL_FACTOR)
            job = (await self.http.json("GET", path))["job"]
        if job["status"] != "success":
            error = job.get("error") or {}
            message = f"upload job {job['status']}: {error.get('code', 'unknown')}: {error.get('message', '')}"
            raise PermanentVendorError(
                self.service, message, method="GET", path=path, kind="upload_failed", redactor=self.http.redactor
            )
        return CanvaAsset(str(job["asset"]["id"]), str(job["asset"]["name"]))

    async def _pages(self, path: str, params: Mapping[str, str]) -> AsyncIterator[dict[str, Any]]:
        """Every item of a listing, following Canva's ``continuation`` token."""
        continuation: str | None = None
        while True:
            page_params = {**params, **({"continuation": continuation} if continuation else {})}
            page = await self.http.json("GET", path, params=page_params)
            for item in page.get("items") or []:
                yield item
            continuation = page.get("continuation")
            if not continuation:
                return


def _design(record: Mapping[str, Any]) -> Design:
    urls = record.get("urls") or {}
    return Design(str(record["id"]), str(record.get("title") or ""), urls.get("edit_url", ""), urls.get("view_url", ""))


class CanvaResource(ServiceResource):
    """Creatives as Canva designs, one per ad size."""

    SERVICE: ClassVar[str] = "canva"
    DEFAULT_BASE_URL: ClassVar[str] = "https://api.canva.com/rest"

    poll_interval_s: float = Field(default=1.0, gt=0, description="Seconds between polls of an upload job.")
    upload_timeout_s: float = Field(default=600.0, gt=0, description="Give up polling an upload job after this.")

    def local_client(self, out_dir: Path) -> LocalCanva:
        return LocalCanva(out_dir)

    def http_client(self, http: HttpSession) -> HttpCanva:
        return HttpCanva(http, self.poll_interval_s, self.upload_timeout_s)
