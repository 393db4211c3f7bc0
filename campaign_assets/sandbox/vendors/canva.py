"""Canva Connect: asset upload jobs, assets, and custom-size designs."""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import time
from collections.abc import Mapping
from typing import Any

from PIL import Image, UnidentifiedImageError
from starlette.responses import Response

from campaign_assets.sandbox.state import StoredObject
from campaign_assets.sandbox.vendors.base import (
    ApiError,
    Call,
    Endpoint,
    ErrorStyle,
    Vendor,
    decode_offset,
    encode_offset,
    int_param,
    json_response,
)

UPLOAD_LATENCY_S = 0.5
UPLOAD_JOB_S = 30.0
JOB_POLL_LATENCY_S = 0.2
DESIGN_CREATE_LATENCY_S = 15.0
READ_LATENCY_S = 1.0
MAX_ASSET_BYTES = 50 * 1024 * 1024
MAX_ASSET_NAME = 50
_DESIGN_SIDE = range(40, 8001)
_PRESETS = {"doc": (816, 1056), "whiteboard": (1920, 1080), "presentation": (1920, 1080)}
_OWNER = {"user_id": "oUsandbox0001", "team_id": "oBsandbox0001"}
_ASSET_FIELDS = ("type", "id", "name", "tags", "created_at", "updated_at", "owner", "thumbnail")
_DESIGN_FIELDS = ("id", "title", "owner", "urls", "created_at", "updated_at", "thumbnail", "page_count")


class CanvaErrors(ErrorStyle):
    """``{"code", "message"}``; Canva sends no Retry-After on 429."""

    default_messages: Mapping[int, str] = {
        401: "Access token is invalid",
        404: "Resource not found",
        429: "Too many requests, please try again later.",
        500: "Internal server error",
        503: "Service unavailable",
        504: "Gateway timeout",
    }
    _codes: Mapping[int, str] = {
        400: "bad_request_body",
        401: "invalid_access_token",
        404: "not_found",
        429: "too_many_requests",
    }

    def body(self, error: ApiError) -> dict[str, Any]:
        return {
            "code": error.code or self._codes.get(error.status, "internal_error"),
            "message": self.message(error),
        }

    def unknown_endpoint(self, method: str, path: str) -> ApiError:
        return ApiError(404, f"Endpoint not found: {method} {path}", code="endpoint_not_found")


def _thumbnail(kind: str, object_id: str, width: int, height: int) -> dict[str, Any]:
    ratio = min(1.0, 256 / max(width, height))
    return {
        "width": max(1, round(width * ratio)),
        "height": max(1, round(height * ratio)),
        "url": f"https://document-export.canva.com/{kind}/{object_id}/thumbnail.png",
    }


