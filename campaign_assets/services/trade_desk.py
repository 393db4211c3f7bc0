"""The Trade Desk (API v3): campaigns (our orders) and ad groups (our line items).

Followed: The Trade Desk platform API v3 reference as published on
partner.thetradedesk.com: ``POST``/``PUT /v3/campaign``, ``POST``/``PUT
/v3/adgroup`` (the id travels in the PUT body), ``GET /v3/adgroup/{id}``,
the query endpoints ``POST /v3/campaign/query/advertiser`` and ``POST
/v3/adgroup/query/campaign`` (``PageStartIndex``/``PageSize``, answer
``{"Result", "ResultCount", "TotalFilteredCount"}``), money as ``{"Amount",
"CurrencyCode"}``, auth by the ``TTD-Auth`` header, errors as ``{"Message",
"ErrorDetails": [{"Property", "Reasons"}]}``, throttling as HTTP 429. The
search tool found no copy of TTD's reference (it sits behind the partner
portal); field names are the ones TTD documents as we know them.

Ad groups are created with ``IsEnabled: false`` (paused); live is
``IsEnabled: true``. TTD deletes nothing: ``delete_*`` sets ``Availability:
"Archived"`` and answers False when the object was archived already or is
unknown. The marker is the ``Description``, which no customer sees.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar

import httpx
from pydantic import Field

from campaign_assets.services.base import HttpClient
from campaign_assets.services.dsp import (
    DSPResource,
    LineItem,
    Order,
    amount_to_cents,
    cents_to_amount,
    check_status,
    is_not_found,
)
from campaign_assets.services.http import HttpSession, PermanentVendorError, VendorProfile
from campaign_assets.services.http.profiles import default_error_message, json_or_none, truncate

SERVICE = "trade_desk"
CONSOLE = "https://desk.thetradedesk.com/app"


def ttd_error_message(response: httpx.Response) -> str:
    """``{"Message": ..., "ErrorDetails": [{"Property", "Reasons": [...]}]}``."""
    payload = json_or_none(response)
    if not isinstance(payload, Mapping) or not payload.get("Message"):
        return default_error_message(response)
    details = [
        f"{d.get('Property')}: {'; '.join(map(str, d.get('Reasons') or []))}"
        for d in payload.get("ErrorDetails") or []
        if isinstance(d, Mapping)
    ]
    return truncate(" | ".join([str(payload["Message"]), *details]))


PROFILE = VendorProfile(service=SERVICE, error_message=ttd_error_message)


def _money(cents: int, currency: str) -> dict[str, Any]:
    return {"Amount": float(cents_to_amount(cents)), "CurrencyCode": currency}


def _day(value: Any) -> dt.date:
    return dt.date.fromisoformat(str(value)[:10])


class HttpTradeDesk(HttpClient):
    def __init__(self, http: HttpSession, advertiser_id: str, page_size: int = 100):
        super().__init__(http)
        self.advertiser_id = advertiser_id
        self.page_size = page_size

    def _order(self, record: Mapping[str, Any]) -> Order:
        campaign_id = str(record["CampaignId"])
        return Order(campaign_id, SERVICE, str(record.get("CampaignName") or ""), f"{CONSOLE}/campaign/{campaign_id}")

    def _line(self, record: Mapping[str, Any]) -> LineItem:
        ad_group_id = str(record["AdGroupId"])
        budget = ((record.get("RTBAttributes") or {}).get("BudgetSettings") or {}).get("Budget") or {}
        if record.get("Availability") == "Archived":
            status = "archived"
        else:
            status = "live" if record.get("IsEnabled") else "paused"
        return LineItem(
            ad_group_id,
            str(record.get("CampaignId") or ""),
            SERVICE,
            str(record.get("AdGroupName") or ""),
            status,
            amount_to_cents(budget.get("Amount", 0)),
            _day(record["StartDate"]),
            _day(record["EndDate"]),
            f"{CONSOLE}/adgroup/{ad_group_id}",
        )

    async def create_order(
        self, name: str, budget_cents: int, currency: str, start: dt.date, end: dt.date, *, marker: str
    ) -> Order:
        body = {
            "AdvertiserId": self.advertiser_id,
            "CampaignName": name,
            "Description": marker,
            "Budget": _money(budget_cents, currency),
            "StartDate": f"{start.isoformat()}T00:00:00",
            "EndDate": f"{(end + dt.timedelta(days=1)).isoformat()}T00:00:00",  # TTD's end is exclusive
            "Availability": "Available",
        }

        async def create() -> Order:
            return self._order(await self.http.json("POST", "/campaign", json=body))

        return await self.http.create_once(create, lambda: self.find_order(marker=marker))

    async def find_order(self, *, marker: str) -> Order | None:
        query = {"AdvertiserId": self.advertiser_id}
        async for record in self._query("/campaign/query/advertiser", query):
            if record.get("Description") == marker and record.get("Availability") != "Archived":
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
            "CampaignId": order_id,
            "AdGroupName": name,
            "Description": marker,
            "IsEnabled": False,
            "Availability": "Available",
            # Ad groups run within the campaign's flight; the dates are kept for the read-back.
            "StartDate": f"{start.isoformat()}T00:00:00",
            "EndDate": f"{end.isoformat()}T00:00:00",
            "RTBAttributes": {"BudgetSettings": {"Budget": _money(budget_cents, currency)}},
        }

        async def create() -> LineItem:
            return self._line(await self.http.json("POST", "/adgroup", json=body))

        return await self.http.create_once(create, lambda: self.find_line_item(order_id, marker=marker))

    async def find_line_item(self, order_id: str, *, marker: str) -> LineItem | None:
        async for record in self._query("/adgroup/query/campaign", {"CampaignId": order_id}):
            if record.get("Description") == marker and record.get("Availability") != "Archived":
                return self._line(record)
        return None

    async def get_line_item(self, line_item_id: str) -> LineItem | None:
        record = await self._get(f"/adgroup/{line_item_id}")
        return self._line(record) if record is not None else None

    async def set_status(self, line_item_id: str, status: str) -> LineItem:
        status = check_status(status)
        change: dict[str, Any] = {"AdGroupId": line_item_id}
        if status == "archived":
            change["Availability"] = "Archived"
        else:
            change["IsEnabled"] = status == "live"
        # A PUT of one field is idempotent: safe to resend after a lost response.
        return self._line(await self.http.json("PUT", "/adgroup", json=change, idempotent=True))

    async def delete_line_item(self, line_item_id: str) -> bool:
        return await self._archive(f"/adgroup/{line_item_id}", "/adgroup", {"AdGroupId": line_item_id})

    async def delete_order(self, order_id: str) -> bool:
        return await self._archive(f"/campaign/{order_id}", "/campaign", {"CampaignId": order_id})

    async def _archive(self, get_path: str, put_path: str, ident: Mapping[str, str]) -> bool:
        """TTD cannot delete: archive. False when archived already or unknown."""
        current = await self._get(get_path)
        if current is None or current.get("Availability") == "Archived":
            return False
        await self.http.json("PUT", put_path, json={**ident, "Availability": "Archived"}, idempotent=True)
        return True

    async def _get(self, path: str) -> dict[str, Any] | None:
        try:
            return await self.http.json("GET", path)
        except PermanentVendorError as error:
            if is_not_found(error):
                return None
            raise

    async def _query(self, path: str, query: Mapping[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Every record of a TTD query endpoint (a POST that only reads: idempotent)."""
        start = 0
        while True:
            body = {**query, "PageStartIndex": start, "PageSize": self.page_size}
            page = await self.http.json("POST", path, json=body, idempotent=True)
            records = page.get("Result") or []
            for record in records:
                yield record
            start += len(records)
            if not records or start >= int(page.get("TotalFilteredCount") or 0):
                return


class TradeDeskResource(DSPResource):
    """The Trade Desk campaigns and ad groups (local backend: records to traffic)."""

    SERVICE: ClassVar[str] = SERVICE
    DEFAULT_BASE_URL: ClassVar[str] = "https://api.thetradedesk.com/v3"

    advertiser_id: str | None = Field(default=None, description="TTD advertiser the campaigns belong to.")
    page_size: int = Field(default=100, ge=1, le=1000, description="Records per query page.")

    def auth_headers(self) -> Mapping[str, str]:
        return {"TTD-Auth": self.api_key or ""}

    def vendor_profile(self) -> VendorProfile:
        return PROFILE

    def http_client(self, http: HttpSession) -> HttpTradeDesk:
        if not self.advertiser_id:
            raise ValueError("TradeDeskResource.advertiser_id is required with a TTD-Auth token")
        return HttpTradeDesk(http, self.advertiser_id, self.page_size)
