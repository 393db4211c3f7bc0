"""The Trade Desk API v3: campaigns and ad groups.

Auth is the ``TTD-Auth`` header; errors are ``{"Message", "ErrorDetails"}``;
429 carries ``Retry-After``. Updates are ``PUT /campaign`` and ``PUT
/adgroup`` with the id in the body; queries are POSTs with
``PageStartIndex``/``PageSize`` answering ``{"Result", "ResultCount",
"TotalFilteredCount"}``. Nothing is deleted: ``Availability: "Archived"``,
which cannot be undone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from campaign_assets.sandbox.state import AuthOutcome, StoredObject
from campaign_assets.sandbox.vendors.base import ApiError, Call, Endpoint, ErrorStyle, Vendor, json_response

WRITE_LATENCY_S = 1.0
READ_LATENCY_S = 0.3
_AVAILABILITY = ("Available", "Archived")
_EDITABLE = {
    "campaign": ("CampaignName", "Budget", "StartDate", "EndDate", "Availability", "Description"),
    "adgroup": ("AdGroupName", "IsEnabled", "Availability", "RTBAttributes", "Description"),
}


class TradeDeskErrors(ErrorStyle):
    default_messages: Mapping[int, str] = {
        400: "The request is invalid.",
        401: "Authentication failed: the TTD-Auth token is missing, expired or revoked.",
        404: "The requested resource was not found.",
        429: "Too many requests. Please slow down.",
        500: "An error has occurred.",
        503: "Service unavailable.",
        504: "Gateway timeout.",
    }
    sends_retry_after = True

    def body(self, error: ApiError) -> dict[str, Any]:
        details = [{"Property": error.code, "Reasons": [self.message(error)]}] if error.code else []
        return {"Message": self.message(error), "ErrorDetails": details}


def ttd_auth(request: Request) -> AuthOutcome:
    token = request.headers.get("ttd-auth", "").strip()
    if not token:
        return "missing"
    return "revoked" if "revoked" in token else "ok"


def _find(call: Call, kind: str, object_id: str) -> StoredObject:
    found = call.store.find(kind, object_id)
    if found is None:
        raise ApiError(404, f"{kind} {object_id} was not found.")
    return found


def _money(value: Any, prop: str) -> None:
    if not isinstance(value, dict) or not isinstance(value.get("Amount"), (int, float)) or not value.get("CurrencyCode"):
        raise ApiError(400, "A budget is {Amount, CurrencyCode}.", code=prop)


def _availability(data: dict[str, Any]) -> None:
    if data.get("Availability", "Available") not in _AVAILABILITY:
        raise ApiError(400, "Availability must be Available or Archived.", code="Availability")


def create_campaign(call: Call) -> Response:
    body = call.json()
    for name in ("AdvertiserId", "CampaignName", "StartDate"):
        if not body.get(name):
            raise ApiError(400, f"The {name} field is required.", code=name)
    _money(body.get("Budget"), "Budget")
    _availability(body)
    campaign_id = call.ids.alphanumeric(7)
    record = {"Availability": "Available", **body, "CampaignId": campaign_id}
    call.store.add("campaign", campaign_id, record)
    return json_response(record)


def create_ad_group(call: Call) -> Response:
    body = call.json()
    for name in ("CampaignId", "AdGroupName"):
        if not body.get(name):
            raise ApiError(400, f"The {name} field is required.", code=name)
    _find(call, "campaign", str(body["CampaignId"]))
    _money(((body.get("RTBAttributes") or {}).get("BudgetSettings") or {}).get("Budget"), "RTBAttributes.BudgetSettings.Budget")
    _availability(body)
    ad_group_id = call.ids.alphanumeric(7)
    record = {"Availability": "Available", "IsEnabled": False, **body, "AdGroupId": ad_group_id}
    call.store.add("adgroup", ad_group_id, record)
    return json_response(record)


def _update(call: Call, kind: str, id_field: str) -> Response:
    body = call.json()
    stored = _find(call, kind, str(body.get(id_field) or ""))
    changes = {k: v for k, v in body.items() if k in _EDITABLE[kind]}
    _availability(changes)
    if stored.data.get("Availability") == "Archived" and changes.get("Availability", "Archived") != "Archived":
        raise ApiError(400, f"The {kind} is archived and cannot be changed.", code="Availability")
    if stored.data.get("Availability") == "Archived" and changes.get("IsEnabled"):
        raise ApiError(400, "An archived ad group cannot be enabled.", code="IsEnabled")
    stored.data.update(changes)
    return json_response(stored.data)


def update_campaign(call: Call) -> Response:
    return _update(call, "campaign", "CampaignId")


def update_ad_group(call: Call) -> Response:
    return _update(call, "adgroup", "AdGroupId")


def get_campaign(call: Call) -> Response:
    return json_response(_find(call, "campaign", call.params["campaignId"]).data)


def get_ad_group(call: Call) -> Response:
    return json_response(_find(call, "adgroup", call.params["adGroupId"]).data)


def _query(call: Call, kind: str, field: str) -> Response:
    body = call.json()
    start, size = body.get("PageStartIndex", 0), body.get("PageSize", 100)
    if not isinstance(start, int) or not isinstance(size, int) or start < 0 or not 1 <= size <= 1000:
        raise ApiError(400, "PageStartIndex >= 0 and 1 <= PageSize <= 1000.", code="PageSize")
    records = [o.data for o in call.store.live(kind) if str(o.data.get(field)) == str(body.get(field))]
    page = records[start : start + size]
    return json_response({"Result": page, "ResultCount": len(page), "TotalFilteredCount": len(records)})


def query_campaigns(call: Call) -> Response:
    return _query(call, "campaign", "AdvertiserId")


def query_ad_groups(call: Call) -> Response:
    return _query(call, "adgroup", "CampaignId")


TRADE_DESK = Vendor(
    name="trade-desk",
    mount="/trade-desk/v3",
    errors=TradeDeskErrors(),
    auth=ttd_auth,
    endpoints=(
        Endpoint("POST", "/campaign", create_campaign, WRITE_LATENCY_S),
        Endpoint("PUT", "/campaign", update_campaign, WRITE_LATENCY_S),
        Endpoint("GET", "/campaign/{campaignId}", get_campaign, READ_LATENCY_S),
        Endpoint("POST", "/campaign/query/advertiser", query_campaigns, READ_LATENCY_S),
        Endpoint("POST", "/adgroup", create_ad_group, WRITE_LATENCY_S),
        Endpoint("PUT", "/adgroup", update_ad_group, WRITE_LATENCY_S),
        Endpoint("GET", "/adgroup/{adGroupId}", get_ad_group, READ_LATENCY_S),
        Endpoint("POST", "/adgroup/query/campaign", query_ad_groups, READ_LATENCY_S),
    ),
)