def _public(data: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    return {name: data[name] for name in fields if data.get(name) is not None}


def _asset_name(header: str | None) -> str:
    """The asset name from the ``Asset-Upload-Metadata`` header (``{"name_base64": …}``)."""
    invalid = ApiError(
        400, "Asset-Upload-Metadata header is missing or invalid.", code="invalid_header_value"
    )
    try:
        metadata = json.loads(header or "")
        name = base64.b64decode(metadata["name_base64"], validate=True).decode()
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise invalid from None
    if not 1 <= len(name) <= MAX_ASSET_NAME:
        raise ApiError(
            400, f"Asset name must be 1 to {MAX_ASSET_NAME} characters.", code="invalid_header_value"
        )
    return name


def _image_size(content: bytes) -> tuple[int, int] | None:
    try:
        with Image.open(io.BytesIO(content)) as image:
            return image.size
    except (UnidentifiedImageError, OSError):
        return None


def _job_error(size_bytes: int, image_size: tuple[int, int] | None) -> dict[str, str] | None:
    if size_bytes > MAX_ASSET_BYTES:
        return {"code": "file_too_big", "message": "The file is larger than 50 MB."}
    if image_size is None:
        return {"code": "import_failed", "message": "The file is not an image Canva can import."}
    return None


def _store_asset(call: Call, name: str, width: int, height: int) -> StoredObject:
    asset_id = "MA" + call.ids.alphanumeric(9)
    now = int(time.time())
    return call.store.add(
        "asset",
        asset_id,
        {
            "type": "image",
            "id": asset_id,
            "name": name,
            "tags": [],
            "created_at": now,
            "updated_at": now,
            "owner": _OWNER,
            "thumbnail": _thumbnail("asset", asset_id, width, height),
            "size_bytes": len(call.body),
            "sha256": hashlib.sha256(call.body).hexdigest(),
        },
    )


def create_upload(call: Call) -> Response:
    """Accept an upload job; the asset exists from now, the job reports success after the job time."""
    name = _asset_name(call.request.headers.get("asset-upload-metadata"))
    image_size = _image_size(call.body)
    error = _job_error(len(call.body), image_size)
    asset = _store_asset(call, name, *image_size) if image_size and not error else None
    digits = call.ids.alphanumeric(32)
    job_id = "-".join((digits[:8], digits[8:12], digits[12:16], digits[16:20], digits[20:]))
    call.store.add(
        "upload_job",
        job_id,
        {
            "id": job_id,
            "ready_at": time.time() + UPLOAD_JOB_S * call.scale,
            "asset": asset.data if asset else None,
            "error": error,
        },
    )
    return json_response({"job": {"id": job_id, "status": "in_progress"}})


def get_upload(call: Call) -> Response:
    job = call.store.find("upload_job", call.params["jobId"])
    if job is None:
        raise ApiError(404, f"Asset upload job '{call.params['jobId']}' not found")
    data = job.data
    if time.time() < data["ready_at"]:
        return json_response({"job": {"id": job.id, "status": "in_progress"}})
    if data["error"]:
        return json_response({"job": {"id": job.id, "status": "failed", "error": data["error"]}})
    return json_response(
        {"job": {"id": job.id, "status": "success", "asset": _public(data["asset"], _ASSET_FIELDS)}}
    )


def _asset(call: Call) -> StoredObject:
    asset = call.store.find("asset", call.params["assetId"])
    if asset is None:
        raise ApiError(404, f"Asset with id '{call.params['assetId']}' not found")
    return asset


def get_asset(call: Call) -> Response:
    return json_response({"asset": _public(_asset(call).data, _ASSET_FIELDS)})


def delete_asset(call: Call) -> Response:
    _asset(call).deleted = True
    return Response(status_code=204)


def _design_size(design_type: Any) -> tuple[int, int]:
    if not isinstance(design_type, dict):
        raise ApiError(400, "design_type is required.", code="invalid_field")
    if design_type.get("type") == "preset" and design_type.get("name") in _PRESETS:
        return _PRESETS[design_type["name"]]
    width, height = design_type.get("width"), design_type.get("height")
    if design_type.get("type") != "custom" or not isinstance(width, int) or not isinstance(height, int):
        raise ApiError(
            400, "design_type must be a preset or a custom type with width and height.", code="invalid_field"
        )
    if width not in _DESIGN_SIDE or height not in _DESIGN_SIDE:
        raise ApiError(
            400, "Design width and height must be between 40 and 8000 pixels.", code="invalid_field"
        )
    return width, height


def create_design(call: Call) -> Response:
    body = call.json()
    width, height = _design_size(body.get("design_type"))
    asset_id = body.get("asset_id")
    if asset_id is not None and call.store.find("asset", str(asset_id)) is None:
        raise ApiError(400, f"Asset with id '{asset_id}' not found", code="invalid_field")
    title = body.get("title")
    if title is not None and not (isinstance(title, str) and 1 <= len(title) <= 255):
        raise ApiError(400, "Title must be 1 to 255 characters.", code="invalid_field")
    design_id = "DAG" + call.ids.alphanumeric(8)
    now = int(time.time())
    design = call.store.add(
        "design",
        design_id,
        {
            "id": design_id,
            "title": title,
            "owner": _OWNER,
            "urls": {
                "edit_url": f"https://www.canva.com/design/{design_id}/edit",
                "view_url": f"https://www.canva.com/design/{design_id}/view",
            },
            "created_at": now,
            "updated_at": now,
            "thumbnail": _thumbnail("design", design_id, width, height),
            "page_count": 1,
            "width": width,
            "height": height,
            "asset_id": asset_id,
        },
    )
    return json_response({"design": _public(design.data, _DESIGN_FIELDS)})


def list_designs(call: Call) -> Response:
    """Designs whose title contains `query` (case-insensitive), newest first, with a continuation."""
    query = call.query.get("query", "").lower()
    invalid = ApiError(400, "Invalid query parameters.", code="bad_query_params")
    limit = int_param(call.query, "limit", 25, 1, 100, invalid)
    start = decode_offset(call.query.get("continuation"), invalid)
    designs = [
        d.data for d in reversed(call.store.live("design")) if query in (d.data["title"] or "").lower()
    ]
    payload: dict[str, Any] = {"items": [_public(d, _DESIGN_FIELDS) for d in designs[start : start + limit]]}
    if start + limit < len(designs):
        payload["continuation"] = encode_offset(start + limit)
    return json_response(payload)


def list_folder_items(call: Call) -> Response:
    """The Uploads folder (id ``uploads``): uploaded image assets, newest first, with a continuation."""
    if call.params["folderId"] != "uploads":
        raise ApiError(404, f"Folder with id '{call.params['folderId']}' not found")
    invalid = ApiError(400, "Invalid query parameters.", code="bad_query_params")
    limit = int_param(call.query, "limit", 50, 1, 100, invalid)
    start = decode_offset(call.query.get("continuation"), invalid)
    assets = [a.data for a in reversed(call.store.live("asset"))]
    page = [{"type": "image", "image": _public(a, _ASSET_FIELDS)} for a in assets[start : start + limit]]
    payload: dict[str, Any] = {"items": page}
    if start + limit < len(assets):
        payload["continuation"] = encode_offset(start + limit)
    return json_response(payload)


def get_design(call: Call) -> Response:
    design = call.store.find("design", call.params["designId"])
    if design is None:
        raise ApiError(404, f"Design with id '{call.params['designId']}' not found")
    return json_response({"design": _public(design.data, _DESIGN_FIELDS)})


CANVA = Vendor(
    name="canva",
    mount="/canva/rest",
    errors=CanvaErrors(),
    endpoints=(
        Endpoint("POST", "/v1/asset-uploads", create_upload, UPLOAD_LATENCY_S),
        Endpoint("GET", "/v1/asset-uploads/{jobId}", get_upload, JOB_POLL_LATENCY_S),
        Endpoint("GET", "/v1/assets/{assetId}", get_asset, READ_LATENCY_S),
        Endpoint("DELETE", "/v1/assets/{assetId}", delete_asset, READ_LATENCY_S),
        Endpoint("POST", "/v1/designs", create_design, DESIGN_CREATE_LATENCY_S),
        Endpoint("GET", "/v1/designs", list_designs, READ_LATENCY_S),
        Endpoint("GET", "/v1/designs/{designId}", get_design, READ_LATENCY_S),
        Endpoint("GET", "/v1/folders/{folderId}/items", list_folder_items, READ_LATENCY_S),
    ),
)
