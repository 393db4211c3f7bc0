"""Amazon DSP (Amazon Ads API): orders and line items under ``/dsp``.

Auth is a bearer token plus the ``Amazon-Advertising-API-ClientId`` and
``Amazon-Advertising-API-Scope`` headers; errors are ``{"code", "details"}``;
429 carries ``Retry-After``. Lists page with ``startIndex``/``count`` and
answer ``{"totalResults", "response"}``. Nothing is ever deleted: an archived
object stays archived (a 400 to bring it back).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from campaign_assets.sandbox.state import AuthOutcome, StoredObject
from campaign_assets.sandbox.vendors.base import (
    ApiError,
    Call,
    Endpoint,
    ErrorStyle,
    Vendor,
    authenticate,
    int_param,
    json_response,
)

WRITE_LATENCY_S = 2.0
READ_LATENCY_S = 0.5
STATUSES = ("ACTIVE", "INACTIVE", "ARCHIVED")
_EDITABLE = ("name", "deliveryActivationStatus", "budget", "startDateTime", "endDateTime")


class AmazonErrors(ErrorStyle):
    default_messages: Mapping[int, str] = {
        400: "Bad request",
        401: "Not authorized to access this advertiser",
        404: "Resource not found",
        429: "Too Many Requests",
        500: "Internal Server Error",
        503: "Service Unavailable",
        504: "Gateway Timeout",
    }
    sends_retry_after = True
    _codes: Mapping[int, str] = {400: "INVALID_ARGUMENT", 401: "UNAUTHORIZED", 404: "NOT_FOUND", 429: "429"}

    def body(self, error: ApiError) -> dict[str, Any]:
        return {"code": error.code or self._codes.get(error.status, str(error.status)), "details": self.message(error)}


def amazon_auth(request: Request) -> AuthOutcome:
    if not request.headers.get("amazon-advertising-api-clientid") or not request.headers.get(
        "amazon-advertising-api-scope"
    ):
        return "missing"
    return authenticate(request)


def _find(call: Call, kind: str, object_id: str) -> StoredObject:
    found = call.store.find(kind, object_id)
    if found is None:
        raise ApiError(404, f"{kind} {object_id} not found")
    return found


def _status(value: Any) -> str:
    if value not in STATUSES:
        raise ApiError(400, f"deliveryActivationStatus must be one of {', '.join(STATUSES)}")
    return str(value)


def _page(call: Call, records: list[dict[str, Any]]) -> Response:
    error = ApiError(400, "startIndex/count out of range")
    start = int_param(call.query, "startIndex", 0, 0, 10**9, error)
    count = int_param(call.query, "count", 100, 1, 100, error)
    return json_response({"totalResults": len(records), "response": records[start : start + count]})


def _create(call: Call, kind: str, id_field: str, required: tuple[str, ...]) -> Response:
    body = call.json()
    missing = [name for name in required if not body.get(name)]
    if missing:
        raise ApiError(400, f"missing required field(s): {', '.join(missing)}")
    if kind == "lineItem":
        _find(call, "order", str(body["orderId"]))
    object_id = call.ids.numeric()
    record = {**body, id_field: object_id, "deliveryActivationStatus": _status(body.get("deliveryActivationStatus", "INACTIVE"))}
    call.store.add(kind, object_id, record)
    return json_response({id_field: object_id}, 200)


def _update(call: Call, kind: str, object_id: str) -> Response:
    stored = _find(call, kind, object_id)
    changes = {k: v for k, v in call.json().items() if k in _EDITABLE}
    if "deliveryActivationStatus" in changes:
        wanted = _status(changes["deliveryActivationStatus"])
        if stored.data["deliveryActivationStatus"] == "ARCHIVED" and wanted != "ARCHIVED":
            raise ApiError(400, f"{kind} {object_id} is archived")
    stored.data.update(changes)
    return json_response(stored.data)


def create_order(call: Call) -> Response:
    return _create(call, "order", "orderId", ("name", "advertiserId"))


def list_orders(call: Call) -> Response:
    advertiser = call.query.get("advertiserIdFilter")
    return _page(call, [o.data for o in call.store.live("order") if advertiser in (None, o.data.get("advertiserId"))])


def get_order(call: Call) -> Response:
    return json_response(_find(call, "order", call.params["orderId"]).data)


def update_order(call: Call) -> Response:
    return _update(call, "order", call.params["orderId"])


def create_line_item(call: Call) -> Response:
    return _create(call, "lineItem", "lineItemId", ("orderId", "name"))


def list_line_items(call: Call) -> Response:
    order = call.query.get("orderIdFilter")
    return _page(call, [o.data for o in call.store.live("lineItem") if order in (None, o.data.get("orderId"))])


def get_line_item(call: Call) -> Response:
    return json_response(_find(call, "lineItem", call.params["lineItemId"]).data)


def update_line_item(call: Call) -> Response:
    return _update(call, "lineItem", call.params["lineItemId"])


AMAZON_DSP = Vendor(
    name="amazon-dsp",
    mount="/amazon-dsp",
    errors=AmazonErrors(),
    auth=amazon_auth,
    endpoints=(
        Endpoint("POST", "/dsp/orders", create_order, WRITE_LATENCY_S),
        Endpoint("GET", "/dsp/orders", list_orders, READ_LATENCY_S),
        Endpoint("GET", "/dsp/orders/{orderId}", get_order, READ_LATENCY_S),
        Endpoint("PUT", "/dsp/orders/{orderId}", update_order, WRITE_LATENCY_S),
        Endpoint("POST", "/dsp/lineItems", create_line_item, WRITE_LATENCY_S),
        Endpoint("GET", "/dsp/lineItems", list_line_items, READ_LATENCY_S),
        Endpoint("GET", "/dsp/lineItems/{lineItemId}", get_line_item, READ_LATENCY_S),
        Endpoint("PUT", "/dsp/lineItems/{lineItemId}", update_line_item, WRITE_LATENCY_S),
    ),
)
