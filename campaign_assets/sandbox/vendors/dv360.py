"""Display & Video 360 API v3: insertion orders and line items of an advertiser.

Google's error shape and 429 without Retry-After (``GoogleErrors``), bearer
auth. Lists page with ``pageSize``/``pageToken`` (``nextPageToken``); line
items filter by ``insertionOrderId="…"``. DV360's rules, enforced: a line
item is created in ENTITY_STATUS_DRAFT only; nothing returns to DRAFT; an
archived entity changes no more; PATCH needs ``updateMask``; only an
archived entity can be deleted.
"""

from __future__ import annotations

import re
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
from campaign_assets.sandbox.vendors.google import GoogleErrors

WRITE_LATENCY_S = 1.5
READ_LATENCY_S = 0.4
STATUSES = ("ENTITY_STATUS_DRAFT", "ENTITY_STATUS_ACTIVE", "ENTITY_STATUS_PAUSED", "ENTITY_STATUS_ARCHIVED")
_MASKABLE = ("entityStatus", "displayName", "budget", "flight")
_FILTER = re.compile(r'^insertionOrderId\s*=\s*"?(\d+)"?$')
_KINDS = {"insertionOrders": ("insertionOrder", "insertionOrderId"), "lineItems": ("lineItem", "lineItemId")}


def _find(call: Call, kind: str, object_id: str) -> StoredObject:
    found = call.store.find(kind, object_id)
    if found is None or found.data["advertiserId"] != call.params["advertiserId"]:
        raise ApiError(404, "Requested entity was not found.")
    return found


def _create(call: Call, collection: str) -> Response:
    kind, id_field = _KINDS[collection]
    body = call.json()
    if not body.get("displayName"):
        raise ApiError(400, "displayName: must be set.")
    status = body.get("entityStatus")
    if status not in STATUSES:
        raise ApiError(400, "entityStatus: must be set to a valid status.")
    if kind == "lineItem":
        if status != "ENTITY_STATUS_DRAFT":
            raise ApiError(400, "entityStatus: line items can only be created in ENTITY_STATUS_DRAFT.")
        if not str((body.get("budget") or {}).get("maxAmount", "")).isdigit():
            raise ApiError(400, "budget.maxAmount: must be an amount in micros.")
        _find(call, "insertionOrder", str(body.get("insertionOrderId") or ""))
    elif status not in ("ENTITY_STATUS_DRAFT", "ENTITY_STATUS_ACTIVE"):
        raise ApiError(400, "entityStatus: an insertion order is created DRAFT or ACTIVE.")
    object_id = call.ids.numeric()
    advertiser = call.params["advertiserId"]
    record = {
        **body,
        "name": f"advertisers/{advertiser}/{collection}/{object_id}",
        "advertiserId": advertiser,
        id_field: object_id,
    }
    call.store.add(kind, object_id, record)
    return json_response(record)


def _list(call: Call, collection: str) -> Response:
    kind, _ = _KINDS[collection]
    records = [o.data for o in call.store.live(kind) if o.data["advertiserId"] == call.params["advertiserId"]]
    raw_filter = call.query.get("filter")
    if raw_filter:
        match = _FILTER.match(raw_filter.strip())
        if not match:
            raise ApiError(400, f"filter: unsupported filter {raw_filter!r}.")
        records = [r for r in records if r.get("insertionOrderId") == match.group(1)]
    size = int_param(call.query, "pageSize", 100, 1, 200, ApiError(400, "pageSize: must be 1..200."))
    start = decode_offset(call.query.get("pageToken"), ApiError(400, "pageToken: invalid."))
    page: dict[str, Any] = {collection: records[start : start + size]} if records[start : start + size] else {}
    if start + size < len(records):
        page["nextPageToken"] = encode_offset(start + size)
    return json_response(page)


def _patch(call: Call, collection: str, object_id: str) -> Response:
    kind, _ = _KINDS[collection]
    stored = _find(call, kind, object_id)
    mask = [m.strip() for m in (call.query.get("updateMask") or "").split(",") if m.strip()]
    if not mask or any(m not in _MASKABLE for m in mask):
        raise ApiError(400, "updateMask: required, one of " + ", ".join(_MASKABLE))
    body = call.json()
    current = stored.data["entityStatus"]
    if "entityStatus" in mask:
        wanted = body.get("entityStatus")
        if wanted not in STATUSES:
            raise ApiError(400, "entityStatus: invalid value.")
        if wanted == "ENTITY_STATUS_DRAFT" and current != "ENTITY_STATUS_DRAFT":
            raise ApiError(400, "entityStatus: an entity cannot return to ENTITY_STATUS_DRAFT.")
    if current == "ENTITY_STATUS_ARCHIVED" and any(
        m != "entityStatus" or body.get(m) != current for m in mask
    ):
        raise ApiError(400, "An archived entity cannot be changed.")
    stored.data.update({m: body.get(m) for m in mask})
    return json_response(stored.data)


def _delete(call: Call, collection: str, object_id: str) -> Response:
    kind, _ = _KINDS[collection]
    stored = _find(call, kind, object_id)
    if stored.data["entityStatus"] != "ENTITY_STATUS_ARCHIVED":
        raise ApiError(400, "FAILED_PRECONDITION: only an archived entity can be deleted.")
    stored.deleted = True
    return json_response({})


def _endpoints(collection: str, id_name: str) -> tuple[Endpoint, ...]:
    base = f"/v3/advertisers/{{advertiserId}}/{collection}"
    one = f"{base}/{{{id_name}}}"
    return (
        Endpoint("POST", base, lambda call: _create(call, collection), WRITE_LATENCY_S),
        Endpoint("GET", base, lambda call: _list(call, collection), READ_LATENCY_S),
        Endpoint("GET", one, lambda call: json_response(_find(call, _KINDS[collection][0], call.params[id_name]).data), READ_LATENCY_S),
        Endpoint("PATCH", one, lambda call: _patch(call, collection, call.params[id_name]), WRITE_LATENCY_S),
        Endpoint("DELETE", one, lambda call: _delete(call, collection, call.params[id_name]), WRITE_LATENCY_S),
    )


DV360 = Vendor(
    name="dv360",
    mount="/dv360",
    errors=GoogleErrors("displayvideo.googleapis.com"),
    endpoints=_endpoints("insertionOrders", "insertionOrderId") + _endpoints("lineItems", "lineItemId"),
)
