"""Display & Video 360 API v3: insertion orders (our orders) and line items.

Followed: developers.google.com/display-video/api/reference/rest/v3
(``advertisers.insertionOrders`` and ``advertisers.lineItems``: ``create``,
``list`` with ``filter`` and ``pageToken``/``nextPageToken``, ``get``,
``patch`` with the required ``updateMask`` query parameter, ``delete``),
``entityStatus`` ENTITY_STATUS_DRAFT / ACTIVE / PAUSED / ARCHIVED, budgets
in micros (``budgetAmountMicros``, ``maxAmount``), dates as ``{year, month,
day}``, Google's error shape ``{"error": {"code", "message", "status"}}``
and 429 RESOURCE_EXHAUSTED without ``Retry-After`` (backoff). Note: Google
has since sunset v3 for v4 with the same resources; ``DV360_BASE_URL`` plus
``API_VERSION`` are the only places to change.

Line items can only be created in DRAFT (DV360 enforces it) and never go
back to DRAFT; live is ACTIVE, paused is PAUSED. DV360 deletes only archived
line items and insertion orders: ``delete_*`` archives, then deletes
(False when already gone). The marker is ``integrationDetails.details``,
which no customer sees.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar

from pydantic import Field

from campaign_assets.services.base import HttpClient
from campaign_assets.services.dsp import (
    DSPResource,
    LineItem,
    Order,
    cents_to_micros,
    check_status,
    is_not_found,
    micros_to_cents,
)
from campaign_assets.services.http import HttpSession, PermanentVendorError

SERVICE = "dv360"
API_VERSION = "v3"
TO_VENDOR = {"paused": "ENTITY_STATUS_PAUSED", "live": "ENTITY_STATUS_ACTIVE", "archived": "ENTITY_STATUS_ARCHIVED"}
FROM_VENDOR = {**{v: k for k, v in TO_VENDOR.items()}, "ENTITY_STATUS_DRAFT": "paused"}
CONSOLE = "https://displayvideo.google.com/ng_nav/p/0/a"


def _date(day: dt.date) -> dict[str, int]:
    return {"year": day.year, "month": day.month, "day": day.day}


def _day(value: Mapping[str, Any]) -> dt.date:
    return dt.date(int(value["year"]), int(value["month"]), int(value["day"]))


def _range(start: dt.date, end: dt.date) -> dict[str, Any]:
    return {"startDate": _date(start), "endDate": _date(end)}


class HttpDV360(HttpClient):
    def __init__(self, http: HttpSession, advertiser_id: str, page_size: int = 100):
        super().__init__(http)
        self.advertiser_id = advertiser_id
        self.page_size = page_size
        self.base = f"/{API_VERSION}/advertisers/{advertiser_id}"

    def _order(self, record: Mapping[str, Any]) -> Order:
        io_id = str(record["insertionOrderId"])
        url = f"{CONSOLE}/{self.advertiser_id}/io/{io_id}"
        return Order(io_id, SERVICE, str(record.get("displayName") or ""), url)

    def _line(self, record: Mapping[str, Any]) -> LineItem:
        line_id = str(record["lineItemId"])
        date_range = (record.get("flight") or {}).get("dateRange") or {}
        return LineItem(
            line_id,
            str(record.get("insertionOrderId") or ""),
            SERVICE,
            str(record.get("displayName") or ""),
            FROM_VENDOR.get(str(record.get("entityStatus")), "paused"),
            micros_to_cents((record.get("budget") or {}).get("maxAmount", 0)),
            _day(date_range["startDate"]),
            _day(date_range["endDate"]),
            f"{CONSOLE}/{self.advertiser_id}/li/{line_id}",
        )

    async def create_order(
        self, name: str, budget_cents: int, currency: str, start: dt.date, end: dt.date, *, marker: str
    ) -> Order:
        body = {
            "displayName": name,
            "entityStatus": "ENTITY_STATUS_DRAFT",
            "integrationDetails": {"details": marker},
            "pacing": {"pacingPeriod": "PACING_PERIOD_FLIGHT", "pacingType": "PACING_TYPE_EVEN"},
            "frequencyCap": {"unlimited": True},
            "kpi": {"kpiType": "KPI_TYPE_CPM", "kpiAmountMicros": "1000000"},
            "budget": {
                "budgetUnit": "BUDGET_UNIT_CURRENCY",
                "automationType": "INSERTION_ORDER_AUTOMATION_TYPE_NONE",
                "budgetSegments": [
                    {"budgetAmountMicros": str(cents_to_micros(budget_cents)), "dateRange": _range(start, end)}
                ],
            },
        }

        async def create() -> Order:
            return self._order(await self.http.json("POST", f"{self.base}/insertionOrders", json=body))

        return await self.http.create_once(create, lambda: self.find_order(marker=marker))

    async def find_order(self, *, marker: str) -> Order | None:
        async for record in self._list("insertionOrders", None):
            if (record.get("integrationDetails") or {}).get("details") == marker:
                return self._order(record)
        return None

    async def create_line_item(
        self,
        order_id: str,
        name: str,
        budget_cents: int,
        currency: str,
        start: dt.date,
        end: dt.date,
        *,
        marker: str,
    ) -> LineItem:
        body = {
            "insertionOrderId": order_id,
            "displayName": name,
            "lineItemType": "LINE_ITEM_TYPE_DISPLAY_DEFAULT",
            "entityStatus": "ENTITY_STATUS_DRAFT",  # the only status DV360 accepts on create
            "integrationDetails": {"details": marker},
            "flight": {"flightDateType": "LINE_ITEM_FLIGHT_DATE_TYPE_CUSTOM", "dateRange": _range(start, end)},
            "budget": {
                "budgetAllocationType": "LINE_ITEM_BUDGET_ALLOCATION_TYPE_FIXED",
                "budgetUnit": "BUDGET_UNIT_CURRENCY",
                "maxAmount": str(cents_to_micros(budget_cents)),
            },
            "pacing": {"pacingPeriod": "PACING_PERIOD_FLIGHT", "pacingType": "PACING_TYPE_EVEN"},
            "frequencyCap": {"unlimited": True},
            "bidStrategy": {"fixedBid": {"bidAmountMicros": "1000000"}},
        }

        async def create() -> LineItem:
            return self._line(await self.http.json("POST", f"{self.base}/lineItems", json=body))

        return await self.http.create_once(create, lambda: self.find_line_item(order_id, marker=marker))

    async def find_line_item(self, order_id: str, *, marker: str) -> LineItem | None:
        async for record in self._list("lineItems", f'insertionOrderId="{order_id}"'):
            if (record.get("integrationDetails") or {}).get("details") == marker:
                return self._line(record)
        return None

    async def get_line_item(self, line_item_id: str) -> LineItem | None:
        record = await self._get(f"{self.base}/lineItems/{line_item_id}")
        return self._line(record) if record is not None else None

    async def set_status(self, line_item_id: str, status: str) -> LineItem:
        record = await self._set_status(f"{self.base}/lineItems/{line_item_id}", TO_VENDOR[check_status(status)])
        return self._line(record)

    async def delete_line_item(self, line_item_id: str) -> bool:
        return await self._archive_and_delete(f"{self.base}/lineItems/{line_item_id}")

    async def delete_order(self, order_id: str) -> bool:
        return await self._archive_and_delete(f"{self.base}/insertionOrders/{order_id}")

    async def _set_status(self, path: str, entity_status: str) -> dict[str, Any]:
        # A PATCH of entityStatus is idempotent: safe to resend after a lost response.
        return await self.http.json(
            "PATCH", path, params={"updateMask": "entityStatus"}, json={"entityStatus": entity_status}, idempotent=True
        )

    async def _archive_and_delete(self, path: str) -> bool:
        """DV360 deletes only archived entities: archive, then delete. False when gone already."""
        current = await self._get(path)
        if current is None:
            return False
        if current.get("entityStatus") != "ENTITY_STATUS_ARCHIVED":
            await self._set_status(path, "ENTITY_STATUS_ARCHIVED")
        try:
            await self.http.request("DELETE", path)
        except PermanentVendorError as error:
            if is_not_found(error):
                return False
            raise
        return True

    async def _get(self, path: str) -> dict[str, Any] | None:
        try:
            return await self.http.json("GET", path)
        except PermanentVendorError as error:
            if is_not_found(error):
                return None
            raise

    async def _list(self, collection: str, filter_: str | None) -> AsyncIterator[dict[str, Any]]:
        token: str | None = None
        while True:
            params: dict[str, Any] = {"pageSize": self.page_size}
            if filter_:
                params["filter"] = filter_
            if token:
                params["pageToken"] = token
            page = await self.http.json("GET", f"{self.base}/{collection}", params=params) or {}
            for record in page.get(collection) or []:
                yield record
            token = page.get("nextPageToken")
            if not token:
                return


class DV360Resource(DSPResource):
    """DV360 insertion orders and line items (local backend: records to traffic)."""

    SERVICE: ClassVar[str] = SERVICE
    DEFAULT_BASE_URL: ClassVar[str] = "https://displayvideo.googleapis.com"

    advertiser_id: str | None = Field(default=None, description="DV360 advertiser the insertion orders belong to.")
    page_size: int = Field(default=100, ge=1, le=200, description="Records per page when listing (DV360's limit).")

    def http_client(self, http: HttpSession) -> HttpDV360:
        if not self.advertiser_id:
            raise ValueError("DV360Resource.advertiser_id is required with an access token")
        return HttpDV360(http, self.advertiser_id, self.page_size)
